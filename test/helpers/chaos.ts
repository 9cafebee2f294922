/**
 * The chaos suite's parts (test/runtime/chaos.test.ts): the system it runs, how it counts what
 * became of every record, the faults the other helpers do not have (a full tmpfs, the
 * dead-letter command), and the table it prints.
 *
 * - `CHAOS_FULL` (MBC_CHAOS=full, set by `npm run chaos`) picks the full sizes; `scale(short,
 *   full)` says which. The short version is the one CI runs.
 * - `chaosSpec()` is the design example's shape — an http source → `data-processing` (two
 *   instances weighted 2:1) → a jsonl sink — with `chaosHandlers()`: the example's handler, plus
 *   faults switched on by marker files in the data folder (`markers`): a poison rule (every
 *   record whose number ends in 999 is refused) and a database that is down (the handler throws
 *   ECONNREFUSED). `config.recordsPerSec` gives an instance a known capacity. `fanOut` adds a
 *   second branch, `strict` → `strict-storage`, whose handler alone refuses the poison records.
 * - `tally()` counts, from what the clients were told and what the sinks and the dead-letter
 *   folder hold: acknowledged, stored once, duplicated, dead-lettered, missing, and unexpected
 *   (stored, though never acknowledged nor possibly logged). A chunk posted under an
 *   Idempotency-Key may never be stored twice; one posted without may be once more per attempt
 *   that got no answer (the client's doing, not the system's).
 * - `tmpfsProbe()`, `mountTmpfs(dir, bytes)`, `unmountAll()` (afterEach, once the processes are
 *   gone) and `DiskFiller`: fills a file system up to ENOSPC and keeps it full until `free()`.
 * - `AnswerThief`: a proxy in front of a source that keeps a 202 from its client when asked:
 *   the records are logged, the answer never comes (`closeProxies()` in afterEach).
 * - `deadLetterCommand(sys, args)` runs `node mbc-runtime.mjs dead-letter …` on the system's state
 *   folder; `replayAvailable(sys)` says whether the bundle has that command.
 * - `Row`, `formatTable(rows)`: the table both versions print.
 */
import { execFileSync, type SpawnSyncReturns, spawnSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmdirSync, rmSync, statfsSync, writeSync } from "node:fs";
import { Agent, createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { at, type Chunk, type E2ESystem, exampleSpec, readIds, type Spec } from "./e2e.js";
import { childEnv } from "./runtime.js";

export const CHAOS_FULL = process.env.MBC_CHAOS === "full";

/** The short (CI) or the full (`npm run chaos`) value. */
export function scale<T>(short: T, full: T): T {
  return CHAOS_FULL ? full : short;
}

export const SOURCE = "input";
export const STAGE = "data-processing";
export const SINK = "result-storage";
/** The fan-out's second branch: a stage that refuses the poison records, and its sink. */
export const STRICT = "strict";
export const STRICT_SINK = "strict-storage";

/** Marker files in the data folder that switch the handlers' faults on while they exist. */
export const markers = {
  /** data-processing refuses every record whose number ends in 999 (an Error: poison). */
  poison: "reject-poison",
  /** data-processing's database is down: it throws ECONNREFUSED (a system error: unavailable). */
  dbDown: "db-down",
  /** The fan-out's `strict` stage refuses the poison records (data-processing lets them through). */
  strictPoison: "strict-rejects-poison",
} as const;

/** Whether the record with this id is one of the poison records: 1 in 1,000 (numbers ending in 999). */
export function isPoison(id: string): boolean {
  return Number(id.slice(id.lastIndexOf("-") + 1)) % 1000 === 999;
}

const HANDLER = `// The example's data-processing handler, with faults a test switches on with marker files.
import { existsSync } from "node:fs";
import { join } from "node:path";

const dataDir = process.env.MBC_DATA_DIR ?? ".";
const on = (marker) => existsSync(join(dataDir, marker));
let freeAt = 0;

export default async function processRecords(records, ctx) {
  if (on(${JSON.stringify(markers.dbDown)})) {
    throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
  }
  if (on(${JSON.stringify(markers.poison)})) {
    for (const r of records) {
      if (Number(String(r.id).split("-").pop()) % 1000 === 999) throw new Error("record " + r.id + " is not valid");
    }
  }
  // A known capacity: one server doing recordsPerSec records a second, one batch after another.
  const perSec = ctx.config?.recordsPerSec;
  if (typeof perSec === "number" && perSec > 0) {
    const now = Date.now();
    freeAt = Math.max(now, freeAt) + (records.length * 1000) / perSec;
    await new Promise((resolve) => setTimeout(resolve, freeAt - now));
  }
  return records.map((record) => ({ ...record, processedBy: ctx.service + "/" + ctx.instance }));
}
`;

const STRICT_HANDLER = `// The fan-out's second branch: refuses the poison records while its marker file exists.
import { existsSync } from "node:fs";
import { join } from "node:path";

const marker = join(process.env.MBC_DATA_DIR ?? ".", ${JSON.stringify(markers.strictPoison)});

export default async function strict(records) {
  if (existsSync(marker)) {
    for (const r of records) {
      if (Number(String(r.id).split("-").pop()) % 1000 === 999) throw new Error("record " + r.id + " fails the strict schema");
    }
  }
  return records;
}
`;

export interface ChaosSpecOptions {
  /** Each data-processing instance does this many records a second (default: as fast as it can). */
  recordsPerSec?: number;
  /** A second branch after data-processing that alone refuses the poison records. */
  fanOut?: boolean;
}

/**
 * The design example (http source → data-processing, 2 instances weighted 2:1 → jsonl sink)
 * with the chaos handler. Timeouts are generous (the sink 10 s, data-processing 30 s): on a
 * loaded machine a slow attempt must not look like a poison batch, which the suite would then
 * count as a dead letter that is no poison record's.
 */
export function chaosSpec(options: ChaosSpecOptions = {}): Spec {
  const spec = exampleSpec();
  spec.name = "chaos";
  const stage = at(spec, "services", STAGE);
  stage.handler = "./handlers/chaos.mjs";
  stage.timeout = "30s";
  if (options.recordsPerSec !== undefined) stage.config = { recordsPerSec: options.recordsPerSec };
  at(spec, "services", SINK).timeout = "10s";
  if (options.fanOut) {
    stage.to = [SINK, STRICT];
    at(spec, "services").strict = { handler: "./handlers/strict.mjs", instances: 2, timeout: "15s", to: STRICT_SINK };
    at(spec, "services")[STRICT_SINK] = { handler: "builtin:jsonl-sink", config: { path: "./data/strict.jsonl" }, timeout: "10s" };
  }
  return spec;
}

export function chaosHandlers(): Record<string, string> {
  return { "handlers/chaos.mjs": HANDLER, "handlers/strict.mjs": STRICT_HANDLER };
}

// ---------------------------------------------------------------------------------------------
// Counting

/** The chunks of one load: what its clients posted and were told. */
export interface LoadChunks {
  prefix: string;
  chunks: readonly Chunk[];
}

export interface SinkExpectation {
  file: string;
  /** Acknowledged ids this sink need not hold (the ones its branch refused, dead-lettered). */
  excused?: ReadonlySet<string>;
}

export interface Outcome {
  acknowledged: number;
  /** Acknowledged records every sink that should hold them holds exactly once. */
  storedOnce: number;
  /** Records some sink holds more often than the system may store them. */
  duplicated: number;
  /** Records in the dead-letter folder. */
  deadLettered: number;
  /** Acknowledged records a sink that should hold them lacks (and that are not dead-lettered). */
  missing: number;
  /** Records a sink holds that were never acknowledged and could not have been logged. */
  unexpected: number;
  /** Lines of the sinks that are not a JSON record with an id. */
  badLines: number;
  /** The first few examples of each problem. */
  examples: string[];
}

/**
 * What became of every record. `deadLettered`: the ids in the dead-letter folder (they are not
 * missing); a sink's `excused` ids may be absent from it.
 */
export function tally(loads: readonly LoadChunks[], sinks: readonly SinkExpectation[], deadLettered: ReadonlySet<string>): Outcome {
  const stored = sinks.map((s) => ({ ...s, read: readIds(s.file) }));
  const examples: string[] = [];
  const example = (text: string) => {
    if (examples.length < 12) examples.push(text);
  };
  /** How many copies of an id the system may have stored: once, plus once per unanswered attempt without a key. */
  const allowed = new Map<string, number>();
  const acked = new Set<string>();
  for (const { prefix, chunks } of loads) {
    for (const c of chunks) {
      const extra = c.key === undefined ? c.ambiguous : 0;
      const mayBeLogged = c.acked || c.ambiguous > 0;
      for (let n = c.first; n < c.first + c.count; n++) {
        const id = `${prefix}-${n}`;
        if (c.acked) acked.add(id);
        allowed.set(id, mayBeLogged ? 1 + extra : 0);
      }
    }
  }
  let storedOnce = 0;
  let missing = 0;
  const duplicated = new Set<string>();
  const unexpected = new Set<string>();
  for (const id of acked) {
    let once = true;
    let lacking = false;
    for (const s of stored) {
      const count = s.read.ids.get(id) ?? 0;
      if (count !== 1) once = false;
      if (count === 0 && !s.excused?.has(id) && !deadLettered.has(id)) lacking = true;
    }
    if (once) storedOnce++;
    if (lacking) {
      missing++;
      example(`missing ${id}`);
    }
  }
  for (const s of stored) {
    for (const [id, count] of s.read.ids) {
      const may = allowed.get(id) ?? 0;
      if (may === 0) {
        if (!unexpected.has(id)) example(`unexpected ${id}×${count} in ${s.file}`);
        unexpected.add(id);
      } else if (count > may) {
        if (!duplicated.has(id)) example(`duplicated ${id}×${count} in ${s.file}`);
        duplicated.add(id);
      }
    }
  }
  return {
    acknowledged: acked.size,
    storedOnce,
    duplicated: duplicated.size,
    deadLettered: deadLettered.size,
    missing,
    unexpected: unexpected.size,
    badLines: stored.reduce((n, s) => n + s.read.bad, 0),
    examples,
  };
}

// ---------------------------------------------------------------------------------------------
// The table

export interface Row {
  scenario: string;
  outcome: Outcome | null;
  /** What happened: the faults that hit, what the system said. */
  notes: string[];
  /** "ok", "FAIL: why", or "skipped: why". */
  verdict: string;
}

function cell(n: number | undefined): string {
  return n === undefined ? "-" : String(n);
}

/** The table: scenario, acknowledged, stored once, duplicated, dead-lettered, missing, verdict, notes. */
export function formatTable(rows: readonly Row[], title: string): string {
  const head = ["scenario", "acknowledged", "stored once", "duplicated", "dead-lettered", "missing", "verdict", "notes"];
  const body = rows.map((r) => [
    r.scenario,
    cell(r.outcome?.acknowledged),
    cell(r.outcome?.storedOnce),
    cell(r.outcome?.duplicated),
    cell(r.outcome?.deadLettered),
    cell(r.outcome?.missing),
    r.verdict,
    r.notes.join("; "),
  ]);
  const widths = head.map((h, k) => Math.max(h.length, ...body.map((b) => (b[k] as string).length)));
  const numeric = new Set([1, 2, 3, 4, 5]);
  const line = (cells: string[]) =>
    `| ${cells.map((c, k) => (numeric.has(k) ? c.padStart(widths[k] as number) : c.padEnd(widths[k] as number))).join(" | ")} |`;
  const rule = `|${widths.map((w, k) => (numeric.has(k) ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`;
  return [title, "", line(head), rule, ...body.map(line), ""].join("\n");
}

// ---------------------------------------------------------------------------------------------
// Random, repeatable

/** A seeded uniform [0, 1) (mulberry32): MBC_CHAOS_SEED repeats a run's choices. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const CHAOS_SEED = process.env.MBC_CHAOS_SEED !== undefined ? Number(process.env.MBC_CHAOS_SEED) : Date.now() % 1_000_000;

// ---------------------------------------------------------------------------------------------
// A full disk

/** Why a tmpfs cannot be mounted here, or null when it can (root, Linux, `mount -t tmpfs` works). */
export function tmpfsProbe(): string | null {
  if (process.platform !== "linux") return "a tmpfs mount needs Linux";
  if (process.getuid?.() !== 0) return "mounting a tmpfs needs root";
  const dir = mkdtempSync(join(tmpdir(), "mbc-tmpfs-probe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir], { stdio: "pipe" });
    execFileSync("umount", [dir], { stdio: "pipe" });
    return null;
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return `mount -t tmpfs failed: ${stderr || (err as Error).message}`;
  } finally {
    rmdirSync(dir);
  }
}

const mounts = new Set<string>();

/** Mounts a tmpfs of `bytes` on `dir` (created); `unmountAll` takes it away. */
export function mountTmpfs(dir: string, bytes: number): void {
  mkdirSync(dir, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0755`, "tmpfs", dir], { stdio: "pipe" });
  mounts.add(dir);
}

/** Unmounts every tmpfs mounted here (lazily, should a file still be open); for afterEach, after the processes are gone. */
export function unmountAll(): void {
  for (const dir of [...mounts]) {
    try {
      execFileSync("umount", ["-l", dir], { stdio: "pipe" });
    } catch {
      // Gone already.
    }
    mounts.delete(dir);
  }
}

/** Bytes a non-root writer may still take on the file system of `dir`. */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/**
 * Fills the file system of a folder up to ENOSPC with one file, and keeps it full (what the
 * system frees — a deleted log segment — is taken again every `everyMs`) until `free()`.
 */
export class DiskFiller {
  readonly file: string;
  /** Bytes the filler holds. */
  bytes = 0;
  /** Writes refused with ENOSPC: the disk was full. */
  refusals = 0;
  private fd: number;
  private timer: NodeJS.Timeout | null = null;

  constructor(dir: string, everyMs = 50) {
    this.file = join(dir, `.chaos-filler-${process.pid}`);
    this.fd = openSync(this.file, "w");
    this.top();
    this.timer = setInterval(() => this.top(), everyMs);
  }

  /** Writes until ENOSPC, in ever smaller pieces down to one page. */
  private top(): void {
    if (this.fd < 0) return;
    for (const size of [1 << 20, 1 << 16, 1 << 12]) {
      const buf = Buffer.alloc(size);
      for (;;) {
        try {
          const n = writeSync(this.fd, buf);
          this.bytes += n;
          if (n < size) break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
          this.refusals++;
          break;
        }
      }
    }
  }

  /** Space returns: the file is deleted. */
  free(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    rmSync(this.file, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// An answer that never came

/** A 202 the proxy holds back: the records are logged, and the client is still waiting. */
export interface HeldAnswer {
  key: string | null;
  /** The client's connection is cut: it never gets the answer. */
  cut(): void;
}

const proxies = new Set<AnswerThief>();

/**
 * An HTTP proxy in front of a source that, when armed, keeps the next 202 from the client: the
 * source has logged the records and answered, the client has not heard. A test then kills the
 * source and cuts the client's connection, so the client re-posts a request the system has
 * already taken — what an Idempotency-Key is for. Everything else goes through as it came; a
 * source that cannot be reached is a cut connection.
 */
export class AnswerThief {
  url = "";
  /** Answers held back so far. */
  readonly held: HeldAnswer[] = [];
  /** Requests the source took and never answered (it died with them in flight). */
  cutInFlight = 0;
  /** Requests the source refused to connect (it was not there). */
  refused = 0;
  private armed = 0;
  private wake: (() => void) | null = null;
  private readonly agent = new Agent({ keepAlive: true });
  private readonly server: Server;

  private constructor(upstream: () => string) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        let target: string;
        try {
          target = upstream();
        } catch {
          res.destroy();
          return;
        }
        const headers: Record<string, string> = {};
        for (const name of ["content-type", "idempotency-key"]) {
          const value = req.headers[name];
          if (typeof value === "string") headers[name] = value;
        }
        const body = Buffer.concat(chunks);
        const out = request(target, { method: req.method, agent: this.agent, headers: { ...headers, "content-length": body.length } }, (answer) => {
          const parts: Buffer[] = [];
          answer.on("data", (c: Buffer) => parts.push(c));
          answer.on("error", () => res.destroy());
          answer.on("end", () => {
            if (answer.statusCode === 202 && this.armed > 0) {
              this.armed--;
              this.held.push({ key: headers["idempotency-key"] ?? null, cut: () => res.destroy() });
              this.wake?.();
              return;
            }
            const relay: Record<string, string> = {};
            for (const [name, value] of Object.entries(answer.headers))
              if (typeof value === "string" && name !== "connection" && name !== "keep-alive") relay[name] = value;
            res.writeHead(answer.statusCode ?? 502, relay);
            res.end(Buffer.concat(parts));
          });
        });
        out.on("error", (err: NodeJS.ErrnoException) => {
          if (err.code === "ECONNREFUSED") this.refused++;
          else this.cutInFlight++;
          res.destroy();
        });
        out.end(body);
      });
    });
  }

  static async start(upstream: () => string): Promise<AnswerThief> {
    const proxy = new AnswerThief(upstream);
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    proxy.url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}/`;
    proxies.add(proxy);
    return proxy;
  }

  /** Holds back the next 202 and resolves with it. */
  async steal(timeoutMs: number): Promise<HeldAnswer> {
    const before = this.held.length;
    this.armed++;
    const deadline = Date.now() + timeoutMs;
    while (this.held.length === before) {
      if (Date.now() > deadline) throw new Error(`no 202 passed the proxy within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
    return this.held[before] as HeldAnswer;
  }

  close(): void {
    for (const h of this.held) h.cut();
    this.server.closeAllConnections();
    this.server.close();
    this.agent.destroy();
    proxies.delete(this);
  }
}

/** Closes every proxy still open (afterEach). */
export function closeProxies(): void {
  for (const p of [...proxies]) p.close();
}

// ---------------------------------------------------------------------------------------------
// The dead-letter command

/** `node mbc-runtime.mjs dead-letter ARGS…` on the system's state folder. */
export function deadLetterCommand(sys: E2ESystem, args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [sys.bundle, "dead-letter", ...args], {
    env: childEnv({ MBC_STATE_DIR: sys.stateDir, MBC_DATA_DIR: sys.dataDir }),
    encoding: "utf8",
    timeout: 60_000,
  });
}

/**
 * Whether the built bundle has the dead-letter command: `dead-letter list` on an empty state
 * folder succeeds. (A bundle without it refuses the unknown argument and exits 2.)
 */
export function replayAvailable(sys: E2ESystem): { available: boolean; reason: string } {
  const empty = mkdtempSync(join(tmpdir(), "mbc-dead-letter-probe-"));
  try {
    const r = spawnSync(process.execPath, [sys.bundle, "dead-letter", "list"], {
      env: childEnv({ MBC_STATE_DIR: empty, MBC_DATA_DIR: empty }),
      encoding: "utf8",
      timeout: 60_000,
    });
    if (r.status === 0) return { available: true, reason: "" };
    const said = `${r.stderr}${r.stdout}`.trim().split("\n").pop() ?? "";
    return { available: false, reason: `dead-letter list exited ${r.status ?? r.signal}: ${said.slice(0, 200)}` };
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
}
