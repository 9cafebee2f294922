/**
 * Helpers for tests of the Node runtime that run real processes.
 *
 * - `bundleEntry({ contents })` (or `{ file }`) bundles a TypeScript entry with esbuild into one
 *   .mjs file in a temporary folder, as the node target bundles mbc-runtime.mjs, so a child
 *   process runs it with plain `node` (no loader). Imports in `contents` resolve from the
 *   repository root, e.g. `import { runMain } from "./src/runtime/entry.ts"`.
 * - `makeSystem(yaml)` validates a spec and writes its system.json (and handler files) into a
 *   temporary folder; `freePorts(n)` reserves n consecutive free ports on 127.0.0.1 for
 *   the spec's fixed ports (ports.ts).
 * - `spawnRuntime(file, args)` starts a child with its output collected as lines (and as parsed
 *   JSON logs), `waitForLog`, `exited`, and `kill` (with `detached`, in a process group of its
 *   own); `killAll()` in afterEach/afterAll stops every child still running. `waitUntil` polls a condition with a deadline.
 *
 * Everything made here lives under os.tmpdir(); call the returned `cleanup` (or `cleanupAll`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { RUNTIME_ENV_VARS } from "../../bench/lib.mjs";
import { systemFileText } from "../../src/model/system-file.js";
import type { Model } from "../../src/model/types.js";
import type { SystemFile } from "../../src/runtime/core/contracts.js";
import { validateText } from "../../src/validate/index.js";
import { freePortBlock } from "./ports.js";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

const tempDirs = new Set<string>();

/** A fresh folder under the system's temp folder, removed by cleanupAll. */
export function tempDir(prefix = "mbc-runtime-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export interface Bundle {
  /** The bundled .mjs file. */
  file: string;
  dir: string;
  cleanup(): void;
}

/**
 * Bundles an entry (a TypeScript file, or TypeScript source whose imports resolve from the
 * repository root) into one ESM file, with the same settings as the runtime's bundle.
 */
export async function bundleEntry(entry: { file: string } | { contents: string }, name = "entry"): Promise<Bundle> {
  const dir = tempDir("mbc-bundle-");
  const file = join(dir, `${name}.mjs`);
  await build({
    ...("file" in entry
      ? { entryPoints: [entry.file] }
      : { stdin: { contents: entry.contents, resolveDir: repoRoot, sourcefile: `${name}.ts`, loader: "ts" as const } }),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: file,
    // Bundled CommonJS packages (prom-client) require() Node's built-ins: give the ESM bundle a require.
    banner: { js: 'import { createRequire as __mbcCreateRequire } from "node:module"; const require = __mbcCreateRequire(import.meta.url);' },
    define: { __MBC_VERSION__: JSON.stringify("0.0.0-test") },
    logLevel: "error",
  });
  return { file, dir, cleanup: () => removeDir(dir) };
}

/** `count` consecutive free ports on 127.0.0.1, reserved for this test process (see ports.ts). */
export const freePorts = freePortBlock;

export interface SystemDir {
  dir: string;
  systemPath: string;
  model: Model;
  system: SystemFile;
  cleanup(): void;
}

/**
 * Validates `yaml` (errors fail the test) and writes system.json beside the given handler files
 * (path relative to the folder → source text), as the node target would.
 */
export function makeSystem(yaml: string, files: Record<string, string> = {}): SystemDir {
  const dir = tempDir("mbc-system-");
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const { diagnostics, model } = validateText(join(dir, "microbatch.yaml"), yaml, { fileExists: (p) => p in files });
  const errors = diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0 || model === null) throw new Error(`the test spec has errors: ${errors.map((d) => `${d.code} ${d.path}: ${d.message}`).join("; ")}`);
  const handlers: Record<string, string> = {};
  for (const s of model.services) if (s.handler?.kind === "module") handlers[s.name] = s.handler.path;
  const system: SystemFile = { mbc: 1, model, handlers };
  const systemPath = join(dir, "system.json");
  writeFileSync(systemPath, systemFileText(model, handlers));
  return { dir, systemPath, model, system, cleanup: () => removeDir(dir) };
}

/** Polls `condition` until it holds; throws with `what` after `timeoutMs`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, intervalMs = 25): Promise<void> {
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
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RuntimeChild {
  proc: ChildProcess;
  pid: number;
  /** Every line written so far, stdout and stderr. */
  lines: string[];
  /** The lines that are JSON objects, parsed. */
  logs(): Record<string, unknown>[];
  waitForLog(predicate: (log: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<Exit>;
  /** Resolves with the exit, or throws after timeoutMs. */
  waitForExit(timeoutMs?: number): Promise<Exit>;
  kill(signal?: NodeJS.Signals): void;
}

const children = new Set<RuntimeChild>();

/** Scrubbed from a child's environment: the test runner's own settings must not leak in. */
const SCRUBBED = ["NODE_OPTIONS", ...RUNTIME_ENV_VARS, "VITEST_WORKER_ID"];

/** The environment for a child: the test's, scrubbed, plus `extra` (undefined removes). */
export function childEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !SCRUBBED.includes(k)) env[k] = v;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * Runs `node file args…` (under `wrap…` when given); its output is collected (and echoed when
 * MBC_TEST_ECHO=1).
 */
export function spawnRuntime(
  file: string,
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; detached?: boolean; wrap?: readonly string[] } = {},
): RuntimeChild {
  // `wrap` runs node under a command that execs it (`ip netns exec NS`): the child is still node.
  const argv = [...(options.wrap ?? []), process.execPath, file, ...args];
  const proc = spawn(argv[0] as string, argv.slice(1), {
    cwd: options.cwd ?? dirname(file),
    env: childEnv(options.env),
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, which a test may kill as a whole (as a terminal's session ends).
    detached: options.detached ?? false,
  });
  const lines: string[] = [];
  const parsed: Record<string, unknown>[] = [];
  const listeners = new Set<() => void>();
  const onLine = (line: string) => {
    lines.push(line);
    if (process.env.MBC_TEST_ECHO === "1") process.stderr.write(`[${proc.pid}] ${line}\n`);
    if (line.startsWith("{")) {
      try {
        parsed.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not JSON after all: kept in `lines` only.
      }
    }
    for (const l of listeners) l();
  };
  for (const stream of [proc.stdout, proc.stderr]) createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on("line", onLine);
  const exited = new Promise<Exit>((resolve) => {
    proc.once("exit", (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  const child: RuntimeChild = {
    proc,
    pid: proc.pid ?? 0,
    lines,
    logs: () => parsed,
    exited,
    waitForLog(predicate, what, timeoutMs = 10_000) {
      const found = parsed.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = parsed.find(predicate);
          if (hit) {
            done();
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for the log line: ${what}\n${lines.slice(-20).join("\n")}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
      });
    },
    async waitForExit(timeoutMs = 15_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`process ${proc.pid} did not exit within ${timeoutMs} ms\n${lines.slice(-20).join("\n")}`)), timeoutMs);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    kill(signal = "SIGTERM") {
      try {
        proc.kill(signal);
      } catch {
        // Already gone.
      }
    },
  };
  children.add(child);
  return child;
}

/** Kills every child still running (SIGKILL) and waits for them; for afterEach/afterAll. */
export async function killAll(): Promise<void> {
  const running = [...children];
  for (const c of running) c.kill("SIGKILL");
  await Promise.all(running.map((c) => c.exited));
}

/** Whether a process exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Removes every temp folder made here that is still there. */
export function cleanupAll(): void {
  for (const dir of [...tempDirs]) removeDir(dir);
}

export interface JsonAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

/** One HTTP request with a JSON body (fetch; a test's client needs no tuning). */
export async function httpJson(method: string, url: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<JsonAnswer> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * An entry that runs the real scaffolding (runMain: supervisor, registry, signals, heartbeat)
 * with a fake source and service role, steered by environment variables:
 * - FAKE_DRAIN_FILE: drain appends "{id} {pid}" to this file;
 * - FAKE_DRAIN_MS: drain takes this long;
 * - FAKE_CRASH_ONCE_DIR: the first start of each role (per marker file in this folder) exits 3
 *   shortly after starting;
 * - FAKE_CRASH_ALWAYS: the role with this id (`in`, `work/1`, …) exits 3 at every start;
 * - FAKE_HANG_START: the role with this id never finishes starting;
 * - FAKE_NOT_READY: the role with this id says it is not ready ("fake: never ready").
 * Routes: `POST /batch` answers 200, `POST /crash` throws an uncaught exception, `POST /reject`
 * leaves a rejection unhandled. Log lines: "fake started" {id, pid, execArgv, greeting (env GREETING)} (before the
 * process listens: the scaffolding's "started" says where), "fake drain" {id, deadline, mode};
 * it also prints one plain (non-JSON) line to stdout.
 */
export const FAKE_ROLE_ENTRY = `
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runMain, type RoleFactory } from "./src/runtime/entry.ts";

const fake: RoleFactory = (ctx) => {
  const id = ctx.spec.kind === "service" ? ctx.spec.name + "/" + ctx.spec.instance : ctx.spec.kind === "source" ? ctx.spec.name : "registry";
  return {
    routes: [
      { method: "POST", path: "/batch", handle: async (req) => ({ status: 200, json: { ok: true, got: await req.json() } }) },
      { method: "POST", path: "/crash", handle: () => { setTimeout(() => { throw new Error("boom"); }, 0); return { status: 200, json: {} }; } },
      { method: "POST", path: "/reject", handle: () => { Promise.reject(new Error("unhandled boom")); return { status: 200, json: {} }; } },
    ],
    ready: () => (process.env.FAKE_NOT_READY === id ? { ready: false, reasons: ["fake: never ready"] } : { ready: true }),
    async start() {
      if (process.env.FAKE_CRASH_ALWAYS === id) process.exit(3);
      // Busy with something that never ends (a pending promise alone would let node exit 13).
      if (process.env.FAKE_HANG_START === id) await new Promise(() => setInterval(() => {}, 1000));
      ctx.log.info("fake started", { id, pid: process.pid, execArgv: process.execArgv, greeting: process.env.GREETING ?? null });
      console.log("plain output from " + id);
      const crashDir = process.env.FAKE_CRASH_ONCE_DIR;
      if (crashDir) {
        const marker = join(crashDir, id.replace("/", "_"));
        if (!existsSync(marker)) {
          writeFileSync(marker, String(process.pid));
          setTimeout(() => process.exit(3), 50);
        }
      }
    },
    async drain(deadline, mode) {
      ctx.log.info("fake drain", { id, deadline, mode, pid: process.pid });
      const ms = Number(process.env.FAKE_DRAIN_MS ?? 0);
      if (ms > 0) await new Promise((r) => setTimeout(r, ms));
      if (process.env.FAKE_DRAIN_FILE) appendFileSync(process.env.FAKE_DRAIN_FILE, id + " " + process.pid + " " + mode + "\\n");
    },
  };
};

await runMain({ argv: process.argv.slice(2), vars: process.env, entry: process.argv[1] ?? "", roles: { source: fake, service: fake } });
`;
