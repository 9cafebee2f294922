/**
 * The source pipeline, shared by the http, file and generator sources: durable log → batcher →
 * batch log → dispatch → commit log.
 *
 * - `append` numbers records and writes them to the durable log (group-committed); once they
 *   are durable it hands them to the batcher, in sequence order, and resolves (an http source
 *   answers 202 only then).
 * - A closed batch's boundaries are logged and made durable before it is sent, so its id is
 *   the same after a restart. Up to `maxInFlight` batches are sent at once, in id order, and
 *   they are committed strictly in order: the commit log is always a prefix of the batch log.
 * - A send that fails says why (its delivery class, core/failure.ts):
 *   - `unavailable` (and `timeout`): back-pressure. The batch stays uncommitted and is sent
 *     again after a capped, jittered back-off (the first stage's `retry` settings), for as long
 *     as it takes — unless `deadLetterAfter` (the smallest on the batch's path) has passed since
 *     its first send. Meanwhile the queue fills and the source stops taking records.
 *   - `poison`: the batch is split in two halves of its records (the split logged durably
 *     first), each sent on as a piece `X@FROM-TO` (core/pieces.ts), and a piece that is poison
 *     again is split again; a single record that is poison goes to the dead-letter folder with
 *     the stage and the error. A batch is committed once all its pieces are stored or
 *     dead-lettered.
 *   Nothing is dead-lettered while the source drains: what failed stays uncommitted.
 * - The queue is bounded: records accepted and not committed yet, in count and in bytes (see
 *   `queueLimits`). A source stops taking records while it is full (http answers 503).
 * - At start, the batches logged but not committed are re-sent first, with their ids, then the
 *   logged records after them are batched again.
 * - `drain(deadline)`: stop intake, close the open batch, wait for what is queued and in
 *   flight up to the deadline, then flush the log. What did not finish stays uncommitted and is
 *   re-sent by the next start.
 *
 * A write or fsync error of the log is fatal (`onFatal`): records can no longer be made
 * durable, and a restart's recovery is the safe way on.
 */
import { join } from "node:path";
import { DEFAULT_RETRY } from "../../model/normalise.js";
import type { BatchModel, RetryModel, SourceModel } from "../../model/types.js";
import { retryDelay } from "../../retry/index.js";
import type { Random } from "../../shared/random.js";
import { type Clock, systemClock, type TimerHandle } from "../core/clock.js";
import type { Dispatcher, Logger, TextBatch } from "../core/contracts.js";
import type { FailureClass } from "../core/failure.js";
import type { RuntimeMetrics } from "../core/metrics.js";
import { pieceId } from "../core/pieces.js";
import { Batcher, type ClosedBatch, type Cursor, type Timer } from "./batcher.js";
import { type DeadBatch, writeDeadLetter } from "./dead-letter.js";
import { type KeyState, type Recovery, SourceLog, type SplitEntry } from "./log.js";

/** What a source reports; RuntimeMetrics has all of it. */
export type SourceMetrics = Pick<RuntimeMetrics, "recordsIn" | "recordsOut" | "batch" | "deadLetter" | "queueDepth" | "waiting" | "bisecting">;

/**
 * The back-off between sends of a batch that found a stage unavailable, when the first stage
 * gives none: the contract's default retry (100 ms doubling, capped at 5 s, full jitter).
 */
export const DEFAULT_BACKOFF: Readonly<RetryModel> = DEFAULT_RETRY;

/**
 * Batches sent at once. One at a time would leave all but one instance of a balanced service
 * idle; a few keep them busy while commits stay in order. Retries happen inside a send, so
 * this does not multiply load on a failing service beyond its retry budget.
 */
export const DEFAULT_MAX_IN_FLIGHT = 8;

/**
 * The bounded queue: records accepted and not committed yet. 64 batches' worth of records
 * (at least 1024) and of bytes (between 16 MiB and 256 MiB): enough to absorb a burst while
 * a few batches are in flight, small enough that a stuck pipeline turns into 503s within
 * seconds instead of into memory growth (queued records are held in memory until committed).
 */
export const QUEUE_BATCHES = 64;
export const MIN_QUEUE_RECORDS = 1024;
export const MIN_QUEUE_BYTES = 16 * 1024 * 1024;
export const MAX_QUEUE_BYTES = 256 * 1024 * 1024;

export interface QueueLimits {
  records: number;
  bytes: number;
}

export function queueLimits(batch: BatchModel): QueueLimits {
  return {
    records: Math.max(QUEUE_BATCHES * batch.maxRecords, MIN_QUEUE_RECORDS),
    bytes: Math.min(Math.max(QUEUE_BATCHES * batch.maxBytes, MIN_QUEUE_BYTES), MAX_QUEUE_BYTES),
  };
}

/** The folder of a source's durable log. */
export function sourceLogDir(stateDir: string, source: string): string {
  return join(stateDir, "sources", source);
}

/**
 * Records to append: their JSON texts (validated, one line each) and the texts' UTF-8 sizes.
 * The texts are what the log holds and what the batches carry: the source never needs the
 * records' values.
 */
export interface RecordsIn {
  lines: string[];
  bytes: number[];
  /** File source: where reading stands after each record. */
  cursors?: Cursor[];
}

export type DeadLetterWriter = (batch: DeadBatch, error: unknown) => Promise<unknown>;

export interface SourcePipelineOptions {
  source: SourceModel;
  /** Where `sources/NAME/` and `dead-letter/` live. */
  stateDir: string;
  fsync: boolean;
  dispatcher: Dispatcher;
  log: Logger;
  metrics: SourceMetrics;
  /** Default: the dead-letter folder of `stateDir`. */
  deadLetter?: DeadLetterWriter;
  /** Default: `queueLimits(source.batch)`. */
  queue?: QueueLimits;
  maxInFlight?: number;
  /** Drop logged records that no batch holds yet (the file source reads them again). */
  discardUnbatched?: boolean;
  timer?: Timer;
  /** Monotonic clock in ms, for batch durations (default performance.now). */
  now?: () => number;
  /**
   * Whether batches may be sent now (default: always). The role holds them while the first
   * stage has no live instance: sending would only fail and dead-letter them. Call `poke()`
   * when the answer may have changed.
   */
  canSend?: () => boolean;
  /** Called once when the log fails; the process should exit and let recovery take over. */
  onFatal?: (error: Error) => void;
  segmentBytes?: number;
  /** The back-off of a batch that found a stage unavailable (the first stage's retry; default DEFAULT_BACKOFF). */
  backoff?: RetryModel;
  /** How long a batch may wait on unavailable stages before it is dead-lettered; null (default): never. */
  deadLetterAfterMs?: number | null;
  /** The clock of back-offs and of deadLetterAfter (default the system's). */
  clock?: Clock;
  /** Uniform [0, 1) for the back-off's jitter (default Math.random). */
  random?: Random;
}

/** A piece of a batch: its records `from`..`to - 1`; the whole batch when it was never split. */
interface Piece {
  from: number;
  to: number;
  id: string;
  state: "waiting" | "sending" | "splitting" | "done";
  /** When it may be sent again after an unavailable stage (the clock's time; 0: now). */
  retryAt: number;
  /** Sends in a row that found a stage unavailable: the back-off's exponent. */
  unavailable: number;
}

interface Entry {
  batch: ClosedBatch<string>;
  /** Its boundaries are durable in the batch log. */
  logged: boolean;
  /** Its pieces in order of their records, covering the batch: one until it is split. */
  pieces: Piece[];
  /** When it was first sent (the clock's time), null before: deadLetterAfter counts from it. */
  firstSentAt: number | null;
  startedAt: number;
}

/** Splits the pieces of a batch as its split log says, in the order the splits were made. */
export function piecesAfterSplits(batch: { id: string; records: readonly unknown[] }, splits: readonly SplitEntry[]): { from: number; to: number }[] {
  let ranges = [{ from: 0, to: batch.records.length }];
  for (const split of splits) {
    if (split.id !== batch.id) continue;
    const k = ranges.findIndex((r) => r.from === split.from && r.to === split.to);
    // A split of a piece this log does not hold (a log rewritten by another version): ignore it.
    if (k < 0 || !(split.from < split.at && split.at < split.to)) continue;
    ranges = [...ranges.slice(0, k), { from: split.from, to: split.at }, { from: split.at, to: split.to }, ...ranges.slice(k + 1)];
  }
  return ranges;
}

export class SourcePipeline {
  readonly source: SourceModel;
  readonly limits: QueueLimits;
  /** What the log recovered at start (the file source resumes after `lastBatch.cursor`). */
  readonly recovery: Recovery;
  private readonly log: SourceLog;
  private readonly dispatcher: Dispatcher;
  private readonly logger: Logger;
  private readonly metrics: SourceMetrics;
  private readonly deadLetter: DeadLetterWriter;
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private readonly onFatal: (error: Error) => void;
  private readonly canSend: () => boolean;
  private readonly backoff: RetryModel;
  private readonly deadLetterAfterMs: number | null;
  private readonly clock: Clock;
  private readonly random: Random;
  private retryTimer: TimerHandle | null = null;
  private retryTimerAt = Number.POSITIVE_INFINITY;
  private readonly batcher: Batcher<string>;
  private readonly entries: Entry[] = [];
  private sending = 0;
  private appending = 0;
  private depthRecords = 0;
  private depthBytes = 0;
  private draining = false;
  /** Past the drain deadline: late answers are ignored (their batches stay uncommitted). */
  private stopped = false;
  private fatal: Error | null = null;
  private waiters: (() => void)[] = [];
  private committedBatches = 0;
  private deadLetters = 0;

  private constructor(options: SourcePipelineOptions, log: SourceLog, recovery: Recovery) {
    this.source = options.source;
    this.limits = options.queue ?? queueLimits(options.source.batch);
    this.recovery = recovery;
    this.log = log;
    this.dispatcher = options.dispatcher;
    this.logger = options.log;
    this.metrics = options.metrics;
    const stateDir = options.stateDir;
    this.deadLetter = options.deadLetter ?? ((batch, error) => writeDeadLetter(stateDir, batch, error));
    this.maxInFlight = Math.max(1, options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.now = options.now ?? (() => performance.now());
    this.onFatal = options.onFatal ?? (() => {});
    this.canSend = options.canSend ?? (() => true);
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.deadLetterAfterMs = options.deadLetterAfterMs ?? null;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.batcher = new Batcher<string>({
      source: options.source.name,
      limits: options.source.batch,
      timer: options.timer,
      onBatch: (batch) => this.closed(batch),
    });
  }

  /** Opens the source's log, recovers it, and queues what a previous run left unfinished. */
  static async open(options: SourcePipelineOptions): Promise<SourcePipeline> {
    const dir = sourceLogDir(options.stateDir, options.source.name);
    const { log, recovery } = await SourceLog.open(dir, {
      source: options.source.name,
      fsync: options.fsync,
      discardUnbatched: options.discardUnbatched,
      segmentBytes: options.segmentBytes,
    });
    const pipeline = new SourcePipeline(options, log, recovery);
    pipeline.resume(recovery);
    return pipeline;
  }

  private resume(recovery: Recovery): void {
    for (const note of recovery.notes) this.logger.warn("log recovery", { note });
    if (recovery.pending.length > 0 || recovery.unbatched.lines.length > 0) {
      this.logger.info("resuming after the last committed batch", {
        committedThrough: recovery.committedThrough,
        resend: recovery.pending.map((b) => b.id),
        unbatched: recovery.unbatched.lines.length,
      });
    }
    for (const batch of recovery.pending) {
      const pieces = piecesAfterSplits(batch, recovery.splits).map((r) => this.piece(batch, r.from, r.to));
      this.entries.push({ batch, logged: true, pieces, firstSentAt: null, startedAt: 0 });
      this.depthRecords += batch.records.length;
      this.depthBytes += recordBytes(batch);
    }
    const { first, lines, bytes } = recovery.unbatched;
    for (let k = 0; k < lines.length; k++) {
      this.depthRecords += 1;
      this.depthBytes += bytes[k] as number;
      this.batcher.add(first + k, lines[k] as string, bytes[k] as number);
    }
    // Numbers the log skipped (records lost to damage) cannot sit inside one batch: close it.
    if (first + lines.length !== this.log.nextSeq) this.batcher.flush();
    this.metrics.queueDepth(this.depthRecords);
    this.pump();
  }

  /** The sequence number the next appended record gets. */
  get nextSeq(): number {
    return this.log.nextSeq;
  }

  /** Records accepted and not committed yet. */
  get depth(): number {
    return this.depthRecords;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** The log's failure, once it failed. */
  get failure(): Error | null {
    return this.fatal;
  }

  /** Counts since start, for logs and tests. */
  get stats(): { committed: number; deadLetters: number; inFlight: number; queuedBatches: number; waiting: number; bisecting: number } {
    let waiting = 0;
    let bisecting = 0;
    for (const e of this.entries) {
      if (e.pieces.length > 1) bisecting += e.pieces.filter((p) => p.state !== "done").length;
      waiting += e.pieces.filter((p) => p.state === "waiting" && p.unavailable > 0).length;
    }
    return { committed: this.committedBatches, deadLetters: this.deadLetters, inFlight: this.sending, queuedBatches: this.entries.length, waiting, bisecting };
  }

  /** Whether `records` more records of `bytes` bytes fit in the queue. An empty queue takes anything, so a large request can always make progress. */
  hasRoom(records = 1, bytes = 0): boolean {
    if (this.draining || this.fatal !== null) return false;
    if (this.depthRecords === 0) return true;
    return this.depthRecords + records <= this.limits.records && this.depthBytes + bytes <= this.limits.bytes;
  }

  /** How many more records fit (at least 1 when the queue is empty). */
  room(): number {
    if (this.draining || this.fatal !== null) return 0;
    return Math.max(this.limits.records - this.depthRecords, this.depthRecords === 0 ? 1 : 0);
  }

  /** Resolves at the next change of the queue (a commit, a batch logged, records appended) or after `timeoutMs`. */
  whenChanged(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      const waiters = this.waiters;
      function done() {
        clearTimeout(timer);
        const k = waiters.indexOf(done);
        if (k >= 0) waiters.splice(k, 1);
        resolve();
      }
      waiters.push(done);
    });
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** What the log remembers of an idempotency key: the append made under it, and whether it is durable. */
  keyState(key: string): KeyState | undefined {
    return this.log.keyState(key);
  }

  /**
   * Appends records to the durable log; resolves with their sequence numbers once they are
   * durable and batched. Rejects while draining or after the log failed. With `key`, the key
   * is logged with them (see SourceLog.appendRecords); `keyState(key)` must be undefined.
   */
  async append(input: RecordsIn, key?: { key: string; hash: string }): Promise<{ first: number; last: number }> {
    if (this.draining) throw new Error(`source ${this.source.name} is draining`);
    if (this.fatal !== null) throw this.fatal;
    if (key !== undefined && this.log.keyState(key.key) !== undefined) throw new Error(`idempotency key ${JSON.stringify(key.key)} is already logged`);
    const n = input.lines.length;
    let total = 0;
    for (const b of input.bytes) total += b;
    this.depthRecords += n;
    this.depthBytes += total;
    this.appending += 1;
    const { first, last, durable } = this.log.appendRecords(input.lines, key);
    try {
      await durable;
    } catch (error) {
      this.appending -= 1;
      this.fail(error);
      this.notify();
      throw error;
    }
    this.appending -= 1;
    // Group commits resolve in sequence order, and so do the continuations of one group: the
    // batcher sees consecutive sequence numbers.
    for (let k = 0; k < n; k++) this.batcher.add(first + k, input.lines[k] as string, input.bytes[k] as number, input.cursors?.[k] ?? null);
    this.metrics.recordsIn(n);
    this.metrics.queueDepth(this.depthRecords);
    this.notify();
    return { first, last };
  }

  private piece(batch: ClosedBatch<string>, from: number, to: number): Piece {
    const whole = from === 0 && to === batch.records.length;
    return { from, to, id: whole ? batch.id : pieceId(batch.id, from, to), state: "waiting", retryAt: 0, unavailable: 0 };
  }

  /** The batcher closed a batch: log its boundaries, then queue it for sending. */
  private closed(batch: ClosedBatch<string>): void {
    const entry: Entry = { batch, logged: false, pieces: [this.piece(batch, 0, batch.records.length)], firstSentAt: null, startedAt: 0 };
    this.entries.push(entry);
    const boundaries =
      batch.cursor === null
        ? { id: batch.id, first: batch.first, last: batch.last }
        : { id: batch.id, first: batch.first, last: batch.last, cursor: batch.cursor };
    this.log.appendBatch(boundaries).then(
      () => {
        entry.logged = true;
        this.pump();
        this.notify();
      },
      (error: unknown) => this.fail(error),
    );
  }

  /** Sends what is waiting if it may be sent now (after `canSend` may have changed). */
  poke(): void {
    this.pump();
  }

  /**
   * Sends waiting pieces, batch by batch in id order, while fewer than maxInFlight are out; a
   * piece backing off after an unavailable stage waits for its time (a timer pumps again then).
   */
  private pump(): void {
    if (this.stopped || this.fatal !== null || !this.canSend()) return;
    const now = this.clock.now();
    let nextRetry = Number.POSITIVE_INFINITY;
    for (const entry of this.entries) {
      // Keep sends in id order: a batch whose boundaries are not durable yet holds back the ones after it.
      if (!entry.logged) break;
      for (const piece of entry.pieces) {
        if (piece.state !== "waiting") continue;
        if (piece.retryAt > now) {
          nextRetry = Math.min(nextRetry, piece.retryAt);
          continue;
        }
        if (this.sending >= this.maxInFlight) return;
        this.send(entry, piece);
      }
    }
    this.scheduleRetry(nextRetry);
  }

  /** Pumps again at `at` (the clock's time), unless a pump is due sooner already. */
  private scheduleRetry(at: number): void {
    if (!Number.isFinite(at) || at >= this.retryTimerAt) return;
    if (this.retryTimer !== null) this.clock.clearTimer(this.retryTimer);
    this.retryTimerAt = at;
    this.retryTimer = this.clock.setTimer(
      () => {
        this.retryTimer = null;
        this.retryTimerAt = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.max(0, at - this.clock.now()),
    );
  }

  private send(entry: Entry, piece: Piece): void {
    piece.state = "sending";
    entry.startedAt ||= this.now();
    entry.firstSentAt ??= this.clock.now();
    this.sending += 1;
    const { batch } = entry;
    const texts = piece.from === 0 && piece.to === batch.records.length ? batch.records : batch.records.slice(piece.from, piece.to);
    const wire: TextBatch = { id: piece.id, via: [this.source.name], texts };
    let sent: Promise<void>;
    try {
      sent = this.dispatcher.send([this.source.to], wire);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      () => {
        if (this.stopped) return;
        this.sending -= 1;
        this.metrics.recordsOut(texts.length);
        this.metrics.batch("ok", (this.now() - entry.startedAt) / 1000);
        this.pieceDone(entry, piece);
      },
      (error: unknown) => {
        if (this.stopped) return;
        this.sending -= 1;
        this.failed(entry, piece, wire, error);
      },
    );
  }

  /** A send of `piece` failed: back off, split, or (a single poison record) dead-letter. */
  private failed(entry: Entry, piece: Piece, wire: TextBatch, error: unknown): void {
    const failure = failureClassOf(error);
    const records = piece.to - piece.from;
    if (failure === "poison" && !this.draining) {
      if (records > 1) {
        this.split(entry, piece, error);
        return;
      }
      this.toDeadLetter(entry, piece, wire, error, "poison");
      return;
    }
    // Unavailable (or out of time, or poison while stopping): the piece stays uncommitted.
    const waited = entry.firstSentAt === null ? 0 : this.clock.now() - entry.firstSentAt;
    if (this.deadLetterAfterMs !== null && waited >= this.deadLetterAfterMs && !this.draining) {
      this.toDeadLetter(entry, piece, wire, error, "unavailable");
      return;
    }
    piece.unavailable += 1;
    piece.state = "waiting";
    piece.retryAt = this.clock.now() + retryDelay(this.backoff, piece.unavailable, this.random);
    this.metrics.batch("unavailable", (this.now() - entry.startedAt) / 1000);
    if (piece.unavailable === 1 || piece.unavailable % 10 === 0) {
      this.logger.warn("a stage is unavailable: the batch stays uncommitted and is sent again", {
        batch: piece.id,
        records,
        sends: piece.unavailable,
        retryInMs: Math.round(piece.retryAt - this.clock.now()),
        failure,
        error,
      });
    }
    this.gauges();
    this.pump();
    this.notify();
  }

  /** Splits a poison piece in two halves: logged durably, then both sent on. */
  private split(entry: Entry, piece: Piece, error: unknown): void {
    piece.state = "splitting";
    const at = piece.from + Math.floor((piece.to - piece.from) / 2);
    this.logger.warn("a batch is poison: splitting it to find the records that fail", {
      batch: piece.id,
      records: piece.to - piece.from,
      into: [pieceId(entry.batch.id, piece.from, at), pieceId(entry.batch.id, at, piece.to)],
      error,
    });
    this.metrics.batch("split", (this.now() - entry.startedAt) / 1000);
    this.log.appendSplit({ id: entry.batch.id, from: piece.from, to: piece.to, at }).then(
      () => {
        if (this.stopped) return;
        const k = entry.pieces.indexOf(piece);
        entry.pieces.splice(k, 1, this.piece(entry.batch, piece.from, at), this.piece(entry.batch, at, piece.to));
        this.gauges();
        this.pump();
        this.notify();
      },
      (logError: unknown) => this.fail(logError),
    );
  }

  private toDeadLetter(entry: Entry, piece: Piece, wire: TextBatch, error: unknown, failure: FailureClass): void {
    piece.state = "splitting";
    this.logger.error(
      failure === "poison"
        ? "a record is poison: writing it to the dead-letter folder"
        : "a batch waited on unavailable stages longer than deadLetterAfter: writing it to the dead-letter folder",
      { batch: wire.id, records: wire.texts.length, failure, error },
    );
    // The texts were validated when they came in (or when the log was recovered).
    const letter: DeadBatch = { id: wire.id, via: wire.via, records: wire.texts.map((t) => JSON.parse(t) as unknown), texts: wire.texts };
    this.deadLetter(letter, error).then(
      () => {
        if (this.stopped) return;
        this.deadLetters += 1;
        this.metrics.deadLetter();
        this.metrics.batch("dead-letter", (this.now() - entry.startedAt) / 1000);
        this.pieceDone(entry, piece);
      },
      (writeError: unknown) => {
        // Committing it now would lose it; leaving it uncommitted means the next start re-sends it.
        this.logger.error("could not write the dead letter; the batch stays uncommitted", { batch: wire.id, error: writeError });
        this.fail(writeError);
      },
    );
  }

  /** A piece has its outcome; once all of a batch's have, commit finished batches at the head, in order. */
  private pieceDone(entry: Entry, piece: Piece): void {
    piece.state = "done";
    if (entry.pieces.every((p) => p.state === "done")) this.finish();
    else {
      this.gauges();
      this.pump();
      this.notify();
    }
  }

  /** Commits every finished batch at the head of the queue, in order. */
  private finish(): void {
    while (this.entries.length > 0 && (this.entries[0] as Entry).pieces.every((p) => p.state === "done")) {
      const { batch } = this.entries.shift() as Entry;
      this.log.appendCommit({ id: batch.id, last: batch.last }).catch((error: unknown) => this.fail(error));
      this.depthRecords -= batch.records.length;
      this.depthBytes -= recordBytes(batch);
      this.committedBatches += 1;
    }
    this.metrics.queueDepth(this.depthRecords);
    this.gauges();
    this.pump();
    this.notify();
  }

  private gauges(): void {
    const { waiting, bisecting } = this.stats;
    this.metrics.waiting(waiting);
    this.metrics.bisecting(bisecting);
  }

  private fail(error: unknown): void {
    if (this.fatal !== null) return;
    this.fatal = error instanceof Error ? error : new Error(String(error));
    this.logger.error("the durable log failed: stopping this source", { error: this.fatal });
    this.batcher.stop();
    this.onFatal(this.fatal);
  }

  /** Whether every accepted record is committed (nothing appending, batched or in flight). */
  get idle(): boolean {
    return this.appending === 0 && this.batcher.size === 0 && this.entries.length === 0;
  }

  /**
   * Stops intake, closes the open batch, waits for queued and in-flight batches until
   * `deadlineMs` (Date.now() time), then flushes and closes the log.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    this.notify();
    // Records being appended reach the batcher once durable: wait for them before the last flush.
    await this.waitUntil(() => this.appending === 0 || this.fatal !== null, deadlineMs);
    if (this.fatal === null) this.batcher.flush();
    const finished = await this.waitUntil(() => this.entries.length === 0 || this.fatal !== null, deadlineMs);
    this.stopped = true;
    this.batcher.stop();
    if (this.retryTimer !== null) this.clock.clearTimer(this.retryTimer);
    this.retryTimer = null;
    if (!finished && this.fatal === null) {
      this.logger.warn("drain deadline reached: unfinished batches stay uncommitted and are re-sent at the next start", {
        batches: this.entries.map((e) => e.batch.id),
      });
    }
    try {
      await this.log.close();
    } catch (error) {
      this.logger.error("could not flush the durable log", { error });
    }
    this.notify();
  }

  /**
   * Stops without sending anything more: for a source whose supervisor died, whose services are
   * going away as well. Intake and sending stop at once, and answers that come later are
   * ignored (their batches stay uncommitted: never dead-lettered); appends in progress become
   * durable (they may be acknowledged) until `deadlineMs`, the open batch's boundaries are
   * logged, and the log is flushed and closed. The next start re-sends what is not committed.
   */
  async halt(deadlineMs: number): Promise<void> {
    this.draining = true;
    this.stopped = true;
    this.notify();
    await this.waitUntil(() => this.appending === 0 || this.fatal !== null, deadlineMs);
    if (this.fatal === null) this.batcher.flush();
    this.batcher.stop();
    if (this.retryTimer !== null) this.clock.clearTimer(this.retryTimer);
    this.retryTimer = null;
    if (this.entries.length > 0)
      this.logger.info("halted: unfinished batches stay uncommitted and are re-sent at the next start", { batches: this.entries.length });
    try {
      await this.log.close();
    } catch (error) {
      this.logger.error("could not flush the durable log", { error });
    }
    this.notify();
  }

  /** Waits until `done()` holds or `deadlineMs` passes; whether it holds. */
  private async waitUntil(done: () => boolean, deadlineMs: number): Promise<boolean> {
    while (!done()) {
      const left = deadlineMs - Date.now();
      if (left <= 0) return false;
      await this.whenChanged(left);
    }
    return true;
  }
}

/** The delivery class of a failed send: a DispatchFailure says; anything else counts as unavailable. */
function failureClassOf(error: unknown): FailureClass {
  const failure = (error as { failure?: unknown } | null)?.failure;
  return failure === "poison" || failure === "timeout" || failure === "unavailable" ? failure : "unavailable";
}

/** The records' own bytes of a batch (its JSON size without the brackets and commas). */
function recordBytes(batch: ClosedBatch<string>): number {
  const n = batch.records.length;
  return n === 0 ? 0 : batch.bytes - n - 1;
}
