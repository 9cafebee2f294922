/**
 * The difference of two objects as an RFC 6902 JSON patch, which kustomize applies to its base:
 * an overlay says only what its environment changes (a StatefulSet's `replicas`, a container's
 * resources or env), not the whole object again. Objects are compared key by key; arrays of the
 * same length element by element (a pod has one container, so a change in it is one path deep),
 * otherwise replaced whole. Keys are visited in sorted order: the same two objects, the same patch.
 */
import type { Json } from "./manifests.js";

export type PatchOp = { op: "add" | "replace"; path: string; value: Json } | { op: "remove"; path: string };

/** A JSON Pointer token: `~` and `/` escaped. */
function token(key: string | number): string {
  return String(key).replace(/~/g, "~0").replace(/\//g, "~1");
}

function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function equal(a: Json | undefined, b: Json | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function diffJson(base: Json, next: Json, at = ""): PatchOp[] {
  if (equal(base, next)) return [];
  if (isObject(base) && isObject(next)) {
    const out: PatchOp[] = [];
    for (const key of [...new Set([...Object.keys(base), ...Object.keys(next)])].sort()) {
      const path = `${at}/${token(key)}`;
      if (!(key in next)) out.push({ op: "remove", path });
      else if (!(key in base)) out.push({ op: "add", path, value: next[key] as Json });
      else out.push(...diffJson(base[key] as Json, next[key] as Json, path));
    }
    return out;
  }
  if (Array.isArray(base) && Array.isArray(next) && base.length === next.length) {
    return base.flatMap((b, k) => diffJson(b, next[k] as Json, `${at}/${k}`));
  }
  return [{ op: "replace", path: at, value: next }];
}

/** Applies a patch made by diffJson (what kustomize does with it; the tests check the two agree). */
export function applyPatch(doc: Json, ops: readonly PatchOp[]): Json {
  const root = structuredClone(doc) as Json;
  const holder: { [key: string]: Json } = { root };
  for (const op of ops) {
    const parts =
      op.path === ""
        ? []
        : op.path
            .slice(1)
            .split("/")
            .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    let parent: Json = holder;
    let key = "root";
    for (const p of parts) {
      parent = (parent as { [key: string]: Json })[key] as Json;
      key = p;
    }
    const container = parent as { [key: string]: Json } & Json[];
    if (op.op === "remove") {
      if (Array.isArray(container)) container.splice(Number(key), 1);
      else delete container[key];
    } else {
      (container as { [key: string]: Json })[key] = op.value;
    }
  }
  return holder.root as Json;
}
