/**
 * Where a path really leads, symbolic links resolved: a handler that is a link out of the spec's
 * folder, or sits in a linked folder, must not pass for one inside it (it would be copied into
 * every build).
 */
import { realpathSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";

/**
 * The real path of `path`. A part that does not exist is appended to the real path of its
 * deepest existing ancestor, so that a missing file in a linked folder still resolves through
 * the link.
 */
export function realPathOf(path: string): string {
  let head = resolve(path);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync.native(head), ...[...rest].reverse());
    } catch {
      const parent = dirname(head);
      if (parent === head) return resolve(path);
      rest.push(basename(head));
      head = parent;
    }
  }
}

/** Whether `path` is `root` itself or below it; both absolute. */
export function isWithin(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** Whether `relativePath`, resolved against `dir` with every link followed, leads out of `dir`'s real path. */
export function leavesFolder(dir: string, relativePath: string): boolean {
  return !isWithin(realPathOf(dir), realPathOf(resolve(dir, relativePath)));
}
