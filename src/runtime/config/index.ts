/**
 * Where a runtime process runs: its role from argv (here), its settings from the environment
 * (env.ts), and the system it belongs to from system.json (system.ts). Everything is resolved
 * once at start; a problem is a RuntimeConfigError, which the entry reports and exits 2 on (like
 * mbc's usage errors).
 *
 * The functions that decide (parseArgs, checkSystem, resolveEnv, resolveRole) are pure; only
 * loadSystem and loadRuntime read files.
 */
import { parseArgs as parseCommandLine } from "node:util";
import type { Model } from "../../model/types.js";
import { configuredPort, type ProcessRole } from "../../policy/index.js";
import type { RuntimeEnv, SystemFile } from "../core/contracts.js";
import { type EnvVars, resolveEnv, systemPathFor } from "./env.js";
import { RuntimeConfigError } from "./error.js";
import { loadSystem } from "./system.js";

export { type EnvVars, resolveEnv, systemPathFor, urlHost } from "./env.js";
export { RuntimeConfigError } from "./error.js";
export { checkSystem, loadSystem } from "./system.js";

export const ROLES = ["registry", "source", "service"] as const;
export type RoleKind = (typeof ROLES)[number];

/** What argv asks for; `role: null` means the supervisor (the whole system). */
export interface RuntimeArgs {
  role: RoleKind | null;
  name: string | null;
  instance: number | null;
}

/** The process's identity once checked against the model. */
export type RoleSpec = { kind: "supervisor" } | ProcessRole;

const USAGE = "usage: node mbc-runtime.mjs [--role registry|source|service --name NAME [--instance K]]";

const OPTIONS = { role: { type: "string" }, name: { type: "string" }, instance: { type: "string" } } as const;

/** node:util's parseArgs error codes, and what they mean for this command line. */
const PARSE_ERRORS: Record<string, (arg: string) => string> = {
  ERR_PARSE_ARGS_UNKNOWN_OPTION: (arg) => `unknown argument ${JSON.stringify(arg)}; ${USAGE}`,
  ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL: (arg) => `unknown argument ${JSON.stringify(arg)}; ${USAGE}`,
  ERR_PARSE_ARGS_INVALID_OPTION_VALUE: (arg) => `${arg} needs a value; ${USAGE}`,
};

/** Parses `--role R --name N --instance K` (also `--role=R`). Unknown flags are errors. */
export function parseArgs(argv: readonly string[]): RuntimeArgs {
  let parsed: ReturnType<typeof parseCommandLine<{ options: typeof OPTIONS; args: string[]; strict: true; tokens: true }>>;
  try {
    parsed = parseCommandLine({ options: OPTIONS, args: [...argv], strict: true, tokens: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const explain = PARSE_ERRORS[code];
    if (explain === undefined) throw new RuntimeConfigError(`${(err as Error).message}; ${USAGE}`);
    // The argument node names, as the user typed it.
    const arg = /'([^']+)'/.exec((err as Error).message)?.[1]?.split(" ")[0] ?? argv.join(" ");
    throw new RuntimeConfigError(explain(arg));
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== "option") continue;
    if (seen.has(token.name)) throw new RuntimeConfigError(`--${token.name} is given twice`);
    seen.add(token.name);
  }
  const { values } = parsed;
  const role = values.role ?? null;
  if (role !== null && !(ROLES as readonly string[]).includes(role)) {
    throw new RuntimeConfigError(`unknown role ${JSON.stringify(role)}: expected one of ${ROLES.join(", ")}`);
  }
  const name = values.name ?? null;
  const instanceText = values.instance ?? null;
  let instance: number | null = null;
  if (instanceText !== null) {
    if (!/^\d{1,6}$/.test(instanceText)) throw new RuntimeConfigError(`--instance must be a non-negative integer, not ${JSON.stringify(instanceText)}`);
    instance = Number(instanceText);
  }
  if (role === null && (name !== null || instance !== null)) throw new RuntimeConfigError(`--name and --instance need --role; ${USAGE}`);
  if ((role === "source" || role === "service") && name === null) throw new RuntimeConfigError(`--role ${role} needs --name NAME`);
  if (role === "registry" && name !== null) throw new RuntimeConfigError("--role registry takes no --name");
  if (role !== "service" && instance !== null) throw new RuntimeConfigError("--instance is only for --role service");
  return { role: role as RoleKind | null, name, instance };
}

/** Checks the process's role against the model: the named source or service instance must exist. */
export function resolveRole(args: RuntimeArgs, model: Model): RoleSpec {
  switch (args.role) {
    case null:
      return { kind: "supervisor" };
    case "registry":
      return { kind: "registry" };
    case "source": {
      const source = model.sources.find((s) => s.name === args.name);
      if (!source) throw new RuntimeConfigError(`unknown source ${JSON.stringify(args.name)}${choices(model.sources.map((s) => s.name))}`);
      return { kind: "source", name: source.name, source };
    }
    case "service": {
      const service = model.services.find((s) => s.name === args.name);
      if (!service) throw new RuntimeConfigError(`unknown service ${JSON.stringify(args.name)}${choices(model.services.map((s) => s.name))}`);
      if (service.handler === null) {
        throw new RuntimeConfigError(`service ${service.name} runs the image ${service.image}, not the bundled runtime`);
      }
      const instance = args.instance ?? 0;
      if (instance >= service.instances.length) {
        throw new RuntimeConfigError(
          `service ${service.name} has ${service.instances.length} instance(s) (0–${service.instances.length - 1}), not ${instance}`,
        );
      }
      return { kind: "service", name: service.name, instance, service };
    }
  }
}

function choices(names: string[]): string {
  return names.length === 0 ? "" : `: expected one of ${names.join(", ")}`;
}

/** Everything a process needs to start, resolved from argv, the environment and system.json. */
export interface RuntimeSetup {
  args: RuntimeArgs;
  role: RoleSpec;
  systemPath: string;
  system: SystemFile;
  env: RuntimeEnv;
}

/** Resolves a process's setup; throws RuntimeConfigError on any problem. */
export function loadRuntime(argv: readonly string[], vars: EnvVars, entry: string): RuntimeSetup {
  const args = parseArgs(argv);
  const systemPath = systemPathFor(entry, vars);
  const system = loadSystem(systemPath);
  const role = resolveRole(args, system.model);
  const env = resolveEnv(systemPath, system.model, vars);
  return { args, role, systemPath, system, env };
}

/**
 * The port a process listens on: the one the spec gives it; else MBC_PORT, else 0 (ephemeral).
 * The supervisor listens on none: its children each take their own.
 */
export function listenPort(model: Model, role: RoleSpec, envPort: number | null = null): number {
  if (role.kind === "supervisor") return 0;
  const port = configuredPort(model, role);
  if (port === null || port === 0) return envPort ?? 0;
  if (envPort !== null && envPort !== port) {
    throw new RuntimeConfigError(`MBC_PORT=${envPort}, but the spec gives this process port ${port}: unset MBC_PORT, or change the port in the spec`);
  }
  return port;
}
