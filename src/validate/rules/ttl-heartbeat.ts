import { formatMs } from "../../model/units.js";
import type { Rule } from "../rule.js";
import { definedAt } from "../rule.js";

export const ttlHeartbeat: Rule = {
  code: "ttl-heartbeat",
  severity: "error",
  description: "`registry.ttl` ≤ `registry.heartbeat`",
  check({ model, spec }) {
    const { ttlMs, heartbeatMs } = model.registry;
    if (ttlMs > heartbeatMs) return [];
    return [
      {
        path: definedAt(spec, "/registry/ttl", "/registry/heartbeat", "/registry"),
        message: `registry ttl ${formatMs(ttlMs)} must exceed the heartbeat ${formatMs(heartbeatMs)}, or live instances expire between heartbeats`,
        hint: `a ttl of about three heartbeats is usual: ttl: ${formatMs(heartbeatMs * 3)}`,
      },
    ];
  },
};
