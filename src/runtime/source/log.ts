/**
 * The durable log of one source, in `STATE_DIR/sources/NAME/`:
 *
 * - `records-{SEQ}.jsonl`: append-only segments of records, one JSON text a line. A record's
 *   sequence number is implied by its position: the segment's name holds the sequence number of
 *   its first line. A segment rolls over once it passes `segmentBytes`.
 * - `batches.jsonl`: the boundaries of every closed batch, `{"id","first","last"}` (plus the file
 *   source's `cursor`), appended and made durable before the batch is sent, so that a batch keeps
 *   its id across restarts.
 * - `commits.jsonl`: `{"id","last"}` of every batch the pipeline answered for, in order: the
 *   committed batches are always a prefix of the logged ones.
 * - `splits.jsonl`: `{"id","from","to","at"}` for every split of a poison batch (or piece): the
 *   records `from`..`to - 1` of batch `id` went on as two pieces, split at `at`. Durable before
 *   the pieces are sent, so that a restart sends the same pieces under the same ids
 *   (core/pieces.ts); only the splits of uncommitted batches are kept.
 * - `keys.jsonl`: `{"key","hash","first","count"}` for every append made under an idempotency
 *   key (the http source's `Idempotency-Key`): the key, a fingerprint of the request's body and
 *   the sequence numbers its records got. It is written and made durable before those records
 *   are written, so after any crash a key names records that are all on disk, or recovery drops
 *   it (and cuts the records its append had started to write: none of them was acknowledged).
 *   The last `idempotencyKeys` keys are remembered; the file is rewritten down to them once it
 *   holds twice as many.
 *
 * Appends are group-committed: everything appended in the same turn of the event loop (and
 * while a previous write is in progress) goes out in one write per file and one fsync per file,
 * so concurrent requests share the cost of the fsync. `checkpoint.fsync: false` skips the fsync
 * (a process crash loses nothing, an OS crash may).
 *
 * Recovery at start truncates a torn last line (a crash in the middle of a write), returns the
 * closed but uncommitted batches (to re-send with the same ids) and the records after the last
 * closed batch, deletes the segments whose records are all committed, and rewrites the batch
 * and commit logs down to what is still needed, so the disk a source uses stays bounded.
 */
import { type FileHandle, mkdir, open, readdir, readFile, truncate, unlink } from "node:fs/promises";
import { join } from "node:path";
import { syncFolder, writeFileAtomic } from "../../shared/atomic-write.js";
import { arrayBytes, type ClosedBatch, type Cursor } from "./batcher.js";

export const BATCHES_FILE = "batches.jsonl";
export const COMMITS_FILE = "commits.jsonl";
export const KEYS_FILE = "keys.jsonl";
export const SPLITS_FILE = "splits.jsonl";
/**
 * Idempotency keys a source remembers: a key re-posted after this many newer keyed requests is
 * taken as new. A window in requests rather than time or segments: its memory is bounded (about
 * 250 bytes a UUID key, 25 MiB in all) whatever the rate, and a retry is recognised however long
 * the restart in between took.
 */
export const DEFAULT_IDEMPOTENCY_KEYS = 100_000;
/** Longest idempotency key taken (as Stripe's API). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/** A segment rolls over past this size: small enough that deleting committed ones keeps the disk bounded, large enough to be rare. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** The batch and commit logs are rewritten (down to the uncommitted batches) after this many appended entries. */
export const DEFAULT_CONTROL_COMPACT_ENTRIES = 10_000;

const SEGMENT_NAME = /^records-(\d{16})\.jsonl$/;
const NEWLINE = 0x0a;

export interface BatchEntry {
  id: string;
  first: number;
  last: number;
  /** File source: where reading resumes after this batch. */
  cursor?: Cursor;
}

export interface CommitEntry {
  id: string;
  last: number;
}

/** A batch (or a piece of it, records `from` to `to - 1`) that went on as two pieces, split at `at`. */
export interface SplitEntry {
  id: string;
  from: number;
  to: number;
  at: number;
}

/** An append made under an idempotency key: which records it got, and a fingerprint of what was sent. */
export interface KeyEntry {
  key: string;
  hash: string;
  first: number;
  count: number;
}

/** The name of the segment whose first record has sequence number `base`. */
export function segmentName(base: number): string {
  return `records-${String(base).padStart(16, "0")}.jsonl`;
}

/** The first sequence number of a segment file, or null for another file. */
export function segmentBase(name: string): number | null {
  const match = SEGMENT_NAME.exec(name);
  return match?.[1] === undefined ? null : Number(match[1]);
}

/** Offsets just past each complete line (each `\n`); bytes after the last one are a torn line. */
export function lineEnds(buffer: Uint8Array): number[] {
  const ends: number[] = [];
  let at = buffer.indexOf(NEWLINE);
  while (at !== -1) {
    ends.push(at + 1);
    at = buffer.indexOf(NEWLINE, at + 1);
  }
  return ends;
}

export interface ParsedLines<T> {
  entries: T[];
  /** Bytes of the leading lines that parsed; the file is truncated to this. */
  validBytes: number;
  /** Why the rest was dropped: a torn last line, or a line that is not an entry (1-based line number). */
  problem: { line: number; reason: string } | null;
}

/** Parses a JSON-lines control log, keeping the longest prefix of valid entries. */
export function parseEntries<T>(buffer: Uint8Array, check: (value: unknown) => value is T): ParsedLines<T> {
  const entries: T[] = [];
  const decoder = new TextDecoder();
  let start = 0;
  for (const end of lineEnds(buffer)) {
    const text = decoder.decode(buffer.subarray(start, end - 1));
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return { entries, validBytes: start, problem: { line: entries.length + 1, reason: (error as Error).message } };
    }
    if (!check(value)) return { entries, validBytes: start, problem: { line: entries.length + 1, reason: "not an entry of this log" } };
    entries.push(value);
    start = end;
  }
  const torn = start < buffer.length ? { line: entries.length + 1, reason: "torn last line (no newline)" } : null;
  return { entries, validBytes: start, problem: torn };
}

function isSeq(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

export function isBatchEntry(value: unknown): value is BatchEntry {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  if (typeof v.id !== "string" || !isSeq(v.first) || !isSeq(v.last) || v.last < v.first) return false;
  if (v.cursor === undefined) return true;
  const c = v.cursor as Record<string, unknown> | null;
  return typeof c === "object" && c !== null && isSeq(c.offset) && isSeq(c.line);
}

export function isKeyEntry(value: unknown): value is KeyEntry {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.key === "string" && typeof v.hash === "string" && isSeq(v.first) && isSeq(v.count) && (v.count as number) > 0;
}

export function isSplitEntry(value: unknown): value is SplitEntry {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.id === "string" && isSeq(v.from) && isSeq(v.to) && isSeq(v.at) && (v.from as number) < (v.at as number) && (v.at as number) < (v.to as number)
  );
}

export function isCommitEntry(value: unknown): value is CommitEntry {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.id === "string" && isSeq(v.last);
}

export interface SegmentInfo {
  base: number;
  /** Complete lines (records) in it. */
  count: number;
}

export interface RecoveryPlan {
  /** Sequence number of the last committed record, -1 when none. */
  committedThrough: number;
  /** Batch entries kept, in order. */
  batches: BatchEntry[];
  /** Kept entries not committed yet: to re-send with the same ids. */
  pending: BatchEntry[];
  /** The last kept entry that is committed (kept when the batch log is rewritten: it holds the file source's cursor). */
  lastCommitted: BatchEntry | null;
  /** First sequence number of the records after the last kept batch (and after the committed ones). */
  unbatchedFirst: number;
  /** End (exclusive) of the records on disk. */
  recordsEnd: number;
  /** Where the next record's sequence number starts: never reuses a number a logged batch or commit has seen. */
  nextSeq: number;
  /** Segments (by base) whose records are all committed; never the last one, which stays open for appends. */
  deletable: number[];
  /** What was dropped as inconsistent, for the logs. */
  notes: string[];
}

/**
 * Decides what recovery keeps, from the parsed commit and batch logs and the segments' line
 * counts (sorted by base). Pure, so that every inconsistency a crash can leave is testable.
 */
export function planRecovery(commits: readonly CommitEntry[], batches: readonly BatchEntry[], segments: readonly SegmentInfo[]): RecoveryPlan {
  const notes: string[] = [];
  let committedThrough = -1;
  for (const c of commits) committedThrough = Math.max(committedThrough, c.last);

  // The records on disk as runs of consecutive sequence numbers; segments written by this
  // module are contiguous, a gap means a segment lost its tail (no fsync and an OS crash).
  const runs: { start: number; end: number }[] = [];
  for (const s of segments) {
    const run = runs[runs.length - 1];
    if (run !== undefined && run.end === s.base) run.end = s.base + s.count;
    else {
      if (run !== undefined) notes.push(`records ${run.end}..${s.base - 1} are missing from the log`);
      runs.push({ start: s.base, end: s.base + s.count });
    }
  }
  const lastRun = runs[runs.length - 1];
  const recordsEnd = lastRun?.end ?? 0;
  const onDisk = (first: number, last: number) => runs.some((r) => r.start <= first && last < r.end);

  const kept: BatchEntry[] = [];
  for (const b of batches) {
    const prev = kept[kept.length - 1];
    if (prev !== undefined && b.first !== prev.last + 1) {
      notes.push(`batch ${b.id} does not follow ${prev.id}: it and the batches after it are dropped`);
      break;
    }
    if (b.last > committedThrough && !onDisk(b.first, b.last)) {
      notes.push(`the records of batch ${b.id} are not in the log: it and the batches after it are dropped`);
      break;
    }
    kept.push(b);
  }
  const dropped = batches.length - kept.length;
  if (dropped > 0) notes.push(`${dropped} logged batch(es) dropped`);

  const pending = kept.filter((b) => b.last > committedThrough);
  let lastCommitted: BatchEntry | null = null;
  for (const b of kept) if (b.last <= committedThrough) lastCommitted = b;
  const lastKept = kept[kept.length - 1];
  let unbatchedFirst = Math.max(committedThrough + 1, lastKept === undefined ? 0 : lastKept.last + 1);
  // The records after the last batch must be one run ending at recordsEnd; anything before
  // the start of that run is gone.
  if (lastRun !== undefined && unbatchedFirst < lastRun.start) {
    notes.push(`records ${unbatchedFirst}..${lastRun.start - 1} are not in the log`);
    unbatchedFirst = lastRun.start;
  }
  if (unbatchedFirst > recordsEnd) unbatchedFirst = recordsEnd;
  const nextSeq = Math.max(recordsEnd, committedThrough + 1, lastKept === undefined ? 0 : lastKept.last + 1);

  const deletable: number[] = [];
  for (let k = 0; k + 1 < segments.length; k++) {
    const s = segments[k] as SegmentInfo;
    const next = segments[k + 1] as SegmentInfo;
    if (next.base - 1 <= committedThrough) deletable.push(s.base);
  }
  return { committedThrough, batches: kept, pending, lastCommitted, unbatchedFirst, recordsEnd, nextSeq, deletable, notes };
}

/** A batch recovered from the log: closed and logged before the restart, not committed. */
export interface Recovery {
  nextSeq: number;
  committedThrough: number;
  /** The last logged batch, committed or not (the file source resumes reading after its cursor). */
  lastBatch: BatchEntry | null;
  /** Their records are the logged JSON texts. */
  pending: ClosedBatch<string>[];
  /** The splits of pending batches, in the order they were logged. */
  splits: SplitEntry[];
  /** The records (JSON texts) after the last logged batch (empty when `discardUnbatched`). */
  unbatched: { first: number; lines: string[]; bytes: number[] };
  /** What recovery repaired or dropped, for the logs. */
  notes: string[];
}

export class LogCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
    this.name = "LogCorruptError";
  }
}

export interface SourceLogOptions {
  /** Source name: batch ids are `{source}-{first}`. */
  source: string;
  fsync: boolean;
  /**
   * Drop the records after the last logged batch at recovery. The file source does: it reads
   * them again from the file, after the last batch's cursor.
   */
  discardUnbatched?: boolean;
  segmentBytes?: number;
  controlCompactEntries?: number;
  /** How many idempotency keys to remember (default DEFAULT_IDEMPOTENCY_KEYS). */
  idempotencyKeys?: number;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Appends nobody awaits (commits) must not turn a disk error into an unhandled rejection:
  // the error is kept in `failure` and every later call reports it.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** Records appended in one call: their sequence numbers, and when they are durable. */
export interface Appended {
  first: number;
  last: number;
  durable: Promise<void>;
}

interface Group {
  records: string[];
  recordCount: number;
  firstSeq: number;
  keys: KeyEntry[];
  batches: BatchEntry[];
  splits: SplitEntry[];
  commits: CommitEntry[];
  done: Deferred;
}

function emptyGroup(firstSeq: number): Group {
  return { records: [], recordCount: 0, firstSeq, keys: [], batches: [], splits: [], commits: [], done: deferred() };
}

/** What the log knows of an idempotency key: its append, and whether that is durable yet. */
export interface KeyState {
  entry: KeyEntry;
  durable: boolean;
}

function jsonLines(values: readonly unknown[]): string {
  let text = "";
  for (const v of values) text += `${JSON.stringify(v)}\n`;
  return text;
}

async function readIfExists(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return Buffer.alloc(0);
    throw error;
  }
}

async function writeAll(handle: FileHandle, buffer: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const { bytesWritten } = await handle.write(buffer, offset, buffer.length - offset);
    offset += bytesWritten;
  }
}

/** Replaces `path` by `text` atomically and durably (shared/atomic-write.ts). */
function replaceFile(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, text, { durable: true });
}

export class SourceLog {
  private readonly fsync: boolean;
  private readonly segmentBytes: number;
  private readonly controlCompactEntries: number;
  /** Segment bases, ascending; the last one is open for appends. */
  private readonly segments: number[];
  private records: FileHandle;
  private recordsBytes: number;
  private batchesHandle: FileHandle;
  private splitsHandle: FileHandle;
  private commitsHandle: FileHandle;
  private keysHandle: FileHandle;
  private readonly keyWindow: number;
  /** Durable keyed appends, oldest first (a Map keeps insertion order): the last `keyWindow` of them. */
  private readonly keys: Map<string, KeyEntry>;
  /** Keyed appends whose group is not durable yet. */
  private readonly pendingKeys = new Map<string, KeyEntry>();
  /** Entries in the keys file, for its rewrite. */
  private keyLines: number;
  private seq: number;
  private group: Group;
  private running: Promise<void> | null = null;
  private scheduled = false;
  private closed = false;
  private failure: Error | null = null;
  /** Durable batch entries not committed yet, and the last committed one: what a rewrite of the batch log keeps. */
  private uncommitted: BatchEntry[];
  /** Durable splits of the batches not committed yet: what a rewrite of the split log keeps. */
  private splits: SplitEntry[];
  private lastCommittedEntry: BatchEntry | null;
  private lastCommit: CommitEntry | null;
  private durableCommittedThrough: number;
  private controlEntries: number;

  private constructor(
    readonly dir: string,
    options: SourceLogOptions,
    state: {
      segments: number[];
      records: FileHandle;
      recordsBytes: number;
      batches: FileHandle;
      splitsHandle: FileHandle;
      splits: SplitEntry[];
      commits: FileHandle;
      keysHandle: FileHandle;
      keys: Map<string, KeyEntry>;
      nextSeq: number;
      uncommitted: BatchEntry[];
      lastCommittedEntry: BatchEntry | null;
      lastCommit: CommitEntry | null;
      committedThrough: number;
      controlEntries: number;
    },
  ) {
    this.fsync = options.fsync;
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.controlCompactEntries = options.controlCompactEntries ?? DEFAULT_CONTROL_COMPACT_ENTRIES;
    this.segments = state.segments;
    this.records = state.records;
    this.recordsBytes = state.recordsBytes;
    this.batchesHandle = state.batches;
    this.splitsHandle = state.splitsHandle;
    this.splits = state.splits;
    this.commitsHandle = state.commits;
    this.keysHandle = state.keysHandle;
    this.keys = state.keys;
    this.keyWindow = options.idempotencyKeys ?? DEFAULT_IDEMPOTENCY_KEYS;
    this.keyLines = state.keys.size;
    this.seq = state.nextSeq;
    this.group = emptyGroup(state.nextSeq);
    this.uncommitted = state.uncommitted;
    this.lastCommittedEntry = state.lastCommittedEntry;
    this.lastCommit = state.lastCommit;
    this.durableCommittedThrough = state.committedThrough;
    this.controlEntries = state.controlEntries;
  }

  /** Opens (creating) the log in `dir`, recovering what a previous process left. */
  static async open(dir: string, options: SourceLogOptions): Promise<{ log: SourceLog; recovery: Recovery }> {
    await mkdir(dir, { recursive: true });
    const notes: string[] = [];
    const commitsPath = join(dir, COMMITS_FILE);
    const batchesPath = join(dir, BATCHES_FILE);

    const commitsBuffer = await readIfExists(commitsPath);
    const commits = parseEntries(commitsBuffer, isCommitEntry);
    if (commits.problem !== null) {
      notes.push(`${COMMITS_FILE}:${commits.problem.line}: ${commits.problem.reason}; truncated`);
      await truncate(commitsPath, commits.validBytes);
    }
    const batchesBuffer = await readIfExists(batchesPath);
    const batches = parseEntries(batchesBuffer, isBatchEntry);
    if (batches.problem !== null) {
      notes.push(`${BATCHES_FILE}:${batches.problem.line}: ${batches.problem.reason}; truncated`);
      await truncate(batchesPath, batches.validBytes);
    }
    const splitsPath = join(dir, SPLITS_FILE);
    const splitLog = parseEntries(await readIfExists(splitsPath), isSplitEntry);
    if (splitLog.problem !== null) notes.push(`${SPLITS_FILE}:${splitLog.problem.line}: ${splitLog.problem.reason}; truncated`);
    const keysPath = join(dir, KEYS_FILE);
    const keysBuffer = await readIfExists(keysPath);
    const keyLog = parseEntries(keysBuffer, isKeyEntry);
    if (keyLog.problem !== null) notes.push(`${KEYS_FILE}:${keyLog.problem.line}: ${keyLog.problem.reason}; truncated`);
    let committedThrough = -1;
    for (const c of commits.entries) committedThrough = Math.max(committedThrough, c.last);

    // Read only the segments that may hold uncommitted records, and the last one (its length
    // gives the next sequence number). A segment before another is as long as the gap between
    // their names.
    const bases = (await readdir(dir))
      .map(segmentBase)
      .filter((b): b is number => b !== null)
      .sort((a, b) => a - b);
    const infos: SegmentInfo[] = [];
    const buffers = new Map<number, { buffer: Buffer; ends: number[] }>();
    for (let k = 0; k < bases.length; k++) {
      const base = bases[k] as number;
      const next = bases[k + 1];
      if (next !== undefined && next - 1 <= committedThrough) {
        infos.push({ base, count: next - base });
        continue;
      }
      const path = join(dir, segmentName(base));
      const buffer = await readFile(path);
      const ends = lineEnds(buffer);
      const valid = ends[ends.length - 1] ?? 0;
      if (valid < buffer.length) {
        notes.push(`${segmentName(base)}: torn last line (${buffer.length - valid} bytes) truncated`);
        await truncate(path, valid);
      }
      buffers.set(base, { buffer: buffer.subarray(0, valid), ends });
      infos.push({ base, count: ends.length });
    }

    let plan = planRecovery(commits.entries, batches.entries, infos);
    const decoder = new TextDecoder();
    /** The record with sequence number `seq` (its JSON text, checked) and its size, or a reason it cannot be read. */
    const recordAt = (seq: number): { text: string; bytes: number } | { error: string; file: string; line: number } => {
      let base = -1;
      for (const b of bases) if (b <= seq) base = b;
      const segment = buffers.get(base);
      const index = seq - base;
      const end = segment?.ends[index];
      if (segment === undefined || end === undefined) return { error: "not in the log", file: segmentName(Math.max(base, 0)), line: index + 1 };
      const start = index === 0 ? 0 : (segment.ends[index - 1] as number);
      try {
        const text = decoder.decode(segment.buffer.subarray(start, end - 1));
        JSON.parse(text);
        return { text, bytes: end - 1 - start };
      } catch (error) {
        return { error: (error as Error).message, file: segmentName(base), line: index + 1 };
      }
    };

    const pending: ClosedBatch<string>[] = [];
    for (const entry of plan.pending) {
      const records: string[] = [];
      let recordBytes = 0;
      for (let seq = entry.first; seq <= entry.last; seq++) {
        const got = recordAt(seq);
        // A complete line that does not parse inside a logged batch is damage the log cannot
        // repair by itself: re-sending the batch without it would change what the id stands for.
        if ("error" in got) throw new LogCorruptError(join(dir, got.file), got.line, `record ${seq} of batch ${entry.id}: ${got.error}`);
        records.push(got.text);
        recordBytes += got.bytes;
      }
      pending.push({
        id: entry.id,
        first: entry.first,
        last: entry.last,
        records,
        bytes: arrayBytes(records.length, recordBytes),
        cursor: entry.cursor ?? null,
        reason: "recovered",
      });
    }

    const unbatched = { first: plan.unbatchedFirst, lines: [] as string[], bytes: [] as number[] };
    let keepUntil = plan.recordsEnd;
    if (options.discardUnbatched === true) keepUntil = plan.unbatchedFirst;
    else {
      for (let seq = plan.unbatchedFirst; seq < plan.recordsEnd; seq++) {
        const got = recordAt(seq);
        if ("error" in got) {
          // Unacknowledged garbage after the last good record (a write torn by an OS crash
          // without fsync): cut the log there.
          notes.push(`${got.file}:${got.line}: ${got.error}; the log is truncated before record ${seq}`);
          keepUntil = seq;
          break;
        }
        unbatched.lines.push(got.text);
        unbatched.bytes.push(got.bytes);
      }
    }
    // A key whose records are not all on disk was never acknowledged: forget it, and cut what
    // its append had started to write (its client posts it again, under the same key, and it
    // must not find half of it there). Such an append can only be the log's last one.
    const keys = new Map<string, KeyEntry>();
    let droppedKeys = 0;
    for (const entry of keyLog.entries) {
      if (entry.first + entry.count <= keepUntil) {
        keys.delete(entry.key);
        keys.set(entry.key, entry);
        continue;
      }
      droppedKeys++;
      if (entry.first >= plan.unbatchedFirst && entry.first < keepUntil) {
        notes.push(`records ${entry.first}..${keepUntil - 1} of the unacknowledged append under key ${JSON.stringify(entry.key)} are cut from the log`);
        keepUntil = entry.first;
      }
    }
    if (droppedKeys > 0) notes.push(`${droppedKeys} idempotency key(s) whose records are not in the log dropped`);
    const keyWindow = options.idempotencyKeys ?? DEFAULT_IDEMPOTENCY_KEYS;
    for (const key of keys.keys()) {
      if (keys.size <= keyWindow) break;
      keys.delete(key);
    }
    if (keepUntil < unbatched.first + unbatched.lines.length) {
      const kept = Math.max(0, keepUntil - unbatched.first);
      unbatched.lines.length = kept;
      unbatched.bytes.length = kept;
    }
    if (keepUntil < plan.recordsEnd) {
      const dropped = plan.recordsEnd - keepUntil;
      if (options.discardUnbatched !== true) notes.push(`${dropped} record(s) after ${keepUntil - 1} dropped`);
      await SourceLog.truncateRecords(dir, bases, buffers, keepUntil, options.fsync);
      for (let k = bases.length - 1; k >= 0 && (bases[k] as number) > keepUntil; k--) {
        bases.pop();
        infos.pop();
      }
      const last = infos[infos.length - 1];
      if (last !== undefined) last.count = keepUntil - last.base;
      plan = planRecovery(commits.entries, batches.entries, infos);
    }

    for (const base of plan.deletable) await unlink(join(dir, segmentName(base)));
    const liveBases = bases.filter((b) => !plan.deletable.includes(b));

    // Keep the batch and commit logs down to what a restart needs.
    const lastCommit = commits.entries.reduce<CommitEntry | null>((best, c) => (best === null || c.last >= best.last ? c : best), null);
    const keptBatches = plan.lastCommitted === null ? plan.pending : [plan.lastCommitted, ...plan.pending];
    if (keptBatches.length < batches.entries.length || plan.notes.length > 0) await replaceFile(batchesPath, jsonLines(keptBatches));
    if (commits.entries.length > 1) await replaceFile(commitsPath, jsonLines(lastCommit === null ? [] : [lastCommit]));
    if (keys.size < keyLog.entries.length || keyLog.problem !== null) await replaceFile(keysPath, jsonLines([...keys.values()]));
    // The splits of the batches still to send; those of committed ones are done with.
    const pendingIds = new Set(plan.pending.map((b) => b.id));
    const splits = splitLog.entries.filter((e) => pendingIds.has(e.id));
    if (splits.length < splitLog.entries.length || splitLog.problem !== null) await replaceFile(splitsPath, jsonLines(splits));
    notes.push(...plan.notes);

    // Append to the last segment when it ends where the next record starts; else start one.
    const lastBase = liveBases[liveBases.length - 1];
    const lastInfo = infos.find((i) => i.base === lastBase);
    let recordsBytes = 0;
    let segments = liveBases;
    if (lastBase === undefined || lastInfo === undefined || lastInfo.base + lastInfo.count !== plan.nextSeq) {
      segments = [...liveBases, plan.nextSeq];
    } else {
      const known = buffers.get(lastBase);
      recordsBytes = known === undefined ? 0 : (known.ends[lastInfo.count - 1] ?? 0);
    }
    const activeBase = segments[segments.length - 1] as number;
    const records = await open(join(dir, segmentName(activeBase)), "a");
    const batchesHandle = await open(batchesPath, "a");
    const splitsHandle = await open(splitsPath, "a");
    const commitsHandle = await open(commitsPath, "a");
    const keysHandle = await open(keysPath, "a");
    if (options.fsync) await syncFolder(dir);

    const log = new SourceLog(dir, options, {
      segments,
      records,
      recordsBytes,
      batches: batchesHandle,
      splitsHandle,
      splits: splits.slice(),
      commits: commitsHandle,
      keysHandle,
      keys,
      nextSeq: plan.nextSeq,
      uncommitted: plan.pending.slice(),
      lastCommittedEntry: plan.lastCommitted,
      lastCommit,
      committedThrough: plan.committedThrough,
      controlEntries: keptBatches.length + splits.length + (lastCommit === null ? 0 : 1),
    });
    const lastBatch = plan.batches[plan.batches.length - 1] ?? null;
    return {
      log,
      recovery: { nextSeq: plan.nextSeq, committedThrough: plan.committedThrough, lastBatch, pending, splits, unbatched, notes },
    };
  }

  /** Cuts the records log so that `keepUntil` is the next sequence number on disk. */
  private static async truncateRecords(
    dir: string,
    bases: readonly number[],
    buffers: ReadonlyMap<number, { buffer: Buffer; ends: number[] }>,
    keepUntil: number,
    fsync: boolean,
  ): Promise<void> {
    for (let k = bases.length - 1; k >= 0; k--) {
      const base = bases[k] as number;
      if (base > keepUntil) {
        await unlink(join(dir, segmentName(base)));
        continue;
      }
      const ends = buffers.get(base)?.ends ?? [];
      const index = keepUntil - base;
      const handle = await open(join(dir, segmentName(base)), "r+");
      try {
        await handle.truncate(index === 0 ? 0 : (ends[index - 1] ?? 0));
        // Durable before the keys file forgets the append these records belonged to.
        if (fsync) await handle.datasync();
      } finally {
        await handle.close();
      }
      return;
    }
  }

  /** The sequence number the next appended record gets. */
  get nextSeq(): number {
    return this.seq;
  }

  /** Sequence number of the last record whose commit is durable (-1 when none). */
  get committedThrough(): number {
    return this.durableCommittedThrough;
  }

  /** The error that stopped the log (a failed write or fsync), or null. */
  get error(): Error | null {
    return this.failure;
  }

  /** Segment bases on disk, for tests and metrics. */
  get segmentBases(): readonly number[] {
    return this.segments;
  }

  /**
   * Appends records, given as their JSON texts (one line each: no newline inside). Their
   * sequence numbers are assigned now, in call order; `durable` resolves once they are written
   * (and fsync'd when the log fsyncs). With `key` (an idempotency key and the fingerprint of
   * what was sent), the key and the records' numbers are logged too, durably before the
   * records; the caller checks `keyState` first: a key is appended once.
   */
  appendRecords(lines: readonly string[], key?: { key: string; hash: string }): Appended {
    const first = this.seq;
    if (lines.length === 0) return { first, last: first - 1, durable: Promise.resolve() };
    const done = this.refuse();
    if (done !== null) return { first, last: first - 1, durable: done };
    if (key !== undefined) {
      if (this.keyState(key.key) !== undefined) throw new Error(`idempotency key ${JSON.stringify(key.key)} is already logged`);
      const entry: KeyEntry = { key: key.key, hash: key.hash, first, count: lines.length };
      this.group.keys.push(entry);
      this.pendingKeys.set(entry.key, entry);
    }
    this.group.records.push(`${lines.join("\n")}\n`);
    this.group.recordCount += lines.length;
    this.seq += lines.length;
    this.schedule();
    return { first, last: this.seq - 1, durable: this.group.done.promise };
  }

  /** The append logged under an idempotency key, if the log remembers one (durable or on its way). */
  keyState(key: string): KeyState | undefined {
    const durable = this.keys.get(key);
    if (durable !== undefined) return { entry: durable, durable: true };
    const pending = this.pendingKeys.get(key);
    return pending === undefined ? undefined : { entry: pending, durable: false };
  }

  /** Logs a closed batch's boundaries; resolves once they are durable (send it only then). */
  appendBatch(entry: BatchEntry): Promise<void> {
    const done = this.refuse();
    if (done !== null) return done;
    this.group.batches.push(entry);
    this.schedule();
    return this.group.done.promise;
  }

  /**
   * Logs that records `from`..`to - 1` of batch `id` go on as two pieces split at `at`;
   * resolves once durable (send the pieces only then).
   */
  appendSplit(entry: SplitEntry): Promise<void> {
    const done = this.refuse();
    if (done !== null) return done;
    this.group.splits.push(entry);
    this.schedule();
    return this.group.done.promise;
  }

  /** Logs that a batch went all the way down the pipeline (or to the dead letters). */
  appendCommit(entry: CommitEntry): Promise<void> {
    const done = this.refuse();
    if (done !== null) return done;
    this.group.commits.push(entry);
    this.schedule();
    return this.group.done.promise;
  }

  /** Resolves once everything appended so far is durable. */
  async flush(): Promise<void> {
    while (this.failure === null && (this.running !== null || this.hasPending())) {
      this.start();
      await this.running;
    }
    if (this.failure !== null) throw this.failure;
  }

  /** Flushes and closes the files; later appends fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      await Promise.allSettled([
        this.records.close(),
        this.batchesHandle.close(),
        this.splitsHandle.close(),
        this.commitsHandle.close(),
        this.keysHandle.close(),
      ]);
    }
  }

  private refuse(): Promise<void> | null {
    const error = this.failure ?? (this.closed ? new Error(`the log in ${this.dir} is closed`) : null);
    if (error === null) return null;
    const rejected = Promise.reject(error);
    rejected.catch(() => {});
    return rejected;
  }

  private hasPending(): boolean {
    const g = this.group;
    return g.recordCount > 0 || g.batches.length > 0 || g.splits.length > 0 || g.commits.length > 0;
  }

  private schedule(): void {
    if (this.scheduled || this.running !== null) return;
    this.scheduled = true;
    // Wait for the rest of this turn of the event loop (other requests' bodies, other batches)
    // so that they share one write and one fsync.
    setImmediate(() => {
      this.scheduled = false;
      this.start();
    });
  }

  private start(): void {
    if (this.running !== null) return;
    this.running = this.run().finally(() => {
      this.running = null;
      // Appends made by the continuations of the last group (a batch closing once its records
      // are durable) found the loop still running: pick them up.
      if (this.hasPending() && this.failure === null) this.schedule();
    });
  }

  private async run(): Promise<void> {
    while (this.hasPending() && this.failure === null) {
      const group = this.group;
      this.group = emptyGroup(this.seq);
      try {
        await this.write(group);
        group.done.resolve();
      } catch (error) {
        this.failure = error instanceof Error ? error : new Error(String(error));
        for (const k of group.keys) this.pendingKeys.delete(k.key);
        group.done.reject(this.failure);
      }
    }
    if (this.failure !== null && this.hasPending()) {
      for (const k of this.group.keys) this.pendingKeys.delete(k.key);
      this.group.done.reject(this.failure);
      this.group = emptyGroup(this.seq);
    }
  }

  private async write(group: Group): Promise<void> {
    const synced: Promise<void>[] = [];
    if (group.keys.length > 0) {
      // Durable before the records are written: a key on disk whose records are not (all)
      // there is dropped at recovery, while records on disk without their key would be
      // appended again when the client re-posts them.
      await writeAll(this.keysHandle, Buffer.from(jsonLines(group.keys)));
      if (this.fsync) await this.keysHandle.datasync();
    }
    if (group.recordCount > 0) {
      if (this.recordsBytes >= this.segmentBytes) await this.roll(group.firstSeq);
      const buffer = Buffer.from(group.records.length === 1 ? (group.records[0] as string) : group.records.join(""));
      await writeAll(this.records, buffer);
      this.recordsBytes += buffer.length;
      if (this.fsync) synced.push(this.records.datasync());
    }
    if (group.batches.length > 0) {
      await writeAll(this.batchesHandle, Buffer.from(jsonLines(group.batches)));
      if (this.fsync) synced.push(this.batchesHandle.datasync());
    }
    if (group.splits.length > 0) {
      await writeAll(this.splitsHandle, Buffer.from(jsonLines(group.splits)));
      if (this.fsync) synced.push(this.splitsHandle.datasync());
    }
    if (group.commits.length > 0) {
      await writeAll(this.commitsHandle, Buffer.from(jsonLines(group.commits)));
      if (this.fsync) synced.push(this.commitsHandle.datasync());
    }
    await Promise.all(synced);
    if (group.keys.length > 0) await this.remember(group.keys);
    this.uncommitted.push(...group.batches);
    this.splits.push(...group.splits);
    this.controlEntries += group.batches.length + group.splits.length + group.commits.length;
    const lastCommit = group.commits[group.commits.length - 1];
    if (lastCommit !== undefined) {
      this.lastCommit = lastCommit;
      this.durableCommittedThrough = Math.max(this.durableCommittedThrough, lastCommit.last);
      while (this.uncommitted.length > 0 && (this.uncommitted[0] as BatchEntry).last <= this.durableCommittedThrough) {
        this.lastCommittedEntry = this.uncommitted.shift() as BatchEntry;
      }
      if (this.splits.length > 0) {
        const open = new Set(this.uncommitted.map((b) => b.id));
        this.splits = this.splits.filter((e) => open.has(e.id));
      }
      await this.compact();
    }
  }

  /** Keys whose appends are durable now: remembered, the oldest beyond the window forgotten. */
  private async remember(entries: readonly KeyEntry[]): Promise<void> {
    for (const entry of entries) {
      this.pendingKeys.delete(entry.key);
      this.keys.set(entry.key, entry);
    }
    for (const key of this.keys.keys()) {
      if (this.keys.size <= this.keyWindow) break;
      this.keys.delete(key);
    }
    this.keyLines += entries.length;
    if (this.keyLines <= 2 * this.keyWindow) return;
    const keysPath = join(this.dir, KEYS_FILE);
    await this.keysHandle.close();
    await replaceFile(keysPath, jsonLines([...this.keys.values()]));
    this.keysHandle = await open(keysPath, "a");
    this.keyLines = this.keys.size;
  }

  /** Starts a new segment at `base` (the current one is durable: every write to it was synced). */
  private async roll(base: number): Promise<void> {
    const next = await open(join(this.dir, segmentName(base)), "a");
    if (this.fsync) await syncFolder(this.dir);
    const previous = this.records;
    this.records = next;
    this.recordsBytes = 0;
    this.segments.push(base);
    await previous.close();
  }

  /** Deletes the segments whose records are all committed (durably), and rewrites long control logs. */
  private async compact(): Promise<void> {
    while (this.segments.length > 1 && (this.segments[1] as number) - 1 <= this.durableCommittedThrough) {
      const base = this.segments.shift() as number;
      await unlink(join(this.dir, segmentName(base)));
    }
    if (this.controlEntries < this.controlCompactEntries) return;
    const batches = this.lastCommittedEntry === null ? this.uncommitted : [this.lastCommittedEntry, ...this.uncommitted];
    const batchesPath = join(this.dir, BATCHES_FILE);
    const commitsPath = join(this.dir, COMMITS_FILE);
    await this.batchesHandle.close();
    await replaceFile(batchesPath, jsonLines(batches));
    this.batchesHandle = await open(batchesPath, "a");
    await this.commitsHandle.close();
    await replaceFile(commitsPath, jsonLines(this.lastCommit === null ? [] : [this.lastCommit]));
    this.commitsHandle = await open(commitsPath, "a");
    const splitsPath = join(this.dir, SPLITS_FILE);
    await this.splitsHandle.close();
    await replaceFile(splitsPath, jsonLines(this.splits));
    this.splitsHandle = await open(splitsPath, "a");
    this.controlEntries = batches.length + this.splits.length + (this.lastCommit === null ? 0 : 1);
  }
}
