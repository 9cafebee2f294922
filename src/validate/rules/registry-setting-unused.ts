import type { Rule, RuleFinding } from "../rule.js";
import { has } from "../rule.js";

export const registrySettingUnused: Rule = {
  code: "registry-setting-unused",
  severity: "warning",
  description: "a registry setting that the chosen `registry.backend` does not use",
  check({ model, spec }) {
    const { backend } = model.registry;
    const out: RuleFinding[] = [];
    if (backend !== "embedded" && has(spec, "/registry/port"))
      out.push({
        path: "/registry/port",
        message: `registry port does not apply to backend ${backend}: the system runs no registry process of its own`,
        hint: "remove `port`, or use backend embedded",
      });
    if (backend !== "etcd" && has(spec, "/registry/endpoints"))
      out.push({
        path: "/registry/endpoints",
        message: `registry endpoints are used only by backend etcd, and the backend is ${backend}`,
        hint: "set `backend: etcd` to register in that etcd cluster, or remove `endpoints`",
      });
    return out;
  },
};
