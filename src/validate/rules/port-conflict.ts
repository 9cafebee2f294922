import { MAX_PORT } from "../../model/normalise.js";
import { registryRunsProcess } from "../../policy/index.js";
import type { Rule, RuleFinding } from "../rule.js";
import { definedAt } from "../rule.js";

interface Listener {
  owner: string;
  from: number;
  to: number;
  path: string;
  /** Set in the spec (rather than a default or an assignment): where a conflict is reported. */
  explicit: boolean;
  order: number;
}

function describe(l: Listener): string {
  return l.from === l.to ? `${l.owner} (port ${l.from})` : `${l.owner} (ports ${l.from}–${l.to})`;
}

export const portConflict: Rule = {
  code: "port-conflict",
  severity: "error",
  description: "two listeners share a port (registry, sources, instance ranges)",
  check({ model, spec }) {
    const listeners: Listener[] = [];
    // Only the embedded registry listens: with another backend its port does not apply.
    if (registryRunsProcess(model)) {
      const registryPath = definedAt(spec, "/registry/port", "");
      listeners.push({
        owner: "the registry",
        from: model.registry.port,
        to: model.registry.port,
        path: registryPath,
        explicit: registryPath !== "",
        order: 0,
      });
    }
    for (const s of model.sources) {
      if (s.type !== "http") continue;
      listeners.push({ owner: `source "${s.name}"`, from: s.port, to: s.port, path: `${s.path}/port`, explicit: true, order: listeners.length });
    }
    for (const s of model.services) {
      const n = s.instances.length;
      listeners.push({
        owner: n === 1 ? `service "${s.name}"` : `service "${s.name}" (${n} instances)`,
        from: s.port,
        to: s.port + n - 1,
        path: s.portAssigned ? s.path : `${s.path}/port`,
        explicit: !s.portAssigned,
        order: listeners.length,
      });
    }
    const out: RuleFinding[] = [];
    // A range that runs past the last port: instance k of a service listens on port + k.
    for (const l of listeners) {
      if (l.to <= MAX_PORT || !l.explicit) continue;
      out.push({
        path: l.path,
        message: `${describe(l)} would listen past the last port, ${MAX_PORT}`,
        hint: `instance k listens on port + k: give a \`port\` of at most ${MAX_PORT + 1 - (l.to - l.from + 1)}, or fewer instances`,
      });
    }
    // Sweep by start port: each overlapping pair is reported once, at the later explicit one.
    const sorted = [...listeners].sort((a, b) => a.from - b.from || a.order - b.order);
    const open: Listener[] = [];
    for (const l of sorted) {
      for (let i = open.length - 1; i >= 0; i--) if ((open[i] as Listener).to < l.from) open.splice(i, 1);
      for (const o of open) {
        const [first, second] = o.order < l.order ? [o, l] : [l, o];
        const at = second.explicit ? second : first;
        const other = at === second ? first : second;
        const shared = Math.max(o.from, l.from);
        out.push({
          path: at.path,
          at: at.explicit ? "value" : "key",
          message: `port ${shared} is used by both ${describe(other)} and ${describe(at)}`,
          hint:
            at.to > at.from ? `instance k of a service listens on port + k; move the \`port\` so the ranges do not overlap` : "give one of them another port",
        });
      }
      open.push(l);
    }
    return out;
  },
};
