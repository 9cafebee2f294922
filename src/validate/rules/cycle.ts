import { joinPointer } from "../../pointer.js";
import type { Rule, RuleFinding } from "../rule.js";

export const cycle: Rule = {
  code: "cycle",
  severity: "error",
  description: "the stages form a cycle",
  check({ model, graph, file }) {
    const out: RuleFinding[] = [];
    const state = new Map<string, 1 | 2>(); // 1 on the path, 2 done
    const seen = new Set<string>();
    const toIsList = (name: string) => Array.isArray((file as { services?: Record<string, { to?: unknown }> }).services?.[name]?.to);
    // Depth-first, with an explicit stack: a chain of thousands of services must not overflow.
    for (const root of model.services) {
      if (state.has(root.name)) continue;
      const path: string[] = [];
      const frames: { name: string; next: number }[] = [];
      const enter = (name: string) => {
        state.set(name, 1);
        path.push(name);
        frames.push({ name, next: 0 });
      };
      enter(root.name);
      while (frames.length > 0) {
        const frame = frames[frames.length - 1] as { name: string; next: number };
        const svc = graph.services.get(frame.name);
        const targets = svc?.to ?? [];
        if (!svc || frame.next >= targets.length) {
          frames.pop();
          path.pop();
          state.set(frame.name, 2);
          continue;
        }
        const i = frame.next++;
        const t = targets[i] as string;
        if (!graph.services.has(t)) continue;
        if (state.get(t) === 1) {
          const loop = path.slice(path.indexOf(t));
          // The same cycle found from another entry point is reported once.
          const start = loop.indexOf([...loop].sort()[0] as string);
          const canonical = [...loop.slice(start), ...loop.slice(0, start)].join(" → ");
          if (seen.has(canonical)) continue;
          seen.add(canonical);
          out.push({
            path: toIsList(svc.name) ? joinPointer(svc.path, "to", i) : `${svc.path}/to`,
            message: `the stages form a cycle: ${[...loop, t].join(" → ")}`,
            hint: `a batch would loop for ever; remove "${t}" from the \`to\` of "${svc.name}"`,
          });
        } else if (!state.has(t)) enter(t);
      }
    }
    return out;
  },
};
