/**
 * The supervisor's wait, at start-up, for the children of one start stage to be ready before it
 * starts the stage upstream of them: what Compose's `depends_on: condition: service_healthy`
 * and systemd's ordering of start jobs do for their units.
 *
 * A child is ready when its `GET /readyz?scope=self` answers 200: it listens, its role has
 * started and, a service instance, it is registered (its own state only; its downstream was
 * waited for already). The wait for a child ends, whatever comes first:
 * - ready;
 * - given up after it exited `maxExits` times without becoming ready (a crash loop: like a
 *   systemd start job that failed, what is ordered after it starts anyway);
 * - given up at the timeout (like systemd's TimeoutStartSec).
 * A child given up on is not stopped: the supervisor keeps restarting it, and the stages above
 * it start (a source holds its batches while its first stage has no live instance, so nothing
 * is lost meanwhile). The outcome says why, with what its /readyz said last, for the log.
 */
import { type Clock, sleep } from "../core/clock.js";
import type { HttpClient } from "../core/http.js";

/** A child as the wait sees it. */
export interface StartingChild {
  readonly id: string;
  /** The base URL its current process listens at, once it said (null before). */
  url(): string | null;
  /** How many times its process exited since the wait began (the supervisor restarts it each time). */
  exits(): number;
  lastExit(): { code: number | null; signal: string | null } | null;
}

export type Readiness = { id: string; ready: true; waitedMs: number } | { id: string; ready: false; reason: string };

export interface ReadinessOptions {
  client: HttpClient;
  clock: Clock;
  /** Longest wait for one child. */
  timeoutMs: number;
  /** Between two probes of a child (default 50 ms). */
  pollMs?: number;
  /** Exits without becoming ready after which a child is given up on (default 3). */
  maxExits?: number;
  /** True once the supervisor is stopping: the wait ends. */
  stopping(): boolean;
}

export const DEFAULT_MAX_START_EXITS = 3;
/** How long one probe of /readyz may take (a process answers it from memory). */
const PROBE_TIMEOUT_MS = 1000;

/** Waits for every child of a stage (each as above); their outcomes, in order. */
export function waitForStage(children: readonly StartingChild[], options: ReadinessOptions): Promise<Readiness[]> {
  return Promise.all(children.map((child) => waitForChild(child, options)));
}

export async function waitForChild(child: StartingChild, options: ReadinessOptions): Promise<Readiness> {
  const { client, clock, timeoutMs } = options;
  const pollMs = options.pollMs ?? 50;
  const maxExits = options.maxExits ?? DEFAULT_MAX_START_EXITS;
  const began = clock.now();
  const deadline = began + timeoutMs;
  let last = "it has not started listening";
  for (;;) {
    if (options.stopping()) return { id: child.id, ready: false, reason: "the supervisor is stopping" };
    const exits = child.exits();
    if (exits >= maxExits) {
      return {
        id: child.id,
        ready: false,
        reason: `it exited ${exits} times before it was ready (last ${describeExit(child.lastExit())}); it is restarted with its backoff`,
      };
    }
    const url = child.url();
    if (url !== null) {
      try {
        // A whole second even near the deadline: a probe cut short would only say "no answer".
        const res = await client.request("GET", `${url}/readyz?scope=self`, { timeoutMs: PROBE_TIMEOUT_MS });
        if (res.status === 200) return { id: child.id, ready: true, waitedMs: clock.now() - began };
        last = `its /readyz?scope=self answered ${res.status}${reasonsOf(res.body)}`;
      } catch (err) {
        last = `its /readyz?scope=self got no answer (${err instanceof Error ? err.message : String(err)})`;
      }
    }
    if (clock.now() >= deadline) return { id: child.id, ready: false, reason: `not ready within ${timeoutMs} ms: ${last}` };
    await sleep(clock, Math.min(pollMs, Math.max(0, deadline - clock.now())));
  }
}

function describeExit(exit: { code: number | null; signal: string | null } | null): string {
  if (exit === null) return "exit unknown";
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

/** ": reason; reason" from a /readyz answer's `reasons`, or the start of its body. */
function reasonsOf(body: Buffer): string {
  const text = body.toString("utf8");
  try {
    const reasons = (JSON.parse(text) as { reasons?: unknown }).reasons;
    if (Array.isArray(reasons) && reasons.length > 0) return `: ${reasons.map(String).join("; ")}`;
  } catch {
    // Not the runtime's answer: show what it is.
  }
  return text === "" ? "" : `: ${text.slice(0, 200)}`;
}
