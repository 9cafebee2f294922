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
import { countText } from "../report/numbers.js";
import type { SimulationTooLarge } from "../simulate/estimate.js";
import type { InstanceResult, ServiceResult, SimulationResult } from "../simulate/result.js";
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

function retryFinding(service: ServiceResult, path: string): Finding | null {
  const { retriesRefused: refused, batchesFailed: failed, requests } = service;
  if (refused === 0 && failed === 0) return null;
  const f = service.failures;
  const kinds = `failed attempts: ${f.timeout} timeout, ${f["5xx"]} 5xx, ${f.connect} connect`;
  const lost = `${failed} of its ${plural(requests, "batch", "batches")} failed for good`;
  if (refused > 0) {
    return {
      code: "sim-retries-refused",
      severity: "warning",
      path,
      at: "key",
      message: `simulation: the retry budget of service "${service.name}" refused ${plural(refused, "retry", "retries")}; ${lost} (${kinds})`,
      hint: "failures outpace the retry budget (retry.budget.ratio of first attempts plus minPerSecond, over 10 s): fix what fails (capacity, `timeout`, faults) or raise the budget",
    };
  }
  return {
    code: "sim-batches-failed",
    severity: "warning",
    path,
    at: "key",
    message: `simulation: ${lost} of service "${service.name}" after their retries (${kinds})`,
    hint: "fix what fails (capacity, `timeout`, faults), or allow more retries with `retry.maxRetries` and `retry.on`",
  };
}

/**
 * The simulation's findings, service by service in the result's order, each with a code of its
 * own (`sim-…`), so that they are told from the static rules and configured apart from them:
 * `sim-overloaded` or `sim-low-headroom` where the simulated load is at a higher level than the
 * static model's (where it is not, the static rule has said so already), `sim-retries-refused`
 * where the retry budget refused retries, and `sim-batches-failed` where batches failed for good
 * without a refusal.
 */
export function simulationFindings(result: SimulationResult): Finding[] {
  const out: Finding[] = [];
  for (const service of result.services) {
    const a = assessService(service, result.durationMs);
    if (a.peak !== null && RANK[a.level] > RANK[a.staticLevel]) out.push(loadFinding(service, a, a.peak));
    const retry = retryFinding(service, a.path);
    if (retry) out.push(retry);
  }
  return out;
}

/**
 * Why `mbc simulate --strict` fails, one line a reason: a service with an overloaded instance
 * (simulated load ≥ 1), or a retry budget that refused retries. Empty: it passes.
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
  return {
    code: "sim-too-large",
    severity: "error",
    path,
    at: path.endsWith("/rate") || path.endsWith("/duration") ? "value" : "key",
    message: `simulation: ${formatMs(e.durationMs)} at these rates (${countText(e.arrivals)} records in ${countText(e.batches)} batches, ${countText(e.attempts)} attempts at the services) would take about ${countText(e.events)} events, more than the ${countText(refused.maxEvents)} allowed`,
    hint: "shorten `simulation.duration` (or --duration), lower the rates (or --rate), or allow more with --max-events N (200 million events take about a minute)",
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
