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
 * - Each record is kept as the JSON text the client wrote (see json-text.ts).
 *
 * Idempotency (optional): a request may carry `Idempotency-Key: KEY` (the IETF httpapi draft's
 * header, as Stripe's API uses it; a bare value or a quoted Structured Field string; at most
 * 255 printable ASCII characters). Its records are logged with the key and a fingerprint of the
 * body, in the same group commit. The same key posted again with the same body is answered
 * `202` with the first answer's `accepted` and `first` (and `Idempotent-Replayed: true`),
 * appending nothing — after a restart too, as the key is in the durable log; with another body
 * it is `422`; while the first request with that key is still being made durable, `409` with
 * `Retry-After`. The log remembers the last `DEFAULT_IDEMPOTENCY_KEYS` keys. A request without
 * the header is taken as before.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Counter } from "prom-client";
import type { HttpSourceModel } from "../../../model/types.js";
import { classifyError } from "../../core/failure.js";
import { HttpError, type Reply, type Route, type RouteRequest } from "../../core/http.js";
import { jsonLine, splitJsonArray, textBytes } from "../../core/json-text.js";
import { type KeyState, MAX_IDEMPOTENCY_KEY_LENGTH } from "../log.js";
import type { RecordsIn, SourcePipeline } from "../pipeline.js";
import type { SourceKind } from "./kind.js";

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

/** Why `text` is not JSON, in JSON.parse's words; null when JSON.parse takes it after all. */
function jsonError(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * Parses NDJSON: one JSON value a non-blank line; the error names the first bad line (1-based).
 * `ascii`: the text came from as many bytes as it has characters (sizes need no counting).
 */
export function parseNdjson(text: string, ascii = false): ParsedBody {
  const lines: string[] = [];
  let start = 0;
  let lineNo = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    lineNo += 1;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (line === "") continue;
    // The line as the client sent it (a lone CR inside, white space, is taken out).
    let checked = jsonLine(line);
    if (checked === null) {
      const error = jsonError(line);
      if (error !== null) return { ok: false, error: `line ${lineNo}: ${error}` };
      checked = JSON.stringify(JSON.parse(line));
    }
    lines.push(checked);
  }
  if (lines.length === 0) return { ok: false, error: "the body holds no records: send a JSON array or NDJSON (one JSON value a line)" };
  return { ok: true, lines, bytes: textBytes(lines, ascii) };
}

/**
 * Parses a request body: a JSON array of records, or NDJSON. Each record comes back as its JSON
 * text as the client wrote it (an array element over several lines is serialised compactly).
 * `ascii`: as for parseNdjson.
 */
export function parseRecords(text: string, ascii = false): ParsedBody {
  const at = firstNonSpace(text);
  if (at === -1) return { ok: false, error: "the body is empty: send a JSON array or NDJSON (one JSON value a line)" };
  if (text[at] !== "[") return parseNdjson(text, ascii);
  const lines = splitJsonArray(text, at);
  if (lines !== null) return { ok: true, lines, bytes: textBytes(lines, ascii) };
  const body = text.slice(at);
  const error = jsonError(body);
  if (error === null) {
    // JSON.parse takes what the scanner did not: JSON.parse decides.
    const records = JSON.parse(body) as unknown[];
    const texts = records.map((r) => JSON.stringify(r));
    return { ok: true, lines: texts, bytes: textBytes(texts, ascii) };
  }
  // `[1]\n[2]`: NDJSON whose records are arrays.
  const ndjson = parseNdjson(text, ascii);
  if (ndjson.ok && ndjson.lines.length > 1) return ndjson;
  return { ok: false, error: `not a JSON array: ${error}` };
}

/**
 * The answer while the queue is full: returned, not thrown, as under a sustained overload most
 * requests get it (an exception would capture a stack trace for each).
 */
function full(): Reply {
  return { status: 503, json: { error: "the source's queue is full: retry later" }, headers: { "retry-after": String(RETRY_AFTER_SECONDS) } };
}

/**
 * Appends records; a log that cannot take them (a full or failing disk) is the source being
 * unavailable, not the request being wrong: 503 with Retry-After, nothing acknowledged, and the
 * client posts them again (the process restarts and recovers meanwhile).
 */
async function appendOrUnavailable(pipeline: SourcePipeline, input: RecordsIn, key?: { key: string; hash: string }): Promise<Reply | { first: number }> {
  try {
    return await pipeline.append(input, key);
  } catch (err) {
    if (classifyError(err) !== "unavailable") throw err;
    const code = (err as NodeJS.ErrnoException).code ?? "";
    return {
      status: 503,
      json: { error: `the source cannot make records durable now (${code}): retry later` },
      headers: { "retry-after": String(RETRY_AFTER_SECONDS) },
    };
  }
}

const SF_STRING = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/;
const PRINTABLE = /^[\x20-\x7e]+$/;

/**
 * The request's `Idempotency-Key`: null without the header, HttpError 400 for one that is not a
 * key (empty, too long, not printable ASCII, sent twice). A Structured Field string (`"…"`, the
 * IETF draft's form) is unquoted; a bare value (Stripe's form) is taken as it is.
 */
export function idempotencyKey(req: Pick<IncomingMessage, "headers" | "headersDistinct">): string | null {
  // `headers` is there already; `headersDistinct` is built on first use.
  if (req.headers["idempotency-key"] === undefined) return null;
  const values = req.headersDistinct["idempotency-key"] ?? [];
  if (values.length !== 1) throw new HttpError(400, "send one Idempotency-Key header, not several");
  let key = (values[0] as string).trim();
  if (key.startsWith('"')) {
    const quoted = SF_STRING.exec(key);
    if (quoted === null) throw new HttpError(400, "the Idempotency-Key is not a valid quoted string");
    key = (quoted[1] as string).replace(/\\(["\\])/g, "$1");
  }
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH || !PRINTABLE.test(key)) {
    throw new HttpError(400, `an Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`);
  }
  return key;
}

/** The fingerprint of a body that the log keeps with its key: 128 bits of its SHA-256. */
export function bodyFingerprint(body: Uint8Array): string {
  return createHash("sha256").update(body).digest("base64url").slice(0, 22);
}

/** The answer to a request whose key the log knows already. */
function answerKnown(key: string, hash: string, known: KeyState, onReplay: () => void): Reply {
  const { entry } = known;
  if (entry.hash !== hash) {
    throw new HttpError(
      422,
      `Idempotency-Key ${JSON.stringify(key)} was used for another body (its ${entry.count} record(s) were taken from ${entry.first} on): a key stands for one request; send new records under a new key`,
    );
  }
  if (!known.durable) {
    throw new HttpError(409, `a request with Idempotency-Key ${JSON.stringify(key)} is still being logged: retry later`, {
      "retry-after": String(RETRY_AFTER_SECONDS),
    });
  }
  onReplay();
  return { status: 202, json: { accepted: entry.count, first: entry.first }, headers: { "idempotent-replayed": "true" } };
}

export interface HttpSourceHooks {
  /** A keyed request was answered from the log, appending nothing (a metric). */
  onReplay?: () => void;
}

/** The `POST {path}` route of an http source. */
export function httpSourceRoute(source: HttpSourceModel, pipeline: SourcePipeline, hooks: HttpSourceHooks = {}): Route {
  const onReplay = hooks.onReplay ?? (() => {});
  return {
    method: "POST",
    path: source.location,
    bodyLimit: SOURCE_BODY_LIMIT,
    async handle(req: RouteRequest): Promise<Reply> {
      const key = idempotencyKey(req.raw);
      // Refuse before reading the body when nothing fits: a full queue should cost little.
      // (A key the log knows needs no room: its answer is in the log.)
      if (!pipeline.hasRoom() && (key === null || pipeline.keyState(key) === undefined)) return full();
      const body = await req.body();
      const hash = key === null ? "" : bodyFingerprint(body);
      const known = key === null ? undefined : pipeline.keyState(key);
      if (key !== null && known !== undefined) return answerKnown(key, hash, known, onReplay);
      // Requests read at the same time all found room; once one of them took it, the others
      // need not be parsed to be refused.
      if (!pipeline.hasRoom()) return full();
      const decoded = decodeBody(body);
      if (decoded === null) throw new HttpError(400, "the body is not UTF-8");
      const parsed = parseRecords(decoded, decoded.length === body.length);
      if (!parsed.ok) throw new HttpError(400, parsed.error);
      const n = parsed.lines.length;
      if (n === 0) return { status: 202, json: { accepted: 0, first: null } };
      let total = 0;
      for (const b of parsed.bytes) total += b;
      if (!pipeline.hasRoom(n, total)) return full();
      if (key === null) {
        const appended = await appendOrUnavailable(pipeline, parsed);
        return "status" in appended ? appended : { status: 202, json: { accepted: n, first: appended.first } };
      }
      // Another request with this key may have been logged while this body was read.
      const now = pipeline.keyState(key);
      if (now !== undefined) return answerKnown(key, hash, now, onReplay);
      const appended = await appendOrUnavailable(pipeline, parsed, { key, hash });
      return "status" in appended ? appended : { status: 202, json: { accepted: n, first: appended.first } };
    },
  };
}

/** `type: http`: `POST {path}` takes a JSON array or NDJSON, answered once the records are durable. */
export const httpKind: SourceKind<HttpSourceModel> = {
  rereads: false,
  open({ source, pipeline, metrics }) {
    const replays = new Counter({
      name: "mbc_source_replays_total",
      help: "Requests an http source answered from its log, appending nothing: an Idempotency-Key it had logged, posted again.",
      registers: [metrics.registry],
    });
    return { routes: [httpSourceRoute(source, pipeline, { onReplay: () => replays.inc() })] };
  },
};
