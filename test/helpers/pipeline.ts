/**
 * Fixtures for tests of a source's pipeline: the one source of a small spec, a dispatcher that
 * records each send and answers as the test says, metrics and a logger that keep what they got.
 */
import { DEFAULT_RETRY } from "../../src/model/normalise.js";
import type { RetryModel, SourceModel } from "../../src/model/types.js";
import type { Dispatcher, Logger, TextBatch, WireBatch } from "../../src/runtime/core/contracts.js";
import type { FailureClass } from "../../src/runtime/core/failure.js";
import { DispatchError } from "../../src/runtime/dispatch/index.js";
import type { SourceMetrics } from "../../src/runtime/source/pipeline.js";
import { validateText } from "../../src/validate/index.js";

/** The one source of a small spec: `source` is its YAML mapping (flow style). */
/** Back-off without jitter (100 ms doubling, capped at 1 s), so that a clock says exactly when a batch goes again. */
export const BACKOFF: RetryModel = { ...DEFAULT_RETRY, maxIntervalMs: 1000, jitter: "none" };

export function sourceModel(source: string): SourceModel {
  const yaml = `mbc: 1\nname: t\nsources:\n  orders: ${source}\nservices:\n  sink:\n    handler: builtin:passthrough\n`;
  const { diagnostics, model } = validateText("spec.yaml", yaml);
  const errors = diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0 || model === null) throw new Error(errors.map((d) => d.message).join("; "));
  return model.sources[0] as SourceModel;
}

export interface Sent {
  to: readonly string[];
  batch: WireBatch;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** A batch as the next stage receives it: a source sends its records' texts. */
export function asWire(batch: WireBatch | TextBatch): WireBatch {
  return "texts" in batch ? { id: batch.id, via: batch.via, records: batch.texts.map((t) => JSON.parse(t) as unknown) } : batch;
}

/** A dispatcher that records each send and answers as told: at once (ok), or when the test says (manual), or by a rule (answer). */
export class FakeDispatcher implements Dispatcher {
  readonly sent: Sent[] = [];
  /** In `rule` mode: what to answer a batch; null: ok. */
  answer: (batch: WireBatch) => FailureClass | null = () => null;
  constructor(public mode: "ok" | "manual" | "rule" = "ok") {}
  send(to: readonly string[], batch: WireBatch | TextBatch): Promise<void> {
    return new Promise((resolve, reject) => {
      const wire = asWire(batch);
      this.sent.push({ to, batch: wire, resolve, reject });
      if (this.mode === "ok") resolve();
      if (this.mode === "rule") {
        const failure = this.answer(wire);
        if (failure === null) resolve();
        else reject(failedAs(failure, wire.id));
      }
    });
  }
  close(): void {}
  ids(): string[] {
    return this.sent.map((s) => s.batch.id);
  }
}

/** A DispatchFailure of class `failure`, as the dispatcher rejects a send with. */
export function failedAs(failure: FailureClass, id = "b"): DispatchError {
  const kind = failure === "poison" ? "poison" : failure === "timeout" ? "timeout" : "connect";
  return new DispatchError(`sink: ${failure} on ${id}`, "sink", failure, [{ instance: 0, kind, error: `a ${failure} failure` }]);
}

export function fakeMetrics() {
  const calls = { recordsIn: 0, recordsOut: 0, deadLetters: 0, batches: [] as string[], depth: 0, waiting: 0, bisecting: 0 };
  const metrics: SourceMetrics = {
    recordsIn: (n) => {
      calls.recordsIn += n;
    },
    recordsOut: (n) => {
      calls.recordsOut += n;
    },
    batch: (outcome) => {
      calls.batches.push(outcome);
    },
    deadLetter: () => {
      calls.deadLetters += 1;
    },
    queueDepth: (n) => {
      calls.depth = n;
    },
    waiting: (n) => {
      calls.waiting = n;
    },
    bisecting: (n) => {
      calls.bisecting = n;
    },
  };
  return { metrics, calls };
}

export interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown> | undefined;
}

export function memoryLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const make = (): Logger => ({
    info: (msg, fields) => lines.push({ level: "info", msg, fields }),
    warn: (msg, fields) => lines.push({ level: "warn", msg, fields }),
    error: (msg, fields) => lines.push({ level: "error", msg, fields }),
    child: () => make(),
  });
  return Object.assign(make(), { lines });
}
