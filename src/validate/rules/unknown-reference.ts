import type { Json } from "../../model/merge.js";
import { joinPointer } from "../../pointer.js";
import { didYouMean } from "../../suggest.js";
import type { Rule, RuleFinding } from "../rule.js";

function keysOf(data: Json | undefined): string[] {
  return data && typeof data === "object" && !Array.isArray(data) ? Object.keys(data) : [];
}

function field(data: Json | undefined, key: string): Json | undefined {
  return data && typeof data === "object" && !Array.isArray(data) ? data[key] : undefined;
}

export const unknownReference: Rule = {
  code: "unknown-reference",
  severity: "error",
  description: "`to`, an overlay or a fault names no such source or service",
  check({ model, file }) {
    const out: RuleFinding[] = [];
    const services = model.services.map((s) => s.name);
    const serviceSet = new Set(services);
    const sourceSet = new Set(model.sources.map((s) => s.name));
    const missing = (name: string, path: string, what: string) => {
      const isSource = sourceSet.has(name);
      const hint = isSource ? `"${name}" is a source; ${what} must name a service` : (didYouMean(name, services) ?? `services: ${services.join(", ")}`);
      out.push({ path, message: `${what} names "${name}", which is not a service`, hint });
    };
    for (const s of model.sources) if (!serviceSet.has(s.to)) missing(s.to, `${s.path}/to`, `source "${s.name}" \`to\``);
    for (const s of model.services) {
      s.to.forEach((t, i) => {
        if (serviceSet.has(t)) return;
        const single = typeof field(field(field(file, "services"), s.name), "to") === "string" && s.to.length === 1;
        missing(t, single ? `${s.path}/to` : joinPointer(s.path, "to", i), `service "${s.name}" \`to\``);
      });
    }
    // Overlays may change existing sources and services only: check every environment, selected or not.
    const fileSources = keysOf(field(file, "sources"));
    const fileServices = keysOf(field(file, "services"));
    for (const env of keysOf(field(file, "environments"))) {
      const overlay = field(field(file, "environments"), env);
      for (const [kind, known] of [
        ["sources", fileSources],
        ["services", fileServices],
      ] as const) {
        for (const name of keysOf(field(overlay, kind))) {
          if (known.includes(name)) continue;
          const hint = didYouMean(name, known) ?? `an overlay may change existing ${kind} only; add "${name}" to the top-level \`${kind}\` first`;
          out.push({
            path: joinPointer("/environments", env, kind, name),
            at: "key",
            message: `environment "${env}" changes ${kind === "sources" ? "source" : "service"} "${name}", which does not exist`,
            hint,
          });
        }
      }
    }
    model.simulation.faults.forEach((f, i) => {
      const path = joinPointer("/simulation/faults", i);
      const svc = model.services.find((s) => s.name === f.service);
      if (!svc) {
        out.push({
          path: `${path}/service`,
          message: `fault names service "${f.service}", which does not exist`,
          hint: didYouMean(f.service, services) ?? `services: ${services.join(", ")}`,
        });
      } else if (f.instance >= svc.instances.length) {
        out.push({
          path: `${path}/instance`,
          message: `fault names instance ${f.instance} of service "${f.service}", which has ${svc.instances.length} instance(s) (0–${svc.instances.length - 1})`,
        });
      }
    });
    return out;
  },
};
