/**
 * Time as the runtime reads it. Heartbeats, TTLs, polls, leases, lock waits and back-off take a
 * Clock, so their unit tests run on a manual clock and never depend on how fast the machine is.
 * Processes use `systemClock`.
 */

/** An opaque timer handle, given back to `clearTimer`. */
export type TimerHandle = unknown;

export interface Clock {
  /** Milliseconds on Date.now's scale: deadlines, TTLs and lease ages are compared on it. */
  now(): number;
  /**
   * Calls `callback` once after `ms`. The timer does not keep the process alive on its own: a
   * runtime process lives for its server, and a drain stops its timers explicitly.
   */
  setTimer(callback: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(callback, ms) {
    const handle = setTimeout(callback, ms);
    handle.unref();
    return handle;
  },
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Resolves after `ms` on `clock`. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    clock.setTimer(resolve, ms);
  });
}
