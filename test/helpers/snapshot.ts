/**
 * A folder's state, byte for byte: every entry under it (hidden ones too) with its type, mode,
 * and its content's hash or its link's target. Two equal snapshots mean nothing was written,
 * deleted, moved or left behind.
 */
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

export function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const full = rel === "" ? dir : join(dir, rel);
    const st = lstatSync(full);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.push(`${rel} link ${readlinkSync(full)}`);
    else if (st.isDirectory()) {
      out.push(`${rel}/ dir ${mode}`);
      for (const name of readdirSync(full).sort()) walk(rel === "" ? name : `${rel}/${name}`);
    } else if (st.isFile()) out.push(`${rel} file ${mode} ${createHash("sha256").update(readFileSync(full)).digest("hex").slice(0, 16)}`);
    else out.push(`${rel} other ${mode}`);
  };
  if (lstatExists(dir)) walk("");
  return out;
}

function lstatExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
