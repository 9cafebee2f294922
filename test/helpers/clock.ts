/**
 * A manual clock for unit tests of the runtime's timing: nothing happens until the test moves
 * time with `advance(ms)`, which runs the timers that come due in order of their time (ties in
 * the order they were set) and lets the promise callbacks each of them starts settle before the
 * next one runs.
 */
import type { Clock, TimerHandle } from "../../src/runtime/core/clock.js";

interface Pending {
  at: number;
  seq: number;
  callback: () => void;
}

/** Lets queued promise callbacks and I/O callbacks run (not a wait on the clock). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly timers = new Map<number, Pending>();
  private readonly timerWaiters: (() => void)[] = [];

  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.time + Math.max(0, ms), seq: id, callback });
    for (const wake of this.timerWaiters.splice(0)) wake();
    return id;
  }

  clearTimer(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  /** Timers not yet run. */
  get pending(): number {
    return this.timers.size;
  }

  /**
   * Resolves when the code under test next sets a timer: a test waits for it before moving time,
   * when the timer is set only after real I/O (a file written, a lock released).
   */
  nextTimer(): Promise<void> {
    return new Promise((resolve) => this.timerWaiters.push(resolve));
  }

  /** When the next timer is due, or null. */
  nextAt(): number | null {
    let next: number | null = null;
    for (const t of this.timers.values()) if (next === null || t.at < next) next = t.at;
    return next;
  }

  /** Moves time forward by `ms`, running each timer that comes due, and settles after each. */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    await settle();
    for (;;) {
      let due: [number, Pending] | null = null;
      for (const entry of this.timers) {
        const t = entry[1];
        if (t.at <= until && (due === null || t.at < due[1].at || (t.at === due[1].at && t.seq < due[1].seq))) due = entry;
      }
      if (due === null) break;
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].callback();
      await settle();
      await settle();
    }
    this.time = until;
    await settle();
  }
}
