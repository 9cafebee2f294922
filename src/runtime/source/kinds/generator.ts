/**
 * The generator source: makes records from the `record` template at `rate` records/s, up to
 * `count` records in all.
 *
 * - In every string of the template (keys are left alone), `{{seq}}` becomes the record's
 *   sequence number (0-based, the same number the durable log gives it) and `{{now}}` the time
 *   it was made (ISO 8601). The values stay strings.
 * - The sequence resumes after a restart: the generator starts at the log's next sequence
 *   number, so `count` counts every record ever made, and records made before the restart
 *   keep their content (they are re-sent from the log).
 * - The rate is kept on average: each tick makes the records due since start. While the queue
 *   is full the generator waits, and the schedule moves with it (no burst to catch up).
 */

import type { GeneratorSourceModel } from "../../../model/types.js";
import type { Logger } from "../../core/contracts.js";
import { realTimer, type Timer } from "../batcher.js";
import type { SourcePipeline } from "../pipeline.js";
import type { SourceKind } from "./kind.js";

/** How often the generator wakes to make the records due. */
export const GENERATOR_TICK_MS = 20;
/** At most this many records per tick, so one tick never holds the event loop for long. */
export const MAX_RECORDS_PER_TICK = 10_000;

/** Expands `{{seq}}` and `{{now}}` in every string value of `template` (deeply). Pure. */
export function expandTemplate(template: unknown, seq: number, now: string): unknown {
  if (typeof template === "string") return template.includes("{{") ? template.replaceAll("{{seq}}", String(seq)).replaceAll("{{now}}", now) : template;
  if (Array.isArray(template)) return template.map((v) => expandTemplate(v, seq, now));
  if (typeof template === "object" && template !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(template)) out[key] = expandTemplate(value, seq, now);
    return out;
  }
  return template;
}

/** Records due after `elapsedMs` at `ratePerSec`, of which `made` were made already. */
export function recordsDue(elapsedMs: number, ratePerSec: number, made: number): number {
  return Math.max(0, Math.floor((elapsedMs * ratePerSec) / 1000) - made);
}

export interface GeneratorOptions {
  pipeline: SourcePipeline;
  template: Record<string, unknown>;
  ratePerSec: number;
  /** Stop once the log's sequence reaches this; null: never. */
  count: number | null;
  log: Logger;
  timer?: Timer;
  /** Clock in ms (default Date.now): paces the rate and gives `{{now}}`. */
  now?: () => number;
  tickMs?: number;
}

export class GeneratorSource {
  private readonly pipeline: SourcePipeline;
  private readonly template: Record<string, unknown>;
  private readonly rate: number;
  private readonly count: number | null;
  private readonly log: Logger;
  private readonly timer: Timer;
  private readonly now: () => number;
  private readonly tickMs: number;
  private handle: unknown = null;
  private started = 0;
  private made = 0;
  private busy: Promise<void> | null = null;
  private stopped = false;
  private finishedLogged = false;

  constructor(options: GeneratorOptions) {
    if (!(options.ratePerSec > 0)) throw new RangeError("a generator needs a rate above 0");
    this.pipeline = options.pipeline;
    this.template = options.template;
    this.rate = options.ratePerSec;
    this.count = options.count;
    this.log = options.log;
    this.timer = options.timer ?? realTimer;
    this.now = options.now ?? Date.now;
    this.tickMs = options.tickMs ?? GENERATOR_TICK_MS;
  }

  /** Whether `count` records have been made (over every run). */
  get finished(): boolean {
    return this.count !== null && this.pipeline.nextSeq >= this.count;
  }

  start(): void {
    this.started = this.now();
    this.made = 0;
    this.log.info("generating", { ratePerSec: this.rate, count: this.count, from: this.pipeline.nextSeq });
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.handle !== null) this.timer.clear(this.handle);
    this.handle = null;
    await this.busy;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.handle = this.timer.set(() => {
      this.handle = null;
      this.busy = this.tick()
        .catch((error: unknown) => {
          // The pipeline failed (and reported it) or is draining: nothing more to make.
          this.log.error("generator stopped", { error });
          this.stopped = true;
        })
        .finally(() => {
          this.busy = null;
          this.schedule();
        });
    }, this.tickMs);
  }

  /** Makes the records due now (as many as fit), as one append. */
  async tick(): Promise<void> {
    if (this.stopped) return;
    if (this.finished) {
      if (!this.finishedLogged) this.log.info("generator finished", { count: this.count });
      this.finishedLogged = true;
      this.stopped = true;
      return;
    }
    const now = this.now();
    const due = recordsDue(now - this.started, this.rate, this.made);
    if (due === 0) return;
    const left = this.count === null ? Number.POSITIVE_INFINITY : this.count - this.pipeline.nextSeq;
    const n = Math.min(due, left, this.pipeline.room(), MAX_RECORDS_PER_TICK);
    if (n < due) {
      // Held back (full queue, or the tick cap): move the schedule so the backlog is not made later in a burst.
      this.started = now - ((this.made + n) * 1000) / this.rate;
    }
    if (n <= 0) return;
    const first = this.pipeline.nextSeq;
    const at = new Date(now).toISOString();
    const lines: string[] = [];
    const bytes: number[] = [];
    for (let k = 0; k < n; k++) {
      const line = JSON.stringify(expandTemplate(this.template, first + k, at));
      lines.push(line);
      bytes.push(Buffer.byteLength(line));
    }
    this.made += n;
    await this.pipeline.append({ lines, bytes });
  }
}

/** `type: generator`: records made from a template at the source's rate, up to `count`. */
export const generatorKind: SourceKind<GeneratorSourceModel> = {
  rereads: false,
  open({ source, pipeline, log }) {
    const generator = new GeneratorSource({ pipeline, template: source.record, ratePerSec: source.ratePerSec, count: source.count, log });
    return { start: () => generator.start(), stop: () => generator.stop() };
  },
};
