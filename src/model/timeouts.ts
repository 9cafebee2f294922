/**
 * Default timeouts (the contract's v1.1 "Deadlines, default timeouts"): a service whose timeout
 * neither it nor `defaults` sets gets `2s` when it has no `to`, and otherwise the largest timeout
 * among its `to` plus `2s`, at most `60s`. A stage then always outlasts one attempt of the stage
 * below it, so the defaults never make a timeout-inversion.
 *
 * Computed from the sinks up (Kahn's algorithm on the reversed graph), without recursion, so a
 * chain of 50,000 services costs no stack. Services on a cycle (an error of its own) and those
 * above one take `2s`.
 */

/** The default timeout of a stage with no `to`. */
export const SINK_TIMEOUT_MS = 2_000;
/** What a stage's default adds to the largest timeout below it. */
export const TIMEOUT_STEP_MS = 2_000;
/** The largest default timeout. */
export const MAX_DEFAULT_TIMEOUT_MS = 60_000;

export interface TimeoutInput {
  name: string;
  /** The timeout the service or `defaults` sets, in ms; null when neither does. */
  setMs: number | null;
  to: readonly string[];
}

/** Every service's timeout in ms, by name: its own, else the default. */
export function resolveTimeouts(services: readonly TimeoutInput[]): Map<string, number> {
  const byName = new Map(services.map((s) => [s.name, s]));
  const below = new Map(services.map((s) => [s.name, [...new Set(s.to.filter((t) => byName.has(t)))]]));
  const above = new Map<string, string[]>(services.map((s) => [s.name, []]));
  for (const s of services) for (const t of below.get(s.name) ?? []) above.get(t)?.push(s.name);
  const waiting = new Map(services.map((s) => [s.name, below.get(s.name)?.length ?? 0]));
  const timeouts = new Map<string, number>();
  const ready = services.filter((s) => waiting.get(s.name) === 0).map((s) => s.name);
  for (let i = 0; i < ready.length; i++) {
    const name = ready[i] as string;
    const s = byName.get(name) as TimeoutInput;
    const to = below.get(name) ?? [];
    let largest = 0;
    for (const t of to) largest = Math.max(largest, timeouts.get(t) ?? 0);
    timeouts.set(name, s.setMs ?? (to.length === 0 ? SINK_TIMEOUT_MS : Math.min(MAX_DEFAULT_TIMEOUT_MS, largest + TIMEOUT_STEP_MS)));
    for (const up of above.get(name) ?? []) {
      const left = (waiting.get(up) ?? 0) - 1;
      waiting.set(up, left);
      if (left === 0) ready.push(up);
    }
  }
  for (const s of services) if (!timeouts.has(s.name)) timeouts.set(s.name, s.setMs ?? SINK_TIMEOUT_MS);
  return timeouts;
}
