/**
 * A runtime process's settings from its environment (MBC_DATA_DIR, MBC_STATE_DIR, MBC_BIND …),
 * resolved against system.json's place and the model. Pure: the variables come in as an argument.
 */
import { dirname, join, resolve } from "node:path";
import type { Model } from "../../model/types.js";
import { DNS_LABEL } from "../../policy/kubernetes.js";
import type { RuntimeEnv } from "../core/contracts.js";
import { RuntimeConfigError } from "./error.js";

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
  return {
    systemDir,
    dataDir,
    stateDir,
    registryUrl,
    bind,
    advertiseHost,
    token: variable(vars, "MBC_TOKEN"),
    port: portVariable(vars),
    namespace: namespaceVariable(vars) ?? model.targets.kubernetes.namespace,
  };
}

/** MBC_NAMESPACE: a DNS-1123 label (it goes into the host names the kubernetes backend looks up), or unset. */
function namespaceVariable(vars: EnvVars): string | null {
  const text = variable(vars, "MBC_NAMESPACE");
  if (text !== null && !DNS_LABEL.test(text))
    throw new RuntimeConfigError(
      `MBC_NAMESPACE must be a Kubernetes namespace (lowercase letters, digits and dashes, at most 63), not ${JSON.stringify(text)}`,
    );
  return text;
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
