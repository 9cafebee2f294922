/**
 * The microbatch window of a source: records go in one by one, in sequence order, and a batch
 * closes at `maxRecords`, at `maxBytes` or `maxWait` after its first record, whichever comes
 * first. The batch id is `{source}-{firstSeq}`: sequence numbers come from the durable log, so
 * the id of a logged batch is the same after a restart.
 *
 * Size is the JSON size of the batch's records as a JSON array (`[a,b,c]`: the records' bytes,
 * the commas and the brackets), which is what the records take in the body of `POST /batch`.
 * A record that would take an open batch over `maxBytes` closes it first and starts the next
 * one; a record larger than `maxBytes` on its own makes a batch of one.
 *
 * What a record is does not matter here: a source batches the records' JSON texts.
 *
 * The timer is injected so that tests drive `maxWait` without real sleeps.
 */
import type { BatchModel } from "../../model/types.js";

/** Where a source's reading stands after a record: only the file source has one (byte offset and 1-based line of the next line to read). */
export interface Cursor {
  offset: number;
  line: number;
}

export interface ClosedBatch<R = unknown> {
  /** `{source}-{first}` */
  id: string;
  /** Sequence number of the first record. */
  first: number;
  /** Sequence number of the last record (first + records.length - 1). */
  last: number;
  records: R[];
  /** JSON size of the records as an array. */
  bytes: number;
  /** The cursor given with the last record, if any. */
  cursor: Cursor | null;
  /** Which limit closed it; `recovered` for a batch logged before a restart and not committed. */
  reason: "records" | "bytes" | "wait" | "flush" | "recovered";
}

/** The part of setTimeout/clearTimeout the batcher needs; tests pass a manual clock. */
export interface Timer {
  set(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimer: Timer = {
  set: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    // A pending window must not keep a draining process alive; drain flushes it explicitly.
    handle.unref();
    return handle;
  },
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface BatcherOptions<R = unknown> {
  source: string;
  limits: BatchModel;
  /** Called synchronously with every batch that closes, in sequence order. */
  onBatch: (batch: ClosedBatch<R>) => void;
  timer?: Timer;
}

/** The id of the batch whose first record has sequence number `first`. */
export function batchId(source: string, first: number): string {
  return `${source}-${first}`;
}

/** JSON size of `count` records of `recordBytes` total bytes, written as one array. */
export function arrayBytes(count: number, recordBytes: number): number {
  return count === 0 ? 2 : recordBytes + count + 1;
}

export class Batcher<R = unknown> {
  private readonly source: string;
  private readonly limits: BatchModel;
  private readonly onBatch: (batch: ClosedBatch<R>) => void;
  private readonly timer: Timer;
  private records: R[] = [];
  private recordBytes = 0;
  private first = -1;
  private nextSeq = 0;
  private cursor: Cursor | null = null;
  private handle: unknown = null;

  constructor(options: BatcherOptions<R>) {
    if (options.limits.maxRecords < 1) throw new RangeError("maxRecords must be at least 1");
    this.source = options.source;
    this.limits = options.limits;
    this.onBatch = options.onBatch;
    this.timer = options.timer ?? realTimer;
  }

  /** Records in the open batch. */
  get size(): number {
    return this.records.length;
  }

  /** JSON size of the open batch (0 when none is open). */
  get bytes(): number {
    return this.records.length === 0 ? 0 : arrayBytes(this.records.length, this.recordBytes);
  }

  /**
   * Adds the record with sequence number `seq`, whose JSON text takes `bytes` bytes. Within a
   * batch, sequence numbers must follow one another: the batch log stores only `first` and
   * `last`.
   */
  add(seq: number, record: R, bytes: number, cursor: Cursor | null = null): void {
    if (this.records.length > 0 && seq !== this.nextSeq)
      throw new RangeError(`record ${seq} added after ${this.nextSeq - 1}: sequence numbers must be consecutive`);
    if (this.records.length > 0 && arrayBytes(this.records.length + 1, this.recordBytes + bytes) > this.limits.maxBytes) this.close("bytes");
    if (this.records.length === 0) {
      this.first = seq;
      // maxWait counts from the first record of the batch, not from the last one.
      this.handle = this.timer.set(() => {
        this.handle = null;
        this.close("wait");
      }, this.limits.maxWaitMs);
    }
    this.records.push(record);
    this.recordBytes += bytes;
    this.nextSeq = seq + 1;
    if (cursor !== null) this.cursor = cursor;
    if (this.records.length >= this.limits.maxRecords) this.close("records");
    else if (arrayBytes(this.records.length, this.recordBytes) >= this.limits.maxBytes) this.close("bytes");
  }

  /** Closes the open batch now (drain); returns whether there was one. */
  flush(): boolean {
    if (this.records.length === 0) return false;
    this.close("flush");
    return true;
  }

  /** Stops the window's timer without closing the batch (the process is going away; the records are in the log). */
  stop(): void {
    if (this.handle !== null) this.timer.clear(this.handle);
    this.handle = null;
  }

  private close(reason: ClosedBatch<R>["reason"]): void {
    if (this.records.length === 0) return;
    this.stop();
    const batch: ClosedBatch<R> = {
      id: batchId(this.source, this.first),
      first: this.first,
      last: this.first + this.records.length - 1,
      records: this.records,
      bytes: arrayBytes(this.records.length, this.recordBytes),
      cursor: this.cursor,
      reason,
    };
    this.records = [];
    this.recordBytes = 0;
    this.first = -1;
    this.cursor = null;
    this.onBatch(batch);
  }
}
