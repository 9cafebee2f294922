import { formatMs } from "../../model/units.js";
import type { Rule, RuleFinding } from "../rule.js";
import { definedAt } from "../rule.js";

/** etcd grants leases in whole seconds, and refuses to be useful below two. */
export const ETCD_MIN_TTL_MS = 2000;

export const ttlHeartbeat: Rule = {
  code: "ttl-heartbeat",
  severity: "error",
  description: "`registry.ttl` ≤ `registry.heartbeat`, or, with the etcd backend, a ttl that is not whole seconds ≥ 2s",
  check({ model, spec }) {
    const { ttlMs, heartbeatMs, backend } = model.registry;
    const out: RuleFinding[] = [];
    if (ttlMs <= heartbeatMs)
      out.push({
        path: definedAt(spec, "/registry/ttl", "/registry/heartbeat", "/registry"),
        message: `registry ttl ${formatMs(ttlMs)} must exceed the heartbeat ${formatMs(heartbeatMs)}, or live instances expire between heartbeats`,
        hint: `a ttl of about three heartbeats is usual: ttl: ${formatMs(heartbeatMs * 3)}`,
      });
    if (backend === "etcd" && (ttlMs % 1000 !== 0 || ttlMs < ETCD_MIN_TTL_MS)) {
      const whole = Math.max(ETCD_MIN_TTL_MS, Math.ceil(ttlMs / 1000) * 1000);
      out.push({
        path: definedAt(spec, "/registry/ttl", "/registry/backend", "/registry"),
        message: `registry ttl ${formatMs(ttlMs)} is the etcd lease's TTL, which must be whole seconds and at least ${formatMs(ETCD_MIN_TTL_MS)}`,
        hint: `etcd counts leases in seconds: ttl: ${formatMs(whole)}`,
      });
    }
    return out;
  },
};
