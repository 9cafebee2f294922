/**
 * The file source: reads a JSONL file (relative to the data folder) and follows what is
 * appended to it, by polling.
 *
 * Resumption: every batch the source logs carries a cursor, the byte offset and line number
 * after its last record. At start the batches logged but not committed are re-sent from the
 * durable log (with their ids), and reading resumes at the cursor of the last logged batch;
 * records read but not batched before a restart are dropped from the log and read again (the
 * file still has them). So the file is never read twice past a committed batch, and a record
 * is never batched twice.
 *
 * - A line that is not JSON is skipped, logged with its line number and counted; blank lines
 *   are skipped silently. A line longer than `MAX_LINE_BYTES` counts as a bad line. (A bad
 *   line after the last logged batch is read, and so reported, again after a restart.)
 * - A last line without its newline is taken once it parses and the file has not grown for a
 *   poll interval (a writer may be in the middle of it).
 * - A file that shrinks below the cursor was truncated or replaced: reading starts over from
 *   its beginning (logged). A missing file is waited for.
 */
import { type FileHandle, open } from "node:fs/promises";
import { resolve } from "node:path";
import { Counter } from "prom-client";
import type { FileSourceModel } from "../../../model/types.js";
import type { Logger } from "../../core/contracts.js";
import type { Cursor } from "../batcher.js";
import type { RecordsIn, SourcePipeline } from "../pipeline.js";
import type { SourceKind } from "./kind.js";

export const FILE_POLL_MS = 200;
/** Bytes read at a time. */
export const READ_CHUNK_BYTES = 1024 * 1024;
/** A longer line is skipped as bad rather than buffered without bound. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

export interface FileLines {
  /** The records' texts (each line that parses), their sizes and the cursor after each. */
  records: RecordsIn & { cursors: Cursor[] };
  /** Lines that are not JSON. */
  bad: { line: number; error: string }[];
  /** Where reading stands after the complete lines consumed. */
  cursor: Cursor;
}

/**
 * Splits the complete lines of `chunk` (read at `cursor`) into records and bad lines, taking at
 * most `maxRecords` records. Bytes after the last newline are left for the next read. Pure.
 */
export function parseChunk(chunk: Uint8Array, cursor: Cursor, maxRecords: number): FileLines {
  const decoder = new TextDecoder();
  const records: FileLines["records"] = { lines: [], bytes: [], cursors: [] };
  const bad: FileLines["bad"] = [];
  let start = 0;
  let { offset, line } = cursor;
  while (records.lines.length < maxRecords) {
    const end = chunk.indexOf(0x0a, start);
    if (end === -1) break;
    let text = decoder.decode(chunk.subarray(start, end)).trim();
    offset += end + 1 - start;
    start = end + 1;
    const lineNo = line;
    line += 1;
    if (text === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      bad.push({ line: lineNo, error: (error as Error).message });
      continue;
    }
    // A lone CR inside a line is JSON white space, but not one a JSONL reader downstream should meet.
    if (text.includes("\r")) text = JSON.stringify(value);
    records.lines.push(text);
    records.bytes.push(Buffer.byteLength(text));
    records.cursors.push({ offset, line });
  }
  return { records, bad, cursor: { offset, line } };
}

export interface FileSourceOptions {
  pipeline: SourcePipeline;
  /** The file, resolved against the data folder. */
  path: string;
  log: Logger;
  /** Counts each bad line (a metric). */
  onBadLine?: () => void;
  pollMs?: number;
}

/** The file a source's `path` names, relative to the data folder. */
export function resolveSourceFile(dataDir: string, location: string): string {
  return resolve(dataDir, location);
}

export class FileSource {
  private readonly pipeline: SourcePipeline;
  private readonly path: string;
  private readonly log: Logger;
  private readonly onBadLine: () => void;
  private readonly pollMs: number;
  private cursor: Cursor;
  private running: Promise<void> | null = null;
  private stopping = false;
  private wake: (() => void) | null = null;
  private missingLogged = false;
  /** Size of the file when a last line without newline was first seen: it is taken once the file stays that size for a poll. */
  private tail: number | null = null;
  /** Skipping the rest of an over-long line. */
  private skipping = false;
  private badLines = 0;

  constructor(options: FileSourceOptions) {
    this.pipeline = options.pipeline;
    this.path = options.path;
    this.log = options.log;
    this.onBadLine = options.onBadLine ?? (() => {});
    this.pollMs = options.pollMs ?? FILE_POLL_MS;
    this.cursor = options.pipeline.recovery.lastBatch?.cursor ?? { offset: 0, line: 1 };
  }

  /** Where reading stands. */
  get position(): Cursor {
    return { ...this.cursor };
  }

  /** Bad lines skipped since start. */
  get skipped(): number {
    return this.badLines;
  }

  start(): void {
    if (this.running !== null) return;
    this.log.info("reading", { path: this.path, offset: this.cursor.offset, line: this.cursor.line });
    this.running = this.loop().catch((error: unknown) => {
      // Only the pipeline's fatal failure gets here; it is reported there.
      this.log.error("file source stopped", { path: this.path, error });
    });
  }

  /** Stops reading (the pipeline's drain does the rest). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      if (this.pipeline.room() === 0) {
        if (this.pipeline.isDraining || this.pipeline.failure !== null) return;
        // Full: wait for a commit to make room.
        await this.pipeline.whenChanged(this.pollMs);
        continue;
      }
      const progressed = await this.readOnce();
      if (!progressed && !this.stopping) await this.sleep(this.pollMs);
    }
  }

  /** Reads and appends what is there; whether anything was consumed. */
  private async readOnce(): Promise<boolean> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      if (!this.missingLogged) this.log.warn("the file does not exist yet: waiting for it", { path: this.path });
      this.missingLogged = true;
      return false;
    }
    this.missingLogged = false;
    try {
      const { size } = await handle.stat();
      if (size < this.cursor.offset) {
        this.log.warn("the file is shorter than where reading stood: it was truncated or replaced; reading it from the start", {
          path: this.path,
          size,
          offset: this.cursor.offset,
        });
        this.cursor = { offset: 0, line: 1 };
        this.tail = null;
        this.skipping = false;
      }
      if (size === this.cursor.offset) return false;
      let length = Math.min(READ_CHUNK_BYTES, size - this.cursor.offset);
      for (;;) {
        const chunk = Buffer.alloc(length);
        const { bytesRead } = await handle.read(chunk, 0, length, this.cursor.offset);
        const data = chunk.subarray(0, bytesRead);
        const newline = data.indexOf(0x0a);
        if (this.skipping) {
          if (newline === -1) {
            this.cursor = { offset: this.cursor.offset + bytesRead, line: this.cursor.line };
            return bytesRead > 0;
          }
          this.cursor = { offset: this.cursor.offset + newline + 1, line: this.cursor.line + 1 };
          this.skipping = false;
          return true;
        }
        if (newline === -1) {
          const atEnd = this.cursor.offset + bytesRead >= size;
          if (!atEnd && length < MAX_LINE_BYTES) {
            // A line longer than the chunk: read more of it.
            length = Math.min(MAX_LINE_BYTES, length * 2, size - this.cursor.offset);
            continue;
          }
          if (!atEnd || bytesRead >= MAX_LINE_BYTES) {
            this.bad(this.cursor.line, `longer than ${MAX_LINE_BYTES} bytes`);
            this.skipping = true;
            this.cursor = { offset: this.cursor.offset + bytesRead, line: this.cursor.line };
            return true;
          }
          return this.lastLine(data, size);
        }
        this.tail = null;
        return await this.consume(data);
      }
    } finally {
      await handle.close();
    }
  }

  /** The file ends in a line without a newline: take it once it parses and the file stopped growing. */
  private async lastLine(data: Buffer, size: number): Promise<boolean> {
    if (this.tail !== size) {
      this.tail = size;
      return false;
    }
    const text = data.toString("utf8").trim();
    try {
      JSON.parse(text);
    } catch {
      // Not complete yet (or never will be): wait for its newline.
      return false;
    }
    this.tail = null;
    // Pretend the newline is there; if the writer adds it later, it reads as a blank line.
    return await this.consume(Buffer.concat([data, Buffer.from("\n")]), data.length);
  }

  private async consume(data: Buffer, realLength?: number): Promise<boolean> {
    const { records, bad, cursor } = parseChunk(data, this.cursor, Math.max(1, this.pipeline.room()));
    for (const b of bad) this.bad(b.line, b.error);
    let end = cursor;
    // A synthetic newline (see lastLine) is not in the file: the next read starts at its end.
    if (realLength !== undefined && end.offset > this.cursor.offset + realLength) {
      end = { offset: this.cursor.offset + realLength, line: end.line };
      const last = records.cursors.length - 1;
      if (last >= 0) records.cursors[last] = end;
    }
    if (records.lines.length > 0) await this.pipeline.append(records);
    const progressed = end.offset !== this.cursor.offset;
    this.cursor = end;
    return progressed;
  }

  private bad(line: number, error: string): void {
    this.badLines += 1;
    this.onBadLine();
    this.log.warn("skipped a line that is not JSON", { path: this.path, line, error });
  }
}

/** `type: file`: a JSONL file read from its checkpoint, and followed as it grows. */
export const fileKind: SourceKind<FileSourceModel> = {
  rereads: true,
  open({ source, pipeline, env, log, metrics, pollMs }) {
    const badLines = new Counter({
      name: "mbc_source_bad_lines_total",
      help: "Lines of a file source that are not JSON (skipped).",
      registers: [metrics.registry],
    });
    const file = new FileSource({
      pipeline,
      path: resolveSourceFile(env.dataDir, source.location),
      log,
      onBadLine: () => badLines.inc(),
      pollMs,
    });
    return { start: () => file.start(), stop: () => file.stop() };
  },
};
