/**
 * Where a runtime process runs: its role from argv, its settings from the environment, and
 * the system it belongs to from system.json. Everything is resolved once at start; a problem
 * is a RuntimeConfigError, which the entry reports and exits 2 on (like mbc's usage errors).
 *
 * The functions that decide (parseArgs, checkSystem, resolveEnv, resolveRole) are pure; only
 * loadSystem and loadRuntime read files.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseArgs as parseCommandLine } from "node:util";
import { BUILTIN_HANDLERS, LOAD_BALANCING, type Model } from "../../model/types.js";
import { configuredPort, type ProcessRole } from "../../policy/index.js";
import type { RuntimeEnv, SystemFile } from "../core/contracts.js";

/**
 * A problem of the process's setup that stops it before it starts (exit status 2): its
 * configuration, or a state folder that another process owns (core/ownership.ts).
 */
export class RuntimeConfigError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "RuntimeConfigError";
  }
}

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

/** The environment variables the runtime reads (empty values count as unset). */
export type EnvVars = Readonly<Record<string, string | undefined>>;

function variable(vars: EnvVars, key: string): string | null {
  const value = vars[key];
  return value === undefined || value.trim() === "" ? null : value.trim();
}

/** Addresses that mean "every interface": nobody can connect to them, so they are not advertised. */
const WILDCARDS = new Set(["0.0.0.0", "::", "[::]", "::0"]);

/** Resolves the RuntimeEnv of a process from system.json's location, the model and the environment. */
export function resolveEnv(systemPath: string, model: Model, vars: EnvVars): RuntimeEnv {
  const systemDir = dirname(resolve(systemPath));
  const dataDirVar = variable(vars, "MBC_DATA_DIR");
  const dataDir = dataDirVar === null ? systemDir : resolve(systemDir, dataDirVar);
  const stateDirVar = variable(vars, "MBC_STATE_DIR");
  const stateDir = stateDirVar === null ? resolve(dataDir, model.checkpoint.dir) : resolve(dataDir, stateDirVar);
  const bind = variable(vars, "MBC_BIND") ?? model.targets.node.bind;
  const advertiseHost = variable(vars, "MBC_ADVERTISE_HOST") ?? (WILDCARDS.has(bind) ? "127.0.0.1" : bind);
  const registryVar = variable(vars, "MBC_REGISTRY_URL");
  let registryUrl = `http://127.0.0.1:${model.registry.port}`;
  if (registryVar !== null) {
    let url: URL;
    try {
      url = new URL(registryVar);
    } catch {
      throw new RuntimeConfigError(`MBC_REGISTRY_URL is not a URL: ${JSON.stringify(registryVar)}`);
    }
    if (url.protocol !== "http:") throw new RuntimeConfigError(`MBC_REGISTRY_URL must be an http:// URL, not ${JSON.stringify(registryVar)}`);
    // The protocol's paths are appended to it: keep a base path, drop a trailing slash.
    registryUrl = `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
  }
  return { systemDir, dataDir, stateDir, registryUrl, bind, advertiseHost, token: variable(vars, "MBC_TOKEN"), port: portVariable(vars) };
}

/** MBC_PORT: an integer from 1 to 65535, or unset. */
function portVariable(vars: EnvVars): number | null {
  const text = variable(vars, "MBC_PORT");
  if (text === null) return null;
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65_535)) throw new RuntimeConfigError(`MBC_PORT must be a port number from 1 to 65535, not ${JSON.stringify(text)}`);
  return port;
}

/** A host as it goes into a URL: IPv6 addresses in brackets. */
export function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** The path of system.json: MBC_SYSTEM, else beside the entry file. */
export function systemPathFor(entry: string, vars: EnvVars): string {
  const fromVar = variable(vars, "MBC_SYSTEM");
  if (fromVar !== null) return resolve(fromVar);
  return join(dirname(resolve(entry)), "system.json");
}

/** Reads and checks system.json. */
export function loadSystem(path: string): SystemFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String((err as Error).message);
    throw new RuntimeConfigError(`cannot read system file ${path}: ${why} (set MBC_SYSTEM to its path)`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RuntimeConfigError(`system file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return checkSystem(value, path);
}

/**
 * Checks the shape of a parsed system.json: the fields the runtime relies on, with their
 * types, and the references between them. It is written by `mbc build` from a validated
 * model, so a failure means a hand-edited, truncated or mismatched file: better a clear
 * message at start than a TypeError in the middle of a batch.
 */
export function checkSystem(value: unknown, path: string): SystemFile {
  const problems: string[] = [];
  const at = (where: string, what: string) => problems.push(`${where}: ${what}`);
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  const num = (v: unknown, where: string, min = 0, nullable = false) => {
    if (nullable && v === null) return;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min) at(where, `expected a number ≥ ${min}${nullable ? " or null" : ""}`);
  };
  const str = (v: unknown, where: string, nullable = false) => {
    if (nullable && v === null) return;
    if (typeof v !== "string") at(where, `expected a string${nullable ? " or null" : ""}`);
  };
  const oneOf = (v: unknown, where: string, options: readonly string[]) => {
    if (typeof v !== "string" || !options.includes(v)) at(where, `expected one of ${options.join(", ")}`);
  };

  if (!isObject(value)) throw new RuntimeConfigError(`system file ${path} is not a JSON object`);
  if (value.mbc !== 1) at("mbc", "expected 1 (this runtime reads system files of version 1)");
  const model = value.model;
  if (!isObject(model)) {
    at("model", "expected an object");
  } else {
    if (model.mbc !== 1) at("model.mbc", "expected 1");
    str(model.name, "model.name");
    const registry = model.registry;
    if (!isObject(registry)) at("model.registry", "expected an object");
    else {
      // 0: any free port (the supervisor tells the other processes which); tests run so.
      num(registry.port, "model.registry.port", 0);
      num(registry.heartbeatMs, "model.registry.heartbeatMs", 1);
      num(registry.ttlMs, "model.registry.ttlMs", 1);
    }
    const checkpoint = model.checkpoint;
    if (!isObject(checkpoint)) at("model.checkpoint", "expected an object");
    else {
      str(checkpoint.dir, "model.checkpoint.dir");
      if (typeof checkpoint.fsync !== "boolean") at("model.checkpoint.fsync", "expected a boolean");
    }
    const node = isObject(model.targets) && isObject(model.targets.node) ? model.targets.node : null;
    if (node === null) at("model.targets.node", "expected an object");
    else str(node.bind, "model.targets.node.bind");

    const serviceNames = new Set<string>();
    if (!Array.isArray(model.services)) at("model.services", "expected an array");
    else {
      model.services.forEach((s: unknown, i: number) => {
        const where = `model.services[${i}]`;
        if (!isObject(s)) {
          at(where, "expected an object");
          return;
        }
        str(s.name, `${where}.name`);
        if (typeof s.name === "string") serviceNames.add(s.name);
        num(s.port, `${where}.port`, 0);
        num(s.timeoutMs, `${where}.timeoutMs`, 0);
        oneOf(s.loadBalancing, `${where}.loadBalancing`, LOAD_BALANCING);
        if (!isObject(s.config)) at(`${where}.config`, "expected an object");
        if (!isObject(s.env)) at(`${where}.env`, "expected an object");
        if (!Array.isArray(s.to) || !s.to.every((t) => typeof t === "string")) at(`${where}.to`, "expected an array of names");
        if (!Array.isArray(s.instances) || s.instances.length === 0) at(`${where}.instances`, "expected a non-empty array");
        else
          s.instances.forEach((inst: unknown, k: number) => {
            const w = `${where}.instances[${k}]`;
            if (!isObject(inst)) {
              at(w, "expected an object");
              return;
            }
            if (inst.index !== k) at(`${w}.index`, `expected ${k}`);
            num(inst.weight, `${w}.weight`, Number.MIN_VALUE);
            num(inst.capacityPerSec, `${w}.capacityPerSec`, 0, true);
            num(inst.port, `${w}.port`, 0);
          });
        const retry = s.retry;
        if (!isObject(retry)) at(`${where}.retry`, "expected an object");
        else {
          num(retry.maxRetries, `${where}.retry.maxRetries`);
          num(retry.intervalMs, `${where}.retry.intervalMs`);
          num(retry.multiplier, `${where}.retry.multiplier`, 1);
          num(retry.maxIntervalMs, `${where}.retry.maxIntervalMs`);
          oneOf(retry.backoff, `${where}.retry.backoff`, ["constant", "exponential"]);
          oneOf(retry.jitter, `${where}.retry.jitter`, ["none", "full", "equal"]);
          if (!Array.isArray(retry.on)) at(`${where}.retry.on`, "expected an array");
          if (!isObject(retry.budget)) at(`${where}.retry.budget`, "expected an object");
          else {
            num(retry.budget.ratio, `${where}.retry.budget.ratio`);
            num(retry.budget.minPerSecond, `${where}.retry.budget.minPerSecond`);
          }
        }
        const handler = s.handler;
        if (handler !== null) {
          if (!isObject(handler)) at(`${where}.handler`, "expected an object or null");
          else if (handler.kind === "builtin") oneOf(handler.name, `${where}.handler.name`, BUILTIN_HANDLERS);
          else if (handler.kind !== "module") at(`${where}.handler.kind`, "expected builtin or module");
        } else if (s.image === null || s.image === undefined) at(`${where}.handler`, "a service needs a handler or an image");
      });
    }
    if (!Array.isArray(model.sources)) at("model.sources", "expected an array");
    else {
      model.sources.forEach((s: unknown, i: number) => {
        const where = `model.sources[${i}]`;
        if (!isObject(s)) {
          at(where, "expected an object");
          return;
        }
        str(s.name, `${where}.name`);
        oneOf(s.type, `${where}.type`, ["http", "file", "generator"]);
        num(s.port, `${where}.port`, 0, s.type !== "http");
        str(s.location, `${where}.location`, s.type === "generator");
        num(s.ratePerSec, `${where}.ratePerSec`, 0, s.type !== "generator");
        num(s.count, `${where}.count`, 0, true);
        if (!isObject(s.record)) at(`${where}.record`, "expected an object");
        if (!isObject(s.batch)) at(`${where}.batch`, "expected an object");
        else {
          num(s.batch.maxRecords, `${where}.batch.maxRecords`, 1);
          num(s.batch.maxWaitMs, `${where}.batch.maxWaitMs`);
          num(s.batch.maxBytes, `${where}.batch.maxBytes`, 1);
        }
        str(s.to, `${where}.to`);
        if (typeof s.to === "string" && Array.isArray(model.services) && !serviceNames.has(s.to)) at(`${where}.to`, `no service ${JSON.stringify(s.to)}`);
      });
    }
    if (Array.isArray(model.services)) {
      model.services.forEach((s: unknown, i: number) => {
        if (!isObject(s) || !Array.isArray(s.to)) return;
        for (const t of s.to) if (typeof t === "string" && !serviceNames.has(t)) at(`model.services[${i}].to`, `no service ${JSON.stringify(t)}`);
      });
    }
  }

  const handlers = value.handlers;
  if (!isObject(handlers)) at("handlers", "expected an object");
  else {
    for (const [service, file] of Object.entries(handlers)) {
      // Handlers are loaded from the system's folder only: a path that is absolute or climbs out
      // of it would run code the build did not copy there.
      if (typeof file !== "string" || file === "") at(`handlers.${service}`, "expected a path");
      else if (isAbsolute(file) || /^[a-zA-Z]:/.test(file) || file.split(/[\\/]/).includes(".."))
        at(`handlers.${service}`, "must be a path inside the system's folder");
    }
    if (isObject(model) && Array.isArray(model.services)) {
      for (const s of model.services) {
        if (isObject(s) && isObject(s.handler) && s.handler.kind === "module" && typeof s.name === "string" && !(s.name in handlers)) {
          at(`handlers.${s.name}`, "missing: the service has a module handler");
        }
      }
    }
  }

  if (problems.length > 0) {
    const shown = problems.slice(0, 10).join("; ");
    const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : "";
    throw new RuntimeConfigError(`system file ${path} is invalid: ${shown}${more}`);
  }
  return value as unknown as SystemFile;
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
