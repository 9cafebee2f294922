/** Every semantic rule, by code: adding a rule is one file and one line here. */
import type { DiagnosticCode, SimulationCode } from "../../diagnostic.js";
import type { Rule } from "../rule.js";
import { cycle } from "./cycle.js";
import { handlerNotFound } from "./handler-not-found.js";
import { handlerOutside } from "./handler-outside.js";
import { lowHeadroom } from "./low-headroom.js";
import { nameClash } from "./name-clash.js";
import { overloaded } from "./overloaded.js";
import { portConflict } from "./port-conflict.js";
import { registrySettingUnused } from "./registry-setting-unused.js";
import { retryStorm } from "./retry-storm.js";
import { timeoutInversion } from "./timeout-inversion.js";
import { ttlHeartbeat } from "./ttl-heartbeat.js";
import { unknownBuiltin } from "./unknown-builtin.js";
import { unknownReference } from "./unknown-reference.js";
import { unreachable } from "./unreachable.js";
import { weightCapacityMismatch } from "./weight-capacity-mismatch.js";

/** The codes that come from rules: not parsing, the schema, the targets' constraints or the simulation. */
type SemanticCode = Exclude<DiagnosticCode, "yaml-syntax" | "duplicate-key" | "schema" | "unknown-key" | "target-constraint" | SimulationCode>;

export const rules: Record<SemanticCode, Rule> = {
  "unknown-reference": unknownReference,
  "name-clash": nameClash,
  cycle,
  unreachable,
  "port-conflict": portConflict,
  "handler-not-found": handlerNotFound,
  "handler-outside": handlerOutside,
  "unknown-builtin": unknownBuiltin,
  overloaded,
  "low-headroom": lowHeadroom,
  "weight-capacity-mismatch": weightCapacityMismatch,
  "retry-storm": retryStorm,
  "timeout-inversion": timeoutInversion,
  "ttl-heartbeat": ttlHeartbeat,
  "registry-setting-unused": registrySettingUnused,
};
