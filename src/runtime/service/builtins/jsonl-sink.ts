/**
 * `builtin:jsonl-sink`: appends one JSON line a record to `config.path` (resolved against the
 * data folder), idempotent by batch.
 *
 * Files, for `config.path` = P:
 * - `P`          the records, one JSON line each;
 * - `P.batches`  the index: one line `{"key": …, "end": N, "records": n}` per stored batch,
 *                where `end` is P's length once that batch was appended;
 * - `P.lock`     held while one group of batches is appended (see core/file-lock.ts).
 *
 * A batch's key is its id and its path, `source/…/sink#id` (the services it passed, this sink
 * last): a fan-out copy that reaches the sink by another path is another key, and is stored,
 * while the same batch re-sent after a restart or retried after a timeout is the same key,
 * and is skipped. A piece of a batch that its source split (`X@FROM-TO`, core/pieces.ts) is
 * skipped too when the batch, or a larger piece holding it, is stored at that path: a fan-out
 * branch that stored the whole batch before another branch refused it stores nothing twice.
 *
 * Batches are stored in groups (group commit): the batches that arrived while the previous
 * group was being written are written together. Storing a group, under the lock: catch up with
 * the index (other instances may have added to it), repair (below), drop the batches whose key
 * is known (or came earlier in the same group), append all their lines, fsync, append all their
 * index lines, fsync. So the index only ever names batches whose lines are durably in P, and
 * P's length beyond the last `end` can only be batches whose writer crashed before finishing
 * them: every lock holder (and the sink at start) truncates P back to the last `end` first. A
 * crash therefore leaves neither a duplicate nor a partial line, and a re-sent batch is
 * stored exactly once. A half-written index line (a crash during its write) is cut off too;
 * its batch, no longer indexed, is truncated and stored again when it comes back.
 *
 * A batch counts as stored (its promise resolves) only once its group's data and index lines
 * are both durable; if any step of a group fails, every batch of the group is rejected, none
 * claimed stored, and the next lock holder repairs what the failed write left. (An index write
 * that failed part way may have got whole lines in for the group's first batches, whose lines
 * were durable by then: those turn out stored, as after a crash, and their retry is skipped.)
 * Grouping is what makes the sink keep up: the lock, the catch-up and the two fsyncs cost the
 * same for one batch as for a hundred, and under load batches queue up while the disk is busy.
 *
 * The lock is held for a while rather than for one group (a lease): taking it costs about ten
 * file-system calls, more than the group's own writes, and a busy sink writes a group every few
 * milliseconds. The holder catches up once when it takes the lock (nobody else writes while it
 * holds it), checks before each group that the lock is still its own, and lets it go once it
 * has been idle for LEASE_IDLE_MS, after LEASE_MAX_MS in all, and after any failed step (so
 * that the next holder, maybe itself, repairs what the step left). After LEASE_MAX_MS it waits
 * LEASE_YIELD_MS before taking the lock again: an instance waiting for it sees it go (the lock
 * watches its file) and takes it, so instances sharing a file take turns even when all are busy.
 *
 * Several instances of one sink service share the file and its index, serialised by the lock,
 * rather than each writing its own file: a retry goes to *another* instance, so per-instance
 * files would store a batch whose first attempt timed out twice, and readers would have to
 * know to merge `P`, `P-1`, …. The instances must share P's folder (one machine, or one volume).
 * Within one process, one group is written at a time, its batches in order of arrival.
 *
 * `checkpoint.fsync: false` skips the fsyncs (faster, and a power loss may lose acknowledged
 * records; a process crash still cannot, as the page cache survives it).
 */

import { constants } from "node:fs";
import { type FileHandle, mkdir, open } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { type Clock, sleep, systemClock, type TimerHandle } from "../../core/clock.js";
import type { Logger } from "../../core/contracts.js";
import { acquireFileLock, type FileLock, type FileLockOptions } from "../../core/file-lock.js";
import { covers, type PieceRange, parsePieceId } from "../../core/pieces.js";

export interface JsonlStoreOptions {
  /** fsync data and index before a batch counts as stored (checkpoint.fsync). */
  fsync: boolean;
  log: Logger;
  lock?: FileLockOptions;
  /** How long the lock is kept between groups (default LEASE_IDLE_MS, LEASE_MAX_MS). */
  lease?: { idleMs?: number; maxMs?: number };
  /** The clock of the lease (default the system's). */
  clock?: Clock;
}

/** What the sink builtin needs from `config`. */
export interface JsonlSinkConfig {
  path: string;
}

/** `config.path`, checked, resolved against `dataDir`. */
export function sinkPath(service: string, config: Record<string, unknown>, dataDir: string): string {
  const path = config.path;
  if (path === undefined) throw new Error(`service ${service}: builtin:jsonl-sink needs config.path (the JSONL file to append to)`);
  if (typeof path !== "string" || path.trim() === "")
    throw new Error(`service ${service}: builtin:jsonl-sink's config.path must be a non-empty string, not ${JSON.stringify(path)}`);
  return isAbsolute(path) ? path : resolve(dataDir, path);
}

/**
 * The batches a store holds, by key. A key is `path#id`; an id may name a piece of a batch
 * (core/pieces.ts), and a batch or piece stored covers every piece inside it: `covers` says
 * whether a key, or a key that holds all its records, is stored.
 */
export class StoredKeys {
  private readonly exact = new Set<string>();
  /** `path#batch` → the ranges stored of it (null: the whole batch). */
  private readonly ranges = new Map<string, PieceRange["range"][]>();

  get size(): number {
    return this.exact.size;
  }

  add(key: string): void {
    if (this.exact.has(key)) return;
    this.exact.add(key);
    const { base, range } = splitKey(key);
    const list = this.ranges.get(base);
    if (list === undefined) this.ranges.set(base, [range]);
    else list.push(range);
  }

  /** This very key is stored. */
  has(key: string): boolean {
    return this.exact.has(key);
  }

  /** This key, or one that holds all its records (its batch, a larger piece), is stored. */
  covers(key: string): boolean {
    if (this.exact.has(key)) return true;
    const { base, range } = splitKey(key);
    const list = this.ranges.get(base);
    return list?.some((outer) => covers(outer, range)) ?? false;
  }
}

function splitKey(key: string): { base: string; range: PieceRange["range"] } {
  const hash = key.lastIndexOf("#");
  const path = key.slice(0, hash + 1);
  const { batch, range } = parsePieceId(key.slice(hash + 1));
  return { base: `${path}${batch}`, range };
}

/** The index key of a batch at a sink: its path (via, then the sink) and its id. */
export function batchKey(via: readonly string[], sink: string, id: string): string {
  // Service and source names cannot hold "/" or "#", so the key splits one way only.
  return `${[...via, sink].join("/")}#${id}`;
}

interface IndexLine {
  key: string;
  end: number;
}

/** A batch waiting for its group to be written. */
interface Pending {
  key: string;
  /** Its records, serialised: one JSON line each. */
  body: Buffer;
  records: number;
  resolve: (stored: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * A group stops growing at this many bytes of lines (it always takes at least one batch), so
 * that a backlog is written in bounded buffers rather than all at once.
 */
const MAX_GROUP_BYTES = 8 * 1024 * 1024;

/** The lock is let go once no batch has come for this long… */
export const LEASE_IDLE_MS = 10;
/** …or once it has been held this long, whatever is waiting… */
export const LEASE_MAX_MS = 100;
/** …and then it is taken again no sooner than this, so that another instance waiting for it gets it. */
export const LEASE_YIELD_MS = 2;

/** The lock while this store holds it, and since when (on the store's clock). */
interface Lease {
  lock: FileLock;
  since: number;
}

/** An append-only JSONL file with an index of stored batches, safe to share between processes. */
export class JsonlStore {
  private readonly keys = new StoredKeys();
  /** Bytes of the index read so far (complete lines only). */
  private indexRead = 0;
  /** The data file's length as the index says: the `end` of its last line. */
  private end = 0;
  /** Batches waiting for the next group, in order of arrival. */
  private pending: Pending[] = [];
  /** The loop writing groups while `pending` is not empty, or letting the lease go; null when idle. */
  private writing: Promise<void> | null = null;
  private closed = false;
  /** The lock, while held between groups. */
  private lease: Lease | null = null;
  /** Lets the lease go once the store has been idle for LEASE_IDLE_MS. */
  private idleTimer: TimerHandle | null = null;
  private readonly clock: Clock;

  private constructor(
    readonly path: string,
    private readonly data: FileHandle,
    private readonly index: FileHandle,
    private readonly options: JsonlStoreOptions,
  ) {
    this.clock = options.clock ?? systemClock;
  }

  /** Opens (creating) the files, loads the index and repairs what a crash left. */
  static async open(path: string, options: JsonlStoreOptions): Promise<JsonlStore> {
    await mkdir(dirname(path), { recursive: true });
    const flags = constants.O_RDWR | constants.O_CREAT;
    const data = await open(path, flags, 0o644);
    let index: FileHandle;
    try {
      index = await open(`${path}.batches`, flags, 0o644);
    } catch (err) {
      await data.close();
      throw err;
    }
    const store = new JsonlStore(path, data, index, options);
    try {
      if (options.fsync) await syncFolder(dirname(path));
      // Repairs what a crash left; the lock is let go at once, for the other instances starting.
      await store.locked(() => Promise.resolve());
      await store.letGo();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** Resolves once no group is being written and no lease is being let go. */
  async settled(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  /** Batches stored (as far as this process has read the index). */
  get size(): number {
    return this.keys.size;
  }

  /** Whether the batch (or piece) `key` is stored, itself or inside a larger piece of its batch. */
  has(key: string): boolean {
    return this.keys.covers(key);
  }

  /**
   * Stores the records of batch `key` once: true when appended now, false when it was already
   * stored. Resolves once the lines and the index line are durable.
   */
  store(key: string, records: readonly unknown[]): Promise<boolean> {
    if (this.closed) return Promise.reject(new Error(`${this.path}: the sink is closed`));
    // Keys enter `keys` only once durably indexed and never leave it: a known key needs no lock.
    if (this.keys.covers(key)) return Promise.resolve(false);
    let body: Buffer;
    try {
      body = Buffer.from(records.map((r) => `${JSON.stringify(r) ?? "null"}\n`).join(""));
    } catch (err) {
      // A record JSON cannot hold (a BigInt, a cycle): this batch fails, not its group.
      return Promise.reject(err);
    }
    return this.enqueue(key, body, records.length);
  }

  /**
   * As `store`, for records given as their JSON texts, each on one line (as the service cut
   * them from the batch's body): they are written as they came, with no parsing.
   */
  storeTexts(key: string, texts: readonly string[]): Promise<boolean> {
    if (this.closed) return Promise.reject(new Error(`${this.path}: the sink is closed`));
    if (this.keys.covers(key)) return Promise.resolve(false);
    return this.enqueue(key, Buffer.from(texts.length === 0 ? "" : `${texts.join("\n")}\n`), texts.length);
  }

  private enqueue(key: string, body: Buffer, records: number): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.pending.push({ key, body, records, resolve, reject });
      this.cancelIdleTimer();
      this.writing ??= this.drain();
    });
  }

  /** Waits for the batches being stored, then closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writing;
    await this.letGo();
    await Promise.allSettled([this.data.close(), this.index.close()]);
  }

  /** Writes groups until no batch is waiting. Never rejects: each group settles its own batches. */
  private async drain(): Promise<void> {
    // Let the calls of the current tick join the first group.
    await Promise.resolve();
    try {
      while (this.pending.length > 0) {
        const group = this.takeGroup();
        try {
          const stored = await this.commit(group);
          for (const batch of group) batch.resolve(stored.has(batch));
        } catch (err) {
          for (const batch of group) batch.reject(err);
        }
      }
    } finally {
      // Runs in the same step as the loop's last check, so no store() can slip in between.
      this.writing = null;
      if (this.lease !== null && !this.closed) this.idleTimer = this.clock.setTimer(() => this.onIdle(), this.options.lease?.idleMs ?? LEASE_IDLE_MS);
    }
  }

  /** Idle for LEASE_IDLE_MS: lets the lock go, unless batches came meanwhile (then they are written). */
  private onIdle(): void {
    this.idleTimer = null;
    if (this.writing !== null) return;
    this.writing = this.letGo().finally(() => {
      this.writing = null;
      if (this.pending.length > 0) this.writing = this.drain();
    });
  }

  private cancelIdleTimer(): void {
    if (this.idleTimer !== null) {
      this.clock.clearTimer(this.idleTimer);
      this.idleTimer = null;
    }
  }

  /** Releases the lease, if held. Never throws. */
  private async letGo(): Promise<void> {
    this.cancelIdleTimer();
    const lease = this.lease;
    this.lease = null;
    await lease?.lock.release();
  }

  /** Takes the oldest waiting batches, up to MAX_GROUP_BYTES of lines (at least one batch). */
  private takeGroup(): Pending[] {
    let bytes = 0;
    let count = 0;
    while (count < this.pending.length) {
      const size = this.pending[count]?.body.length ?? 0;
      if (count > 0 && bytes + size > MAX_GROUP_BYTES) break;
      bytes += size;
      count++;
    }
    return this.pending.splice(0, count);
  }

  /** Writes one group under the lock; returns the batches appended now (the others were already stored). */
  private async commit(group: readonly Pending[]): Promise<Set<Pending>> {
    // A group of copies of batches stored since they were queued needs no lock either.
    if (group.every((b) => this.keys.covers(b.key))) return new Set();
    return this.locked(async (verify) => {
      // After the catch-up: a batch another instance stored meanwhile, or a second copy of a
      // batch earlier in this group, is skipped (and answered false with the group).
      const fresh: Pending[] = [];
      const seen = new Set<string>();
      for (const batch of group) {
        if (this.keys.covers(batch.key) || seen.has(batch.key)) continue;
        seen.add(batch.key);
        fresh.push(batch);
      }
      if (fresh.length === 0) return new Set();
      await verify();
      await writeAll(this.data, Buffer.concat(fresh.map((b) => b.body)), this.end);
      if (this.options.fsync) await this.data.datasync();
      // Only now, with every line durable, may the index name these batches.
      let end = this.end;
      const lines = fresh.map((b) => {
        end += b.body.length;
        return `${JSON.stringify({ key: b.key, end, records: b.records })}\n`;
      });
      const indexLines = Buffer.from(lines.join(""));
      await writeAll(this.index, indexLines, this.indexRead);
      if (this.options.fsync) await this.index.datasync();
      // A failure above leaves this state as it was: the next catch-up reads or repairs what
      // the failed write left in the files.
      this.end = end;
      this.indexRead += indexLines.length;
      for (const b of fresh) this.keys.add(b.key);
      return new Set(fresh);
    });
  }

  /**
   * Runs `task` holding the lock: the lease if it is still young enough, else the lock taken
   * afresh, followed by a catch-up with the index and a repair of the data file. A failure lets
   * the lock go.
   */
  private async locked<T>(task: (verify: () => Promise<void>) => Promise<T>): Promise<T> {
    const lockPath = `${this.path}.lock`;
    if (this.lease !== null && this.clock.now() - this.lease.since >= (this.options.lease?.maxMs ?? LEASE_MAX_MS)) {
      await this.letGo();
      // A waiting instance sees the lock go (file-lock.ts watches it): give it the moment to take it.
      await sleep(this.clock, LEASE_YIELD_MS);
    }
    try {
      if (this.lease === null) {
        const lock = await acquireFileLock(lockPath, this.options.lock);
        this.lease = { lock, since: this.clock.now() };
        await this.catchUp();
      }
      const { lock } = this.lease;
      return await task(async () => {
        if (!(await lock.held())) throw new Error(`${this.path}: lost ${lockPath} (taken over as stale); not writing`);
      });
    } catch (err) {
      await this.letGo();
      throw err;
    }
  }

  /** Reads index lines added since the last look, cuts a torn last line, truncates data past the last `end`. Holds the lock. */
  private async catchUp(): Promise<void> {
    const indexSize = (await this.index.stat()).size;
    if (indexSize < this.indexRead) {
      throw new Error(`${this.path}.batches shrank from ${this.indexRead} to ${indexSize} bytes while in use: it was changed outside the sink`);
    }
    if (indexSize > this.indexRead) {
      const tail = Buffer.alloc(indexSize - this.indexRead);
      await readAll(this.index, tail, this.indexRead);
      const complete = tail.lastIndexOf(0x0a) + 1;
      let offset = this.indexRead;
      for (const text of tail.subarray(0, complete).toString("utf8").split("\n")) {
        if (text === "") continue;
        const entry = parseIndexLine(text);
        if (entry === null) throw new Error(`${this.path}.batches: unreadable line at byte ${offset}: ${JSON.stringify(text.slice(0, 200))}`);
        this.keys.add(entry.key);
        this.end = entry.end;
        offset += Buffer.byteLength(text) + 1;
      }
      this.indexRead += complete;
      if (complete < tail.length) {
        // A torn line: its writer crashed before finishing it (we hold the lock, nobody is writing).
        this.options.log.warn("cutting an index line left unfinished by a crash", { file: `${this.path}.batches`, bytes: tail.length - complete });
        await this.index.truncate(this.indexRead);
        if (this.options.fsync) await this.index.datasync();
      }
    }
    const dataSize = (await this.data.stat()).size;
    if (dataSize > this.end) {
      this.options.log.warn("removing the lines of a batch whose storing was interrupted", { file: this.path, bytes: dataSize - this.end });
      await this.data.truncate(this.end);
      if (this.options.fsync) await this.data.datasync();
    } else if (dataSize < this.end) {
      throw new Error(
        `${this.path} holds ${dataSize} bytes but its index ${this.path}.batches says ${this.end}: the file was changed outside the sink (move both away to start afresh)`,
      );
    }
  }
}

function parseIndexLine(text: string): IndexLine | null {
  try {
    const v = JSON.parse(text) as Partial<IndexLine>;
    if (typeof v.key === "string" && typeof v.end === "number" && Number.isSafeInteger(v.end) && v.end >= 0) return { key: v.key, end: v.end };
  } catch {
    // Reported by the caller with the line's position.
  }
  return null;
}

async function writeAll(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

async function readAll(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await handle.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error("the file shrank while being read");
    done += bytesRead;
  }
}

/** fsync a folder, so that files just created in it survive a power loss. */
async function syncFolder(path: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "r");
    await handle.sync();
  } catch {
    // Some platforms and file systems cannot fsync a folder; the files' own fsyncs still hold.
  } finally {
    await handle?.close();
  }
}
