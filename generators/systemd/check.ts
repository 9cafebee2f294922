/**
 * What the systemd target cannot carry, as findings at the fields: `mbc validate` reports them
 * (errors when the spec or `--target` names systemd), and the generator refuses the same values
 * with the same words (systemdLayout), so validate and build cannot disagree.
 *
 * - `targets.systemd.installDir`: an absolute folder every file can name (escape.ts's safePath).
 * - `targets.systemd.node`: systemd starts only an absolute path without quotes, backslashes or
 *   control characters.
 * - `checkpoint.dir` and each `builtin:jsonl-sink`'s `config.path`: the units may write only
 *   below INSTALLDIR/data (ProtectSystem=strict), so these must be relative and stay inside.
 * - a `file` source's absolute `path` below /home, /root, /run/user, /tmp or /var/tmp: the units
 *   see no home folders (ProtectHome=yes) and a private /tmp (PrivateTmp=yes).
 */
import { posix } from "node:path";
import type { TargetFinding } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { joinPointer } from "../../src/pointer.js";
import { registryBackendFindings } from "../shared/registry.js";
import { safePath, UnsafeValueError } from "./escape.js";

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this looks for
const NODE_REFUSED = /["'\\\u0000-\u001f\u007f]/;

/** Why systemd cannot start `node` as a unit's executable, or null. */
export function nodeProblem(node: string): string | null {
  if (!node.startsWith("/") || NODE_REFUSED.test(node)) return "systemd starts only an absolute path without quotes, backslashes or control characters";
  return null;
}

/** Why `installDir` cannot be written into every file, or null. */
export function installDirProblem(installDir: string): string | null {
  try {
    safePath("installDir", installDir);
    return null;
  } catch (err) {
    if (err instanceof UnsafeValueError) return err.message.replace(/^installDir ".*" /s, "");
    throw err;
  }
}

/** Why a path the units write to (relative to INSTALLDIR/data) would leave that folder, or null. */
export function writablePathProblem(path: string): string | null {
  const p = posix.normalize(path);
  if (posix.isAbsolute(p)) return "is absolute, but the units may write only below INSTALLDIR/data";
  if (p === ".." || p.startsWith("../")) return "leaves INSTALLDIR/data, the only folder the units may write";
  return null;
}

const HIDDEN = ["/home", "/root", "/run/user", "/tmp", "/var/tmp"];

export function checkSystemd(model: Model): TargetFinding[] {
  const out = registryBackendFindings(model, "systemd");
  const t = model.targets.systemd;
  const dir = installDirProblem(t.installDir);
  if (dir !== null)
    out.push({
      path: "/targets/systemd/installDir",
      message: `installDir ${JSON.stringify(t.installDir)} ${dir}`,
      hint: "an absolute folder such as /opt/mbc/NAME, without control characters, empty, . or .. parts, or spaces at its ends",
    });
  const node = nodeProblem(t.node);
  if (node !== null)
    out.push({
      path: "/targets/systemd/node",
      message: `node ${JSON.stringify(t.node)}: ${node}`,
      hint: "the absolute path of the node binary, such as /usr/bin/node",
    });
  const state = writablePathProblem(model.checkpoint.dir);
  if (state !== null)
    out.push({
      path: "/checkpoint/dir",
      message: `checkpoint.dir ${JSON.stringify(model.checkpoint.dir)} ${state}`,
      hint: "a relative path that stays inside, such as state (it is kept below INSTALLDIR/data)",
    });
  for (const s of model.services) {
    if (s.handler?.kind !== "builtin" || s.handler.name !== "jsonl-sink" || typeof s.config.path !== "string") continue;
    const problem = writablePathProblem(s.config.path);
    if (problem !== null)
      out.push({
        path: joinPointer(s.path, "config", "path"),
        message: `the sink file ${JSON.stringify(s.config.path)} of service "${s.name}" ${problem}`,
        hint: "a relative path that stays inside, such as ./data/out.jsonl (it is kept below INSTALLDIR/data)",
      });
  }
  for (const s of model.sources) {
    if (s.type !== "file" || s.location === null || !posix.isAbsolute(s.location)) continue;
    const p = posix.normalize(s.location);
    const hidden = HIDDEN.find((h) => p === h || p.startsWith(`${h}/`));
    if (hidden !== undefined)
      out.push({
        path: joinPointer(s.path, "path"),
        message: `the file ${JSON.stringify(s.location)} of source "${s.name}" is below ${hidden}, which the units cannot see (ProtectHome=yes, PrivateTmp=yes)`,
        hint: "a path relative to the spec's folder (kept below INSTALLDIR/data), or a folder outside /home, /root and /tmp",
      });
  }
  return out;
}
