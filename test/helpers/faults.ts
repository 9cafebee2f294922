/**
 * Faults of a running system's processes, as steps a test composes (runtime-ownership.test.ts
 * uses them; an adversarial suite can reuse them with its own loads and checks):
 *
 * - `killSupervisorGroup(run)`: SIGKILL to the supervisor's process group, as when the terminal
 *   that ran it goes away or an OOM killer takes it: the children, each leading a group of its
 *   own, are orphaned and must halt by themselves. Start the system with
 *   `startSystem(sys, { detached: true })` so the group is not the test runner's.
 * - `freeze(pids)` / `thaw(pids)`: SIGSTOP / SIGCONT, to hold a process still at the worst
 *   moment (a sink that stores nothing while its callers have batches in flight).
 * - `waitGone(pids)`: until none of them is alive.
 * - `secondSupervisor(sys)`: another supervisor of the same built system on the same state
 *   folder, not tied to `sys.ports`.
 * - `startMbcRun(root, specPath)` and `supervisorPidOf(mbc)`: `mbc run` as a user starts it (not
 *   on a terminal: its logs on stderr), and the pid of the runtime it started.
 * - `childrenOf(run, prefix)`: the current pids of the children whose id starts with `prefix`.
 * - `refusedBatches(urls)`: the batches service instances answered 503 (starting, draining, busy),
 *   from their `mbc_batches_total{outcome="rejected"}`.
 * - `supervisorEvents(logs)`: the supervisor's start-up log, in order, as `msg child` strings.
 */
import { binPath } from "./cli.js";
import { type E2ESystem, metricValue, type RunningSystem, scrape } from "./e2e.js";
import { alive, type RuntimeChild, spawnRuntime, waitUntil } from "./runtime.js";

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone already.
  }
}

/** SIGKILL to the supervisor's whole process group (it must lead one: startSystem with `detached`); waits for it to die. */
export async function killSupervisorGroup(run: RunningSystem): Promise<void> {
  process.kill(-run.child.pid, "SIGKILL");
  await run.child.waitForExit(15_000);
}

export function freeze(pids: readonly number[]): void {
  for (const pid of pids) signal(pid, "SIGSTOP");
}

export function thaw(pids: readonly number[]): void {
  for (const pid of pids) signal(pid, "SIGCONT");
}

/** Waits until none of `pids` is alive. */
export function waitGone(pids: readonly number[], what: string, timeoutMs = 60_000): Promise<void> {
  return waitUntil(() => pids.every((pid) => !alive(pid)), what, timeoutMs, 50);
}

/** The current pids of the children whose id starts with `prefix` (`service:store/`, `source:`, or "" for all). */
export function childrenOf(run: RunningSystem, prefix = ""): number[] {
  return Object.entries(run.childPids())
    .filter(([id]) => id.startsWith(prefix))
    .map(([, pid]) => pid);
}

/** Another supervisor of the same built system, on the same data and state folders. */
export function secondSupervisor(sys: E2ESystem): RuntimeChild {
  return spawnRuntime(sys.bundle, [], { env: { MBC_DATA_DIR: sys.dataDir, MBC_STATE_DIR: sys.stateDir } });
}

/** `mbc run SPEC` started from `root`, off a terminal: its own lines and the runtime's logs are collected. */
export function startMbcRun(root: string, specPath: string): RuntimeChild {
  return spawnRuntime(binPath, ["run", specPath], { cwd: root });
}

/** The pid of the supervisor `mbc run` started, once it said. */
export async function supervisorPidOf(mbc: RuntimeChild): Promise<number> {
  let pid = 0;
  await waitUntil(
    () => {
      const line = mbc.lines.find((l) => l.startsWith("mbc: running "));
      pid = Number(/supervisor pid (\d+)/.exec(line ?? "")?.[1] ?? 0);
      return pid > 0;
    },
    "mbc run to start its runtime",
    30_000,
  );
  return pid;
}

/** The batches each instance answered 503 (`mbc_batches_total{outcome="rejected"}`), by URL. */
export async function refusedBatches(urls: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const url of urls) out[url] = metricValue(await scrape(url), "mbc_batches_total", { outcome: "rejected" });
  return out;
}

/** The supervisor's start-up, in order: "child started ID", "child listening ID", "system ready", … */
export function supervisorEvents(logs: readonly Record<string, unknown>[]): string[] {
  return logs
    .filter((l) => l.role === "supervisor" && typeof l.msg === "string")
    .map((l) => (typeof l.child === "string" ? `${l.msg} ${l.child}` : (l.msg as string)));
}
