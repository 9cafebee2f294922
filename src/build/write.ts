/**
 * Writing a build: one folder per target, swapped in atomically. Files the runtime or the user
 * put into a target folder (state, data) are carried over: a manifest lists what mbc wrote, and
 * only that is replaced or removed.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { crypto } from "../builtins-lazy.js";
import type { Artefact } from "./types.js";

export const MANIFEST = ".mbc-manifest.json";

interface Manifest {
  generatedBy: "mbc";
  files: string[];
}

function readManifest(dir: string): string[] {
  try {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST), "utf8")) as Manifest;
    return Array.isArray(m.files) ? m.files.filter((f) => typeof f === "string") : [];
  } catch {
    return [];
  }
}

function bytes(content: string | Uint8Array): Buffer {
  return typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content);
}

export interface CheckResult {
  changed: string[];
  missing: string[];
  /** Files an earlier build wrote that this build would not. */
  stale: string[];
}

/** What `--check` reports for one target folder: nothing is written. */
export function checkTarget(dir: string, artefacts: readonly Artefact[]): CheckResult {
  const result: CheckResult = { changed: [], missing: [], stale: [] };
  const wanted = new Set(artefacts.map((a) => a.path));
  for (const a of artefacts) {
    const file = join(dir, a.path);
    let current: Buffer;
    try {
      current = readFileSync(file);
    } catch {
      result.missing.push(a.path);
      continue;
    }
    if (!current.equals(bytes(a.content))) result.changed.push(a.path);
  }
  for (const f of readManifest(dir)) if (!wanted.has(f) && existsSync(join(dir, f))) result.stale.push(f);
  return result;
}

/** Top-level entries of the old folder that an earlier build did not write: the user's, kept. */
function carriedOver(dir: string, generated: readonly string[], wanted: ReadonlySet<string>): string[] {
  if (!existsSync(dir)) return [];
  const generatedTop = new Set([...generated, ...wanted].map((p) => p.split("/")[0] as string));
  generatedTop.add(MANIFEST);
  return readdirSync(dir).filter((name) => !generatedTop.has(name));
}

/**
 * Writes one target folder: everything goes into a temporary sibling first; only when all of
 * it is written is the old folder swapped out. A failure before the swap leaves the old output
 * untouched.
 */
export function writeTarget(dir: string, artefacts: readonly Artefact[]): void {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  if (existsSync(dir) && !lstatSync(dir).isDirectory()) throw new Error(`${dir} exists and is not a folder`);
  const tag = `${process.pid}-${crypto().randomBytes(4).toString("hex")}`;
  const base = dir.slice(parent.length + 1);
  const temp = join(parent, `.${base}.mbc-new-${tag}`);
  const old = join(parent, `.${base}.mbc-old-${tag}`);
  try {
    for (const a of artefacts) {
      const file = join(temp, a.path);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, bytes(a.content));
      chmodSync(file, a.mode ?? 0o644);
    }
    const manifest: Manifest = { generatedBy: "mbc", files: artefacts.map((a) => a.path).sort() };
    writeFileSync(join(temp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    throw err;
  }
  const keep = carriedOver(dir, readManifest(dir), new Set(artefacts.map((a) => a.path)));
  const hadOld = existsSync(dir);
  if (hadOld) renameSync(dir, old);
  try {
    renameSync(temp, dir);
  } catch (err) {
    if (hadOld) renameSync(old, dir);
    rmSync(temp, { recursive: true, force: true });
    throw err;
  }
  // The user's files (state, data) move into the new folder; then the old one goes.
  for (const name of keep) renameSync(join(old, name), join(dir, name));
  if (hadOld) rmSync(old, { recursive: true, force: true });
}
