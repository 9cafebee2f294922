/**
 * The runtime benchmark's load: record bodies with traceable ids, closed-loop clients (as fast
 * as the system answers) and an open-loop offer (a fixed rate whatever the answers), and the
 * check that every acknowledged record reached the sink file exactly once.
 *
 * A record is `{"id":"c{client}-{request}-{k}","at":MS,"v":"…"}` (about 100 bytes): the id
 * names the client, the client's request and the record's place in it, so the sink's lines can
 * be checked against the requests that were acknowledged.
 */
import { open } from "node:fs/promises";
import { httpRequest, sleep } from "./lib.mjs";

const PAD = "x".repeat(56);

/** A JSON array of `n` records for request `seq` of client `client`. */
export function recordsBody(client, seq, n) {
  const at = Date.now();
  let text = "[";
  for (let k = 0; k < n; k++) text += `${k === 0 ? "" : ","}{"id":"c${client}-${seq}-${k}","at":${at},"v":"${PAD}"}`;
  return `${text}]`;
}

/** Acknowledged requests of a run: `c{client}-{seq}` → records in it. */
export class Ledger {
  constructor() {
    this.requests = new Map();
    this.records = 0;
  }
  add(client, seq, n) {
    this.requests.set(`c${client}-${seq}`, n);
    this.records += n;
  }
}

/**
 * Closed loop: `clients` concurrent clients, each posting `perRequest`-record bodies one after
 * the other (keep-alive) until `durationMs` has passed or `maxRequests` of its requests were
 * taken. A 503 (queue full) is not an error: the client waits `backoffMs` and posts the same
 * body again, as a real client with records to deliver does. Any other answer, or a socket
 * error, is counted in `errors` (its records may or may not have been taken), and the client
 * goes on with new records.
 */
export async function closedLoop({ agent, url, clients, perRequest, durationMs, maxRequests = Number.POSITIVE_INFINITY, backoffMs = 10, clientBase = 0 }) {
  const ledger = new Ledger();
  const stats = { requests: 0, refused: 0, errors: 0, firstError: null, lastAckAt: 0 };
  const start = performance.now();
  const deadline = start + durationMs;
  const one = async (client) => {
    let seq = 0;
    let taken = 0;
    // The body in hand: after a 503 it is posted again, as a client with records to deliver does.
    // Encoded once: the load generator shares the machine's cores with the system it measures.
    let body = null;
    const next = () => {
      body = null;
      seq++;
    };
    while (performance.now() < deadline && taken < maxRequests) {
      body ??= Buffer.from(recordsBody(client, seq, perRequest));
      stats.requests++;
      try {
        const answer = await httpRequest(agent, "POST", url, body);
        if (answer.status === 202) {
          taken++;
          ledger.add(client, seq, perRequest);
          stats.lastAckAt = performance.now();
          next();
        } else if (answer.status === 503) {
          stats.refused++;
          await sleep(backoffMs);
        } else {
          stats.errors++;
          stats.firstError ??= `${answer.status} ${answer.body.slice(0, 200)}`;
          next();
          await sleep(backoffMs);
        }
      } catch (err) {
        stats.errors++;
        stats.firstError ??= String(err?.message ?? err);
        next();
        await sleep(backoffMs);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => one(clientBase + c)));
  return { ledger, start, ...stats };
}

/**
 * Open loop: offers `ratePerSec` records a second for `durationMs`, as `perRequest`-record
 * bodies sent at even intervals whatever the answers (at most `maxInFlight` requests at once:
 * a request due beyond that is not sent and counted as `skipped`). 503s are refused, not retried.
 */
export async function openLoop({ agent, url, ratePerSec, perRequest, durationMs, maxInFlight = 256, clientBase = 1000 }) {
  const ledger = new Ledger();
  const stats = { requests: 0, refused: 0, skipped: 0, errors: 0, firstError: null, latestMs: 0 };
  const intervalMs = (perRequest / ratePerSec) * 1000;
  const total = Math.floor(durationMs / intervalMs);
  const start = performance.now();
  const pending = new Set();
  let inFlight = 0;
  for (let k = 0; k < total; k++) {
    const due = start + k * intervalMs;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    if (inFlight >= maxInFlight) {
      stats.skipped++;
      continue;
    }
    const client = clientBase;
    const seq = k;
    const sentAt = performance.now();
    inFlight++;
    stats.requests++;
    const p = httpRequest(agent, "POST", url, recordsBody(client, seq, perRequest))
      .then(
        (answer) => {
          if (answer.status === 202) ledger.add(client, seq, perRequest);
          else if (answer.status === 503) stats.refused++;
          else {
            stats.errors++;
            stats.firstError ??= `${answer.status} ${answer.body.slice(0, 200)}`;
          }
          stats.latestMs = Math.max(stats.latestMs, performance.now() - sentAt);
        },
        (err) => {
          stats.errors++;
          stats.firstError ??= String(err?.message ?? err);
        },
      )
      .finally(() => {
        inFlight--;
        pending.delete(p);
      });
    pending.add(p);
  }
  await Promise.all([...pending]);
  return { ledger, start, offeredRecords: total * perRequest, ...stats };
}

/**
 * Follows the index of a runtime `builtin:jsonl-sink` (`P.batches`: one line
 * `{"key","end","records"}` a stored batch): `count()` reads what was added since the last call
 * and returns the records stored so far.
 */
export class SinkIndex {
  constructor(path) {
    this.path = path;
    this.offset = 0;
    this.records = 0;
    this.rest = "";
  }
  async count() {
    let handle;
    try {
      handle = await open(this.path, "r");
    } catch {
      return this.records;
    }
    try {
      const { size } = await handle.stat();
      if (size > this.offset) {
        const buf = Buffer.alloc(size - this.offset);
        const { bytesRead } = await handle.read(buf, 0, buf.length, this.offset);
        this.offset += bytesRead;
        const text = this.rest + buf.subarray(0, bytesRead).toString("utf8");
        const cut = text.lastIndexOf("\n") + 1;
        this.rest = text.slice(cut);
        for (const line of text.slice(0, cut).split("\n")) if (line !== "") this.records += JSON.parse(line).records;
      }
    } finally {
      await handle.close();
    }
    return this.records;
  }
}

/** The size of a file (0 when it does not exist yet). */
export async function fileSize(path) {
  try {
    const handle = await open(path, "r");
    try {
      return (await handle.stat()).size;
    } finally {
      await handle.close();
    }
  } catch {
    return 0;
  }
}

/**
 * Reads the sink file's lines from byte `from` on and checks them against the acknowledged
 * requests: `stored` lines, `missing` acknowledged records not found, `duplicates` records
 * found more than once, `unacknowledged` records whose request was not acknowledged (a request
 * that failed after the system took it). `lost` is true when anything acknowledged is missing.
 */
export async function verifySink(path, from, ledger) {
  const seen = new Map();
  for (const [key, n] of ledger.requests) seen.set(key, new Uint8Array(n));
  let stored = 0;
  let duplicates = 0;
  let unacknowledged = 0;
  let unreadable = 0;
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    const chunk = Buffer.alloc(4 * 1024 * 1024);
    let at = from;
    let rest = "";
    while (at < size) {
      const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, size - at), at);
      if (bytesRead === 0) break;
      at += bytesRead;
      const text = rest + chunk.subarray(0, bytesRead).toString("utf8");
      const cut = text.lastIndexOf("\n") + 1;
      rest = text.slice(cut);
      let start = 0;
      while (start < cut) {
        const end = text.indexOf("\n", start);
        stored++;
        // The id comes first in every record the load makes: `{"id":"c1-2-3",…`.
        const close = text.indexOf('"', start + 8);
        const id = text.startsWith('{"id":"c', start) && close > 0 && close < end ? text.slice(start + 7, close) : null;
        const dash = id === null ? -1 : id.lastIndexOf("-");
        const flags = dash < 0 ? undefined : seen.get(id.slice(0, dash));
        const k = dash < 0 ? Number.NaN : Number(id.slice(dash + 1));
        if (id === null || Number.isNaN(k)) unreadable++;
        else if (flags === undefined || k >= flags.length) unacknowledged++;
        else if (flags[k] === 1) duplicates++;
        else flags[k] = 1;
        start = end + 1;
      }
    }
  } finally {
    await handle.close();
  }
  let missing = 0;
  for (const flags of seen.values()) for (const f of flags) if (f === 0) missing++;
  return { acknowledged: ledger.records, stored, missing, duplicates, unacknowledged, unreadable, lost: missing > 0 };
}
