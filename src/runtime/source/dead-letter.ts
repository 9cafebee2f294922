/**
 * The dead-letter folder, `STATE_DIR/dead-letter/`: one JSON file per batch that failed after
 * its retries, `{id}.json`, holding the batch (id, via, records) and every failure it met:
 *
 * ```json
 * {"id": "orders-1200@37-38", "via": ["orders"], "records": […], "texts": ["…"],
 *  "failures": [{"at": "…", "error": "enrich: poison after 2 attempts; …", "service": "enrich", "attempts": […]}]}
 * ```
 *
 * `texts` holds the records as the source logged them, byte for byte; a replay (redrive.ts)
 * sends them.
 *
 * Files are written atomically (a temporary file in the same folder, fsync'd, renamed over
 * the name, then the folder fsync'd), so a reader or a crash never sees half a file. A batch
 * that fails again (a source re-sends it after a restart, before it could commit it) does not
 * replace the earlier file: its failure is appended to the file's `failures`, so a file only
 * ever gains information. A file that cannot be read is left alone and the new entry goes
 * beside it, `{id}.{time}.json`.
 *
 * The caller (a source) counts dead letters in its metrics; instances never dead-letter, they
 * answer 500 and let their caller decide.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../../shared/atomic-write.js";
import type { DispatchFailure, WireBatch } from "../core/contracts.js";

export interface DeadLetterFailure {
  /** When it failed (ISO 8601). */
  at: string;
  error: string;
  /** The service that could not be reached or failed, when known. */
  service: string | null;
  attempts: DispatchFailure["attempts"];
  /** A fan-out with several failed targets: each target's failure. */
  targets?: { service: string; error: string; attempts: DispatchFailure["attempts"] }[];
}

export interface DeadLetter {
  id: string;
  via: string[];
  records: unknown[];
  /** The records as the source logged them (their JSON texts, byte for byte): what a replay sends. */
  texts?: string[];
  failures: DeadLetterFailure[];
}

/** A batch as a dead letter keeps it: its records, and their texts as the source wrote them when it has them. */
export type DeadBatch = WireBatch & { texts?: readonly string[] };

/** The dead-letter folder of a state folder. */
export function deadLetterDir(stateDir: string): string {
  return join(stateDir, "dead-letter");
}

/** A file name for batch `id`: the id itself when it is a safe name, else a cleaned id and a hash of it. */
export function deadLetterName(id: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._@-]{0,149}$/.test(id)) return `${id}.json`;
  const clean = id
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .replace(/^\.+/, "_")
    .slice(0, 100);
  const hash = createHash("sha256").update(id).digest("hex").slice(0, 12);
  return `${clean}-${hash}.json`;
}

/** What an error says, as a dead letter records it. */
export function describeFailure(error: unknown, at: Date): DeadLetterFailure {
  const message = error instanceof Error ? error.message : String(error);
  const failure: DeadLetterFailure = { at: at.toISOString(), error: message, service: null, attempts: [] };
  if (error instanceof Error && typeof (error as Partial<DispatchFailure>).service === "string") {
    const f = error as DispatchFailure & { failures?: unknown };
    failure.service = f.service;
    failure.attempts = Array.isArray(f.attempts) ? f.attempts : [];
    if (Array.isArray(f.failures) && f.failures.length > 1) {
      failure.targets = (f.failures as DispatchFailure[]).map((t) => ({ service: t.service, error: t.message, attempts: t.attempts }));
    }
  }
  return failure;
}

/** Writes must not interleave for one file within a process (a source is the only writer of its batch ids). */
const pending = new Map<string, Promise<unknown>>();

/**
 * Records that `batch` failed with `error`: creates `{id}.json` or appends the failure to it.
 * Resolves with the file's path once it is durably in place.
 */
export function writeDeadLetter(stateDir: string, batch: DeadBatch, error: unknown, now: Date = new Date()): Promise<string> {
  const dir = deadLetterDir(stateDir);
  const path = join(dir, deadLetterName(batch.id));
  const previous = pending.get(path) ?? Promise.resolve();
  const run = previous.then(() => write(dir, path, batch, describeFailure(error, now), now));
  const settled = run.catch(() => undefined);
  pending.set(path, settled);
  void settled.then(() => {
    if (pending.get(path) === settled) pending.delete(path);
  });
  return run;
}

async function write(dir: string, path: string, batch: DeadBatch, failure: DeadLetterFailure, now: Date): Promise<string> {
  await mkdir(dir, { recursive: true });
  let target = path;
  let entry: DeadLetter = {
    id: batch.id,
    via: [...batch.via],
    records: batch.records,
    ...(batch.texts === undefined ? {} : { texts: [...batch.texts] }),
    failures: [failure],
  };
  const existing = await readExisting(path);
  if (existing === "unreadable") {
    target = path.replace(/\.json$/, `.${now.toISOString().replace(/[:.]/g, "-")}.json`);
  } else if (existing !== null) {
    // Keep everything the file already holds; the records are the same batch's (same id).
    entry = { ...existing, failures: [...existing.failures, failure] };
  }
  await writeFileAtomic(target, `${JSON.stringify(entry, null, 2)}\n`, { durable: true, mode: 0o644 });
  return target;
}

async function readExisting(path: string): Promise<DeadLetter | null | "unreadable"> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    return "unreadable";
  }
  try {
    const v = JSON.parse(text) as Partial<DeadLetter>;
    if (typeof v.id === "string" && Array.isArray(v.via) && Array.isArray(v.records) && Array.isArray(v.failures)) return v as DeadLetter;
  } catch {
    // Not ours, or damaged: leave it as it is.
  }
  return "unreadable";
}
