/**
 * Pieces shared by the benchmark's parts: statistics and tables, free ports, HTTP posting
 * with a keep-alive agent, child processes that are always cleaned up, and RSS sampling.
 *
 * Plain ESM with no dependencies beyond Node, so `node bench/run.mjs` runs it as is.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A text table: a header row, a rule, then the rows; numeric columns are right-aligned. */
export function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  const numeric = /^[≈<≤≥>]?\s?[0-9.,×≈<≤≥ –-]+(ms|s|×|%|MiB|M\/s|\/s)?$/;
  const right = rows[0].map((_, c) => rows.slice(1).every((r) => numeric.test(String(r[c])) || r[c] === ""));
  const line = (r) =>
    r
      .map((cell, c) => (right[c] ? String(cell).padStart(widths[c]) : String(cell).padEnd(widths[c])))
      .join("  ")
      .trimEnd();
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n");
}

export const met = (ok) => (ok ? "met" : "NOT met");

/** 1234567 → "1,234,567" (a fixed locale, so output does not depend on the machine). */
export function grouped(x, digits = 0) {
  return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function portFree(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive free ports on 127.0.0.1 from a random base (bounded tries). */
export async function freePorts(count) {
  for (let attempt = 0; attempt < 200; attempt++) {
    // Below Linux's ephemeral range (32768–60999), where an outgoing connection may take the port first.
    const base = 10_000 + Math.floor(Math.random() * (32_000 - 10_000 - count));
    let ok = true;
    for (let k = 0; k < count && ok; k++) ok = await portFree(base + k);
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** Polls `condition` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitUntil(condition, what, timeoutMs = 15_000, intervalMs = 25) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = await condition();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** A keep-alive agent like the runtime's own client (node:http, LIFO, up to `maxSockets`). */
export function keepAliveAgent(maxSockets = 64) {
  return new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: "lifo" });
}

/**
 * One request; resolves `{ status, body, headers }` (the body as a string), rejects on a
 * socket error or after `timeoutMs`.
 */
export function httpRequest(agent, method, url, body, timeoutMs = 30_000, contentType = "application/json") {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { "content-type": contentType, "content-length": Buffer.byteLength(body) };
    const req = request(url, { method, agent, headers });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: res.headers });
      });
      res.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    req.end(body);
  });
}

/** Every variable the runtime reads (src/runtime/config/): a caller's must not reach a child it starts. */
export const RUNTIME_ENV_VARS = [
  "MBC_SYSTEM",
  "MBC_REGISTRY_URL",
  "MBC_BIND",
  "MBC_ADVERTISE_HOST",
  "MBC_STATE_DIR",
  "MBC_TOKEN",
  "MBC_DATA_DIR",
  "MBC_PORT",
  "MBC_NAMESPACE",
  "MBC_REGISTRY_ENDPOINTS",
  "MBC_REGISTRY_USER",
  "MBC_REGISTRY_PASSWORD",
  "MBC_REGISTRY_CA",
  "MBC_REGISTRY_CERT",
  "MBC_REGISTRY_KEY",
];

/** The environment for a child: ours without the settings that would change what it measures. */
export function childEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of ["NODE_OPTIONS", ...RUNTIME_ENV_VARS]) delete env[k];
  return { ...env, ...extra };
}

/** Every child started with `startChild` and not yet gone, so that `killChildren` can stop them on any exit path. */
const running = new Set();

/**
 * Starts `node args…` with its output collected as lines (the last `keep` of them) and passed to
 * `onLine`. `group`: the child leads its own process group, so that killing the group takes
 * whatever it started down with it.
 */
export function startChild(args, { env = childEnv(), cwd, onLine, keep = 200, group = false } = {}) {
  const proc = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: group });
  const lines = [];
  const read = (stream) =>
    createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) => {
      lines.push(line);
      if (lines.length > keep) lines.shift();
      onLine?.(line);
    });
  read(proc.stdout);
  read(proc.stderr);
  const child = {
    proc,
    pid: proc.pid,
    lines,
    group,
    exit: null,
    exited: new Promise((resolve) => {
      proc.once("exit", (code, signal) => {
        child.exit = { code, signal };
        running.delete(child);
        resolve(child.exit);
      });
    }),
  };
  running.add(child);
  return child;
}

/** Sends `signal` to a child (to its group when it leads one); quiet when it is gone. */
export function signalChild(child, signal) {
  if (child.exit !== null) return;
  try {
    process.kill(child.group && signal === "SIGKILL" ? -child.pid : child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Waits up to `timeoutMs` for a child's exit; its exit, or null when it is still running. */
export async function waitExit(child, timeoutMs) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), timeoutMs);
  });
  const result = await Promise.race([child.exited, late]);
  clearTimeout(timer);
  return result;
}

/** Clean-up steps for processes started indirectly (a supervisor's children), run by killChildren. */
const cleanups = new Set();

/** Registers `fn` to run on killChildren; returns the function that unregisters it. */
export function onKill(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

const tempDirs = new Set();

/** A fresh folder under the system's temp folder; removed by `removeTempDir`, or by killChildren at the latest. */
export function makeTempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * Runs the registered clean-ups, SIGKILLs every child started here that is still running (and
 * the groups they lead), waits for them, and removes the temp folders left.
 */
export async function killChildren() {
  for (const fn of [...cleanups]) {
    try {
      fn();
    } catch {
      // Best effort: the next step still runs.
    }
  }
  const all = [...running];
  for (const c of all) signalChild(c, "SIGKILL");
  await Promise.all(all.map((c) => waitExit(c, 5000)));
  for (const dir of [...tempDirs]) removeTempDir(dir);
}

/** Kills a process by pid (the bench started it, through a supervisor); quiet when it is gone. */
export function killPid(pid, signal = "SIGKILL") {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resident set size of a process in bytes (Linux /proc), or null when it cannot be read. */
export function rssBytes(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export const canSampleRss = () => existsSync(`/proc/${process.pid}/status`);
