/**
 * The http source: `POST {path}` with a JSON array or NDJSON.
 *
 * - The format is detected, not taken from Content-Type: a body whose first character (after
 *   white space) is `[` is a JSON array of records; anything else is NDJSON, one JSON value a
 *   line (blank lines ignored, `\r\n` allowed). A body starting with `[` that is not one array
 *   but several lines that each parse is NDJSON of arrays.
 * - `202 {"accepted": N, "first": SEQ}` once the records are in the durable log (fsync'd when
 *   `checkpoint.fsync`); `first` is the sequence number of the first one (null when N is 0).
 * - `400 {"error": reason}` for a body that is not UTF-8, is empty, or does not parse (the
 *   NDJSON reason names the line); nothing of it is logged.
 * - `413` for a body over `SOURCE_BODY_LIMIT`.
 * - `503` with `Retry-After` when the bounded queue is full, and while draining.
 */
import type { SourceModel } from "../../model/types.js";
import { HttpError, type Reply, type Route, type RouteRequest } from "../http.js";
import type { RecordsIn, SourcePipeline } from "../source.js";

/** Largest body a source takes: many batches' worth of records in one request is fine, a runaway upload is not. */
export const SOURCE_BODY_LIMIT = 16 * 1024 * 1024;
/** What a full queue asks clients to wait: batches commit within a fraction of a second when the pipeline is healthy. */
export const RETRY_AFTER_SECONDS = 1;

export type ParsedBody = ({ ok: true } & Omit<RecordsIn, "cursors">) | { ok: false; error: string };

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Decodes a body as UTF-8 (a leading BOM is dropped), or null when it is not UTF-8. */
export function decodeBody(body: Uint8Array): string | null {
  try {
    return decoder.decode(body);
  } catch {
    return null;
  }
}

function firstNonSpace(text: string): number {
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    // JSON white space (space, tab, LF, CR) and a byte order mark.
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0xfeff) return k;
  }
  return -1;
}

/** Parses NDJSON: one JSON value a non-blank line; the error names the first bad line (1-based). */
export function parseNdjson(text: string): ParsedBody {
  const records: unknown[] = [];
  const lines: string[] = [];
  const bytes: number[] = [];
  let start = 0;
  let lineNo = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    lineNo += 1;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (line === "") continue;
    try {
      records.push(JSON.parse(line));
    } catch (error) {
      return { ok: false, error: `line ${lineNo}: ${(error as Error).message}` };
    }
    // The line is valid JSON without a newline: the log keeps it as the client sent it.
    lines.push(line);
    bytes.push(Buffer.byteLength(line));
  }
  if (records.length === 0) return { ok: false, error: "the body holds no records: send a JSON array or NDJSON (one JSON value a line)" };
  return { ok: true, records, lines, bytes };
}

/** Parses a request body: a JSON array of records, or NDJSON. */
export function parseRecords(text: string): ParsedBody {
  const at = firstNonSpace(text);
  if (at === -1) return { ok: false, error: "the body is empty: send a JSON array or NDJSON (one JSON value a line)" };
  if (text[at] !== "[") return parseNdjson(text);
  let value: unknown;
  try {
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    // `[1]\n[2]`: NDJSON whose records are arrays.
    const ndjson = parseNdjson(text);
    if (ndjson.ok && ndjson.records.length > 1) return ndjson;
    return { ok: false, error: `not a JSON array: ${(error as Error).message}` };
  }
  const records = value as unknown[];
  const lines = records.map((r) => JSON.stringify(r));
  return { ok: true, records, lines, bytes: lines.map((l) => Buffer.byteLength(l)) };
}

function full(): never {
  throw new HttpError(503, "the source's queue is full: retry later", { "retry-after": String(RETRY_AFTER_SECONDS) });
}

/** The `POST {path}` route of an http source. */
export function httpSourceRoute(source: SourceModel, pipeline: SourcePipeline): Route {
  return {
    method: "POST",
    path: source.location ?? "/records",
    bodyLimit: SOURCE_BODY_LIMIT,
    async handle(req: RouteRequest): Promise<Reply> {
      // Refuse before reading the body when nothing fits: a full queue should cost little.
      if (!pipeline.hasRoom()) full();
      const decoded = decodeBody(await req.body());
      if (decoded === null) throw new HttpError(400, "the body is not UTF-8");
      const parsed = parseRecords(decoded);
      if (!parsed.ok) throw new HttpError(400, parsed.error);
      if (parsed.records.length === 0) return { status: 202, json: { accepted: 0, first: null } };
      let total = 0;
      for (const b of parsed.bytes) total += b;
      if (!pipeline.hasRoom(parsed.records.length, total)) full();
      const { first } = await pipeline.append(parsed);
      return { status: 202, json: { accepted: parsed.records.length, first } };
    },
  };
}
