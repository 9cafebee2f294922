/**
 * Writing a build: one folder per target, each swapped in whole, all or none of them.
 *
 * The rules, in the order they apply:
 * - A manifest in each target folder lists the files mbc wrote there. Only those are ever
 *   replaced or deleted; everything else (the runtime's state, the user's notes, a drop-in under
 *   a generated folder) is the user's, and stays where it is: it moves into the new folder.
 * - Where mbc must write a path that holds something it did not write (a file, a folder with the
 *   user's files in it, a symbolic link), or a folder it must change cannot be changed, the build
 *   is refused before anything is written, and every such path is named.
 * - The new folders are written beside the old ones first; then every target is swapped; a
 *   failure while swapping puts back what was swapped. A refused or failed build leaves the
 *   output folder as it was, byte for byte.
 */
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { crypto } from "../builtins-lazy.js";
import type { Artefact } from "./types.js";

export const MANIFEST = ".mbc-manifest.json";

interface Manifest {
  generatedBy: "mbc";
  files: string[];
}

/** Why a build does not write: a path and what is wrong with it. */
export interface Refusal {
  /** The path as the user would type it: the target folder joined with the file's path. */
  path: string;
  /** `foreign`: it holds something mbc did not write; `locked`: mbc may not change it. */
  kind: "foreign" | "locked";
  reason: string;
}

/** A build refused before anything was written. */
export class BuildRefused extends Error {
  constructor(readonly refusals: readonly Refusal[]) {
    super(refusals.map((r) => `${r.path} ${r.reason}`).join("; "));
    this.name = "BuildRefused";
  }
}

/** A build that failed while writing; `restored` says whether the output is as it was. */
export class BuildFailed extends Error {
  constructor(
    /** The path that could not be written, moved or removed. */
    readonly path: string,
    /** The system's error code (EACCES, EPERM, ENOSPC …), or the error's message. */
    readonly reason: string,
    /** Paths that could not be put back; empty when the output is as it was. */
    readonly stuck: readonly string[],
    /** What was being done to the path. */
    action: "write" | "move" = "write",
  ) {
    super(`cannot ${action === "write" ? "write" : "move"} ${path}${action === "move" ? " into the new output" : ""}: ${reason}`);
    this.name = "BuildFailed";
  }
}

/** What a build would do to one target folder, found without writing anything. */
export interface TargetPlan {
  dir: string;
  artefacts: readonly Artefact[];
  /** Whether the folder exists now (it is then swapped out). */
  exists: boolean;
  /** The user's entries, relative to the folder: the top-most ones, moved into the new folder whole. */
  keep: string[];
  /** Files the previous build wrote (the manifest's, still regular files). */
  generated: string[];
  /** Folders of the previous build that hold generated files or lie on a generated path: emptied and removed. */
  generatedDirs: string[];
  refusals: Refusal[];
}

interface ManifestRead {
  /** The files it lists; empty when there is no manifest or it is not mbc's. */
  files: Set<string>;
  /** Whether the manifest file is mbc's (so that mbc may replace it). */
  ours: boolean;
}

function readManifest(dir: string): ManifestRead {
  let text: string;
  try {
    if (!lstatSync(join(dir, MANIFEST)).isFile()) return { files: new Set(), ours: false };
    text = readFileSync(join(dir, MANIFEST), "utf8");
  } catch {
    return { files: new Set(), ours: false };
  }
  try {
    const m = JSON.parse(text) as Partial<Manifest> | null;
    if (m === null || typeof m !== "object" || m.generatedBy !== "mbc" || !Array.isArray(m.files)) return { files: new Set(), ours: false };
    return { files: new Set(m.files.filter((f): f is string => typeof f === "string")), ours: true };
  } catch {
    return { files: new Set(), ours: false };
  }
}

function bytes(content: string | Uint8Array): Buffer {
  return typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content);
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? (err instanceof Error ? err.message : String(err));
}

/** Every folder above each path (`a/b/c` gives `a` and `a/b`). */
function foldersAbove(paths: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) out.add(parts.slice(0, i).join("/"));
  }
  return out;
}

/**
 * What writing `artefacts` into `dir` would replace, delete and keep, and what stops it. Reads
 * only: `--check` uses it as it is, a build before it writes anything.
 */
export function planTarget(dir: string, artefacts: readonly Artefact[]): TargetPlan {
  const plan: TargetPlan = { dir, artefacts, exists: false, keep: [], generated: [], generatedDirs: [], refusals: [] };
  const refuse = (rel: string, reason: string, kind: Refusal["kind"] = "foreign") =>
    plan.refusals.push({ path: rel === "" ? dir : join(dir, rel), kind, reason });
  let top: Stats;
  try {
    top = lstatSync(dir);
  } catch (err) {
    if (errorCode(err) !== "ENOENT") refuse("", `cannot be read (${errorCode(err)})`, "locked");
    return plan;
  }
  plan.exists = true;
  if (top.isSymbolicLink()) {
    refuse("", "is a symbolic link: mbc replaces a target's folder whole and does not write through a link");
    return plan;
  }
  if (!top.isDirectory()) {
    refuse("", "is a file mbc did not write, where the target's folder goes");
    return plan;
  }
  const manifest = readManifest(dir);
  const wanted = new Set(artefacts.map((a) => a.path));
  wanted.add(MANIFEST);
  const wantedDirs = foldersAbove(wanted);
  const generatedAbove = foldersAbove(manifest.files);
  const isOurs = (rel: string) => (rel === MANIFEST ? manifest.ours : manifest.files.has(rel));

  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(rel === "" ? dir : join(dir, rel)).sort();
    } catch (err) {
      refuse(rel, `cannot be read (${errorCode(err)})`, "locked");
      return;
    }
    for (const name of names) {
      const p = rel === "" ? name : `${rel}/${name}`;
      let st: Stats;
      try {
        st = lstatSync(join(dir, p));
      } catch (err) {
        refuse(p, `cannot be read (${errorCode(err)})`, "locked");
        continue;
      }
      // A listed path counts as mbc's only while it is still a plain file: a link or a folder put in its place is the user's.
      if (st.isFile() && isOurs(p)) {
        plan.generated.push(p);
        continue;
      }
      if (st.isDirectory() && (wantedDirs.has(p) || generatedAbove.has(p))) {
        plan.generatedDirs.push(p);
        walk(p);
        continue;
      }
      if (wanted.has(p)) refuse(p, st.isDirectory() ? "is a folder mbc did not write, where mbc writes a file" : "holds a file mbc did not write");
      else if (wantedDirs.has(p)) refuse(p, `is a ${st.isSymbolicLink() ? "symbolic link" : "file"} mbc did not write, where mbc needs a folder`);
      else plan.keep.push(p);
    }
  };
  walk("");
  // A kept entry inside a folder that becomes a generated file would have nowhere to go.
  for (const k of plan.keep) {
    const under = [...foldersAbove([k])].find((f) => wanted.has(f));
    if (under !== undefined) refuse(k, `is a file mbc did not write, inside ${under}, which mbc now writes as a file`);
  }
  return plan;
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
    let mode: number;
    try {
      if (!lstatSync(file).isFile()) throw new Error("not a file");
      current = readFileSync(file);
      mode = statSync(file).mode & 0o777;
    } catch {
      result.missing.push(a.path);
      continue;
    }
    if (!current.equals(bytes(a.content)) || mode !== (a.mode ?? 0o644)) result.changed.push(a.path);
  }
  const plan = planTarget(dir, artefacts);
  for (const f of plan.generated) if (f !== MANIFEST && !wanted.has(f)) result.stale.push(f);
  return result;
}

const isRoot = () => process.getuid?.() === 0;

const IMMUTABLE = "cannot be changed (EPERM): it is immutable or append-only (lsattr shows it; chattr -i or -a clears it)";

/**
 * Whether the file system would let mbc remove or rename `path` (one of its own files or
 * folders): write permission where that is needed, and no immutable or append-only flag.
 * access() answers EPERM for write access to an immutable entry and changes nothing. The
 * append-only flag it does not see; with `probeFlags`, setting the entry's times to what they are
 * finds both (EPERM, for its owner or root), and changes only its ctime: a build does that to the
 * entries it is about to replace, `--check` does not.
 */
function changeable(path: string, st: Stats, needWrite: boolean, probeFlags: boolean): string | null {
  try {
    accessSync(path, needWrite ? constants.W_OK | constants.X_OK : constants.W_OK);
  } catch (err) {
    if (errorCode(err) === "EPERM") return IMMUTABLE;
    // A file is removed by writing its folder: its own mode does not matter.
    if (needWrite) return `cannot be changed (${errorCode(err)}): mbc must remove and add files in this folder`;
  }
  if (probeFlags && (isRoot() || st.uid === process.getuid?.())) {
    try {
      utimesSync(path, st.atimeMs / 1000, st.mtimeMs / 1000);
    } catch (err) {
      if (errorCode(err) === "EPERM") return IMMUTABLE;
    }
  }
  return null;
}

/** Everything that stops the swap of the planned folders, found before anything is written. */
function swapRefusals(plans: readonly TargetPlan[], probeFlags: boolean): Refusal[] {
  const out: Refusal[] = [];
  const locked = (path: string, reason: string) => out.push({ path, kind: "locked", reason });
  const parents = new Set(plans.map((p) => dirname(p.dir)));
  for (const parent of parents) {
    // The nearest folder that exists: the rest is created.
    let at = parent;
    while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
    let st: Stats;
    try {
      st = statSync(at);
    } catch (err) {
      locked(at, `cannot be read (${errorCode(err)})`);
      continue;
    }
    if (!st.isDirectory()) {
      out.push({ path: at, kind: "foreign", reason: "is a file, where the output folder goes" });
      continue;
    }
    try {
      accessSync(at, constants.W_OK | constants.X_OK);
    } catch (err) {
      locked(at, errorCode(err) === "EPERM" ? IMMUTABLE : `cannot be written (${errorCode(err)})`);
    }
  }
  for (const plan of plans) {
    if (!plan.exists) continue;
    const check = (rel: string, needWrite: boolean) => {
      const path = rel === "" ? plan.dir : join(plan.dir, rel);
      let st: Stats;
      try {
        st = lstatSync(path);
      } catch (err) {
        locked(path, `cannot be read (${errorCode(err)})`);
        return;
      }
      const why = changeable(path, st, needWrite, probeFlags);
      if (why !== null) locked(path, why);
    };
    // The folder is renamed, its generated folders emptied and removed, its generated files removed.
    check("", true);
    for (const d of plan.generatedDirs) check(d, true);
    for (const f of plan.generated) check(f, false);
    // A kept entry is renamed into the new folder: not possible when it is immutable (access()
    // answers EPERM then, and changes nothing), and a folder that moves to another parent needs
    // its own write permission too (for its "..").
    for (const k of plan.keep) {
      const path = join(plan.dir, k);
      try {
        const st = lstatSync(path);
        if (st.isSymbolicLink()) continue;
        try {
          accessSync(path, constants.W_OK);
        } catch (err) {
          if (st.isDirectory() || errorCode(err) === "EPERM") throw err;
        }
      } catch (err) {
        locked(path, `cannot be moved into the new output (${errorCode(err)}): mbc keeps it by moving it`);
      }
    }
  }
  return out;
}

/**
 * Everything that would stop `writeTargets` from writing these outputs, found without changing
 * anything (what `--check` reports). Only the append-only flag of mbc's own files goes unseen.
 */
export function buildRefusals(outputs: readonly TargetOutput[]): Refusal[] {
  const plans = outputs.map((o) => planTarget(o.dir, o.artefacts));
  const refusals = plans.flatMap((p) => p.refusals);
  return refusals.length > 0 ? refusals : swapRefusals(plans, false);
}

export interface TargetOutput {
  dir: string;
  artefacts: readonly Artefact[];
}

/** A rename that is recorded, so that it can be undone. */
type Move = readonly [from: string, to: string];

/**
 * Writes every target folder, or none. Throws BuildRefused (nothing written) when a path holds
 * something mbc did not write or a folder cannot be swapped, and BuildFailed when writing or
 * swapping fails (what was swapped is put back first). Returns the folders of the previous output
 * that could not be removed after the swap (normally none).
 */
export function writeTargets(outputs: readonly TargetOutput[]): string[] {
  const plans = outputs.map((o) => planTarget(o.dir, o.artefacts));
  const refusals = plans.flatMap((p) => p.refusals);
  if (refusals.length === 0) refusals.push(...swapRefusals(plans, true));
  if (refusals.length > 0) throw new BuildRefused(refusals);

  const tag = `${process.pid}-${crypto().randomBytes(4).toString("hex")}`;
  const staged = plans.map((plan) => ({
    plan,
    temp: join(dirname(plan.dir), `.${basename(plan.dir)}.mbc-new-${tag}`),
    old: join(dirname(plan.dir), `.${basename(plan.dir)}.mbc-old-${tag}`),
  }));
  // Folders created for the output (the first of each mkdir -p), removed again on failure.
  const created: string[] = [];
  const removeStaged = () => {
    for (const s of staged) rmSync(s.temp, { recursive: true, force: true });
    for (const c of created.reverse()) rmSync(c, { recursive: true, force: true });
  };

  let writing = "";
  try {
    for (const { plan, temp } of staged) {
      writing = dirname(plan.dir);
      const first = mkdirSync(dirname(plan.dir), { recursive: true });
      if (first !== undefined) created.push(first);
      writing = temp;
      mkdirSync(temp);
      for (const a of plan.artefacts) {
        const file = join(temp, a.path);
        writing = file;
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, bytes(a.content));
        chmodSync(file, a.mode ?? 0o644);
      }
      const manifest: Manifest = { generatedBy: "mbc", files: plan.artefacts.map((a) => a.path).sort() };
      writing = join(temp, MANIFEST);
      writeFileSync(writing, `${JSON.stringify(manifest, null, 2)}\n`);
    }
  } catch (err) {
    removeStaged();
    throw new BuildFailed(shownPath(writing, staged), errorCode(err), []);
  }

  const journal: Move[] = [];
  const move = (from: string, to: string) => {
    renameSync(from, to);
    journal.push([from, to]);
  };
  let moving = "";
  let action: "write" | "move" = "write";
  try {
    for (const { plan, temp, old } of staged) {
      moving = plan.dir;
      action = "write";
      if (plan.exists) move(plan.dir, old);
      move(temp, plan.dir);
      action = "move";
      for (const k of plan.keep) {
        moving = join(plan.dir, k);
        mkdirSync(dirname(join(plan.dir, k)), { recursive: true });
        move(join(old, k), join(plan.dir, k));
      }
    }
  } catch (err) {
    const stuck = undo(journal);
    if (stuck.length === 0) removeStaged();
    throw new BuildFailed(moving, errorCode(err), stuck, action);
  }

  const leftovers: string[] = [];
  for (const { plan, old } of staged) {
    if (!plan.exists) continue;
    try {
      rmSync(old, { recursive: true, force: true });
    } catch {
      leftovers.push(old);
    }
  }
  return leftovers;
}

/** Undoes the recorded renames, last first; returns the paths it could not put back. */
function undo(journal: readonly Move[]): string[] {
  const stuck: string[] = [];
  for (const [from, to] of [...journal].reverse()) {
    try {
      renameSync(to, from);
    } catch {
      stuck.push(to);
    }
  }
  return stuck;
}

/** A path inside a temporary folder, shown as the path it was meant for. */
function shownPath(path: string, staged: readonly { plan: TargetPlan; temp: string }[]): string {
  for (const { plan, temp } of staged) if (path === temp || path.startsWith(`${temp}/`)) return plan.dir + path.slice(temp.length);
  return path;
}

/** Writes one target folder (see writeTargets). */
export function writeTarget(dir: string, artefacts: readonly Artefact[]): string[] {
  return writeTargets([{ dir, artefacts }]);
}
