/** Shared by the three capacity rules: the most loaded instance of each service, from the static model. */

import type { InstanceLoad, ServiceLoad } from "../../model/static-load.js";
import type { ServiceModel } from "../../model/types.js";
import type { RuleContext } from "../rule.js";
import { round } from "../rule.js";

export interface LoadedService {
  service: ServiceModel;
  load: ServiceLoad & { instances: InstanceLoad[]; weightedLoad: number };
  peak: InstanceLoad;
}

export function loadedServices(ctx: RuleContext): LoadedService[] {
  const out: LoadedService[] = [];
  ctx.model.services.forEach((service, i) => {
    const load = ctx.loads[i];
    if (!load?.instances || load.weightedLoad === null || load.instances.length === 0) return;
    const peak = load.instances.reduce((a, b) => (b.utilisation > a.utilisation ? b : a));
    out.push({ service, load: load as LoadedService["load"], peak });
  });
  return out;
}

export function instanceLabel(l: LoadedService, instance: InstanceLoad): string {
  return l.service.instances.length === 1 ? `service "${l.service.name}"` : `instance ${instance.index} of service "${l.service.name}"`;
}

export function loadFigures(l: LoadedService): string {
  const { load, peak } = l;
  const retries = load.expectedRetries > 0 ? ` (${round(load.ratePerSec ?? 0, 1)} records/s plus expected retries)` : "";
  return `${round(load.attemptsPerSec ?? 0, 1)} attempts/s offered${retries}, ${round(peak.share * 100, 1)}% of them to a capacity of ${round(peak.capacityPerSec, 1)} records/s`;
}

/** Thresholds are compared with this tolerance: shares such as 1/3 and 2/3 are not exact in floating point. */
export const EPSILON = 1e-9;

export const percent = (x: number) => `${round(x * 100, 1)}%`;
