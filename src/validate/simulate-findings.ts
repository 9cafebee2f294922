/**
 * What a simulation says about a spec, as findings at each service's key (`/services/NAME`):
 * the judgement shared by `mbc validate --simulate`, `mbc simulate --strict`, the table and the
 * HTML report. Pure: a SimulationResult in, findings out.
 *
 * The simulated load of an instance is the larger of two figures:
 * - its utilisation: busy time over the run (what the engine reports; it cannot pass 100 %);
 * - its offered load: the work sent to it (records / capacity, in seconds) over the time it was
 *   up. This is the contract's sᵢ ("offered records/s over its capacity") as the simulation saw
 *   it. At 100 % or more the instance was sent more work than it could do while up, so its
 *   queue grows for as long as the load lasts: that is what "a growing queue" means here.
 * An instance is overloaded at a simulated load ≥ 1 and has little headroom at ≥ 0.8, the
 * thresholds of the static rules `overloaded` and `low-headroom`.
 */
import type { Diagnostic, Finding } from "../diagnostic.js";
import type { Json } from "../model/merge.js";
import { formatMs } from "../model/units.js";
import type { ParsedSpec } from "../parse/index.js";
import { joinPointer } from "../pointer.js";
import { count, countText } from "../report/numbers.js";
import type { SimulationTooLarge } from "../simulate/estimate.js";
import type { InstanceResult, ServiceResult, SimulationResult, SourceResult } from "../simulate/result.js";
import { has, plural, round } from "./rule.js";
import { EPSILON, percent } from "./rules/load.js";
import { LOW_HEADROOM } from "./rules/low-headroom.js";

export type LoadLevel = "ok" | "low-headroom" | "overloaded";

const RANK: Record<LoadLevel, number> = { ok: 0, "low-headroom": 1, overloaded: 2 };

export function loadLevel(load: number | null): LoadLevel {
  if (load === null) return "ok";
  if (load >= 1 - EPSILON) return "overloaded";
  if (load >= LOW_HEADROOM - EPSILON) return "low-headroom";
  return "ok";
}

/** Work sent to the instance over its capacity and the time it was up; null without a capacity. */
export function offeredLoad(instance: InstanceResult, durationMs: number): number | null {
  if (instance.capacityPerSec === null) return null;
  const upSeconds = (durationMs - instance.downMs) / 1000;
  if (instance.records === 0) return 0;
  // Never up, yet sent work (it cannot be, as a down instance is no candidate): all of it is backlog.
  if (upSeconds <= 0) return Number.MAX_VALUE;
  return instance.records / instance.capacityPerSec / upSeconds;
}

export interface InstanceAssessment {
  index: number;
  /** Busy time over the run; null without a capacity. */
  utilisation: number | null;
  offered: number | null;
  /** max(utilisation, offered): what the thresholds apply to. */
  load: number | null;
  /** The offered load reached capacity: the queue grows. */
  growing: boolean;
  level: LoadLevel;
  /** The static model's sᵢ for the same rates; null when it has none. */
  predicted: number | null;
}

export interface ServiceAssessment {
  name: string;
  /** JSON Pointer of the service's key. */
  path: string;
  instances: InstanceAssessment[];
  /** The most loaded instance; null when no instance's load is measured. */
  peak: InstanceAssessment | null;
  level: LoadLevel;
  /** What the static rules say from the static model's peak sᵢ. */
  staticLevel: LoadLevel;
  staticPeak: number | null;
}

export function assessInstance(instance: InstanceResult, durationMs: number): InstanceAssessment {
  const offered = offeredLoad(instance, durationMs);
  const utilisation = instance.utilisation;
  const load = utilisation === null || offered === null ? null : Math.max(utilisation, offered);
  return {
    index: instance.index,
    utilisation,
    offered,
    load,
    growing: offered !== null && offered >= 1 - EPSILON,
    level: loadLevel(load),
    predicted: instance.predicted?.utilisation ?? null,
  };
}

export function assessService(service: ServiceResult, durationMs: number): ServiceAssessment {
  const instances = service.instances.map((i) => assessInstance(i, durationMs));
  let peak: InstanceAssessment | null = null;
  for (const i of instances) if (i.load !== null && (peak === null || (peak.load as number) < i.load)) peak = i;
  let staticPeak: number | null = null;
  for (const i of instances) if (i.predicted !== null && (staticPeak === null || staticPeak < i.predicted)) staticPeak = i.predicted;
  return {
    name: service.name,
    path: joinPointer("/services", service.name),
    instances,
    peak,
    level: peak?.level ?? "ok",
    staticLevel: loadLevel(staticPeak),
    staticPeak,
  };
}

function label(service: ServiceResult, index: number): string {
  return service.instances.length === 1 ? `service "${service.name}"` : `instance ${index} of service "${service.name}"`;
}

function ms(x: number | null): string {
  if (x === null) return "–";
  return x >= 10_000 ? `${round(x / 1000, 1)}s` : `${round(x, 1)}ms`;
}

function loadFinding(service: ServiceResult, a: ServiceAssessment, peak: InstanceAssessment): Finding {
  const inst = service.instances.find((i) => i.index === peak.index) as InstanceResult;
  const predicted = a.staticPeak === null ? "" : `; the static model predicts ${percent(a.staticPeak)}`;
  const figures = `busy ${percent(peak.utilisation ?? 0)} of the run, offered ${percent(peak.offered ?? 0)} of its capacity`;
  if (peak.level === "overloaded") {
    const why = peak.growing ? "its queue grows (it was sent more work than it can do)" : "it was busy all the time";
    return {
      code: "sim-overloaded",
      severity: "error",
      path: a.path,
      at: "key",
      message: `simulation: ${label(service, peak.index)} is overloaded: ${why}; ${figures}, queue wait p99 ${ms(inst.queueWaitMs.p99)}${predicted}`,
      hint: "add instances, raise `capacity`, or shift `weight` towards the instances with room",
    };
  }
  return {
    code: "sim-low-headroom",
    severity: "warning",
    path: a.path,
    at: "key",
    message: `simulation: ${label(service, peak.index)} has little headroom: ${figures}, queue wait p99 ${ms(inst.queueWaitMs.p99)}${predicted}`,
    hint: "queues grow sharply above 80% utilisation; add an instance or raise `capacity`",
  };
}

/** Failed attempts by kind, and sends that found no time left, in words. */
function failedText(service: ServiceResult): string {
  const f = service.failures;
  const below = f.unavailable > 0 ? `, ${f.unavailable} unavailable below` : "";
  const late = service.noTimeLeft > 0 ? `; ${plural(service.noTimeLeft, "send", "sends")} with no time left` : "";
  return `failed attempts: ${f.timeout} timeout, ${f["5xx"]} 5xx, ${f.connect} connect${below}${late}`;
}

/**
 * Whether a service was unavailable to batches for reasons of its own: its attempts failed
 * (timeout, 5xx, connect) or found no time left. One unavailable only because a stage below it
 * was is left to that stage's finding.
 */
export function unavailableHere(service: ServiceResult): boolean {
  const f = service.failures;
  return service.batchesUnavailable > 0 && f.timeout + f["5xx"] + f.connect + service.noTimeLeft > 0;
}

function retryFinding(service: ServiceResult, path: string): Finding | null {
  const { retriesRefused: refused, batchesUnavailable: unavailable } = service;
  const sentAgain = `it was unavailable to ${plural(unavailable, "batch", "batches")} (sent again from above)`;
  if (refused > 0) {
    return {
      code: "sim-retries-refused",
      severity: "warning",
      path,
      at: "key",
      message: `simulation: the retry budget of service "${service.name}" refused ${plural(refused, "retry", "retries")}; ${sentAgain} (${failedText(service)})`,
      hint: "failures outpace the retry budget (retry.budget.ratio of first attempts plus minPerSecond, over 10 s): fix what fails (capacity, `timeout`, faults) or raise the budget",
    };
  }
  if (!unavailableHere(service)) return null;
  return {
    code: "sim-unavailable",
    severity: "warning",
    path,
    at: "key",
    message: `simulation: service "${service.name}" was unavailable to ${plural(unavailable, "batch", "batches")} after its quick retries (${failedText(service)}): back-pressure, they were sent again from above (its callers' quick retries, then their source after a back-off)`,
    hint: "fix what fails (capacity, `timeout`, faults), or allow more quick retries with `retry.maxRetries` and `retry.on`; meanwhile batches wait at their source, whose queue fills",
  };
}

function sourceFindings(source: SourceResult): Finding[] {
  const path = joinPointer("/sources", source.name);
  const out: Finding[] = [];
  if (source.recordsRefused > 0) {
    out.push({
      code: "sim-records-refused",
      severity: "warning",
      path,
      at: "key",
      message: `simulation: source "${source.name}" refused ${count(source.recordsRefused)} of its ${count(source.records)} records (${percent(source.recordsRefused / source.records)}): its queue of ${count(source.queueLimitRecords)} records accepted and not committed yet was full`,
      hint: "the stages after it fell behind or were unavailable (an http client gets 503 with Retry-After, a generator or file source pauses): add capacity or instances where the simulation shows load or unavailability",
    });
  }
  if (source.batchesDeadLettered > 0) {
    const after = source.deadLetterAfterMs === null ? "" : ` (${formatMs(source.deadLetterAfterMs)})`;
    out.push({
      code: "sim-dead-lettered",
      severity: "warning",
      path,
      at: "key",
      message: `simulation: source "${source.name}" dead-lettered ${plural(source.batchesDeadLettered, "batch", "batches")} that waited on unavailable stages longer than retry.deadLetterAfter${after}`,
      hint: "fix what keeps the stages unavailable, or raise `retry.deadLetterAfter` (or remove it: a batch then waits as long as it takes); in the running system, `mbc dead-letter replay` sends dead letters again",
    });
  }
  return out;
}

/**
 * The simulation's findings, service by service in the result's order, then source by source,
 * each with a code of its own (`sim-…`), so that they are told from the static rules and
 * configured apart from them: `sim-overloaded` or `sim-low-headroom` where the simulated load is
 * at a higher level than the static model's (where it is not, the static rule has said so
 * already), `sim-retries-refused` where the retry budget refused retries, `sim-unavailable`
 * where a service's own failures made it unavailable to batches without a refusal (they were
 * sent again: back-pressure), and at a source `sim-records-refused` where its queue was full and
 * `sim-dead-lettered` where batches waited longer than `retry.deadLetterAfter`.
 */
export function simulationFindings(result: SimulationResult): Finding[] {
  const out: Finding[] = [];
  for (const service of result.services) {
    const a = assessService(service, result.durationMs);
    if (a.peak !== null && RANK[a.level] > RANK[a.staticLevel]) out.push(loadFinding(service, a, a.peak));
    const retry = retryFinding(service, a.path);
    if (retry) out.push(retry);
  }
  for (const source of result.sources) out.push(...sourceFindings(source));
  return out;
}

/**
 * Why `mbc simulate --strict` fails, one line a reason: a service with an overloaded instance
 * (simulated load ≥ 1), a retry budget that refused retries, a source that refused records (its
 * queue was full) or dead-lettered batches. Empty: it passes.
 */
export function strictFailures(result: SimulationResult): string[] {
  const out: string[] = [];
  for (const service of result.services) {
    const a = assessService(service, result.durationMs);
    if (a.level === "overloaded" && a.peak !== null) {
      const what = a.peak.growing ? `offered ${percent(a.peak.offered ?? 0)} of its capacity, its queue grows` : "busy all the time";
      out.push(`${label(service, a.peak.index)} is overloaded (${what})`);
    }
    if (service.retriesRefused > 0) out.push(`the retry budget of service "${service.name}" refused ${plural(service.retriesRefused, "retry", "retries")}`);
  }
  for (const source of result.sources) {
    if (source.recordsRefused > 0) out.push(`source "${source.name}" refused ${count(source.recordsRefused)} records: its queue was full`);
    if (source.batchesDeadLettered > 0)
      out.push(`source "${source.name}" dead-lettered ${plural(source.batchesDeadLettered, "batch", "batches")} after retry.deadLetterAfter`);
  }
  return out;
}

/**
 * A simulation refused for its size (`sim-too-large`), at what sets it in the spec: the
 * `simulation.duration` it sets (unless `--duration` replaced it), else the `rate` of the source
 * with the most records (unless `--rate` replaced them), else that source's key.
 */
export function simulationTooLargeFinding(refused: SimulationTooLarge, spec: Json | null, flags: { duration?: boolean; rate?: boolean } = {}): Finding {
  const e = refused.estimate;
  const data = spec ?? {};
  const source = e.busiest === null ? null : joinPointer("/sources", e.busiest);
  const path =
    !flags.duration && has(data, "/simulation/duration")
      ? "/simulation/duration"
      : source !== null && !flags.rate && has(data, `${source}/rate`)
        ? `${source}/rate`
        : (source ?? (has(data, "/simulation") ? "/simulation" : "/sources"));
  const message =
    refused.stoppedAtMs === null
      ? `simulation: ${formatMs(e.durationMs)} at these rates (${countText(e.arrivals)} records in ${countText(e.batches)} batches, ${countText(e.attempts)} attempts at the services) would take about ${countText(e.events)} events, more than the ${countText(refused.maxEvents)} allowed`
      : `simulation: stopped after ${formatMs(Math.floor(refused.stoppedAtMs))} of ${formatMs(e.durationMs)}, having taken the ${countText(refused.maxEvents)} events allowed: batches were sent again and again while a stage was unavailable (about ${countText(e.events)} events without them)`;
  return {
    code: "sim-too-large",
    severity: "error",
    path,
    at: path.endsWith("/rate") || path.endsWith("/duration") ? "value" : "key",
    message,
    hint:
      refused.stoppedAtMs === null
        ? "shorten `simulation.duration` (or --duration), lower the rates (or --rate), or allow more with --max-events N (200 million events take about a minute)"
        : "fix what keeps the stage unavailable (a fault, capacity, `timeout`), shorten `simulation.duration` (or --duration), or allow more with --max-events N",
  };
}

/**
 * Whether a spec's diagnostics keep it from being simulated: any error but `overloaded`, which
 * is what a simulation is for.
 */
export function blocksSimulation(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === "error" && d.code !== "overloaded");
}

/** The simulation's findings as diagnostics of the spec file, at each service's key. */
export function simulationDiagnostics(validation: { file: string; parsed: ParsedSpec }, result: SimulationResult): Diagnostic[] {
  return findingDiagnostics(validation, simulationFindings(result));
}

/** Findings of the simulation as diagnostics of the spec file. */
export function findingDiagnostics(validation: { file: string; parsed: ParsedSpec }, findings: readonly Finding[]): Diagnostic[] {
  return findings.map((f) => {
    const { line, column } = validation.parsed.locate(f.path, f.at);
    return {
      code: f.code,
      severity: f.severity,
      message: f.message,
      path: f.path,
      file: validation.file,
      line,
      column,
      ...(f.hint ? { hint: f.hint } : {}),
    };
  });
}
