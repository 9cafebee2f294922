/**
 * The etcd backend's settings: the endpoints from system.json (`registry.endpoints`) unless
 * MBC_REGISTRY_ENDPOINTS (comma separated) overrides them, and credentials and TLS only from the
 * environment — MBC_REGISTRY_USER with MBC_REGISTRY_PASSWORD, MBC_REGISTRY_CA, and
 * MBC_REGISTRY_CERT with MBC_REGISTRY_KEY (files, read once at start). A bad setting stops the
 * process at start (exit 2) with what is wrong and how to fix it.
 */
import { readFileSync } from "node:fs";
import type { Model } from "../../../model/types.js";
import { RuntimeConfigError } from "../../config/error.js";
import type { TlsFiles } from "./transport.js";

export interface EtcdSettings {
  endpoints: string[];
  auth: { user: string; password: string } | null;
  tls: TlsFiles;
}

type Vars = Readonly<Record<string, string | undefined>>;

function variable(vars: Vars, name: string): string | null {
  const v = vars[name];
  return v === undefined || v === "" ? null : v;
}

/** Why `text` is not an etcd endpoint, or null. */
export function endpointProblem(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "is not a URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return "must be an http:// or https:// URL";
  if (url.username !== "" || url.password !== "") return "may not carry credentials (use MBC_REGISTRY_USER and MBC_REGISTRY_PASSWORD)";
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") return "must be scheme://host:port, without a path or query";
  return null;
}

export function etcdSettings(model: Model, vars: Vars, readFile: (path: string) => Buffer = (p) => readFileSync(p)): EtcdSettings {
  const fromVar = variable(vars, "MBC_REGISTRY_ENDPOINTS");
  const endpoints =
    fromVar === null
      ? [...model.registry.endpoints]
      : fromVar
          .split(",")
          .map((e) => e.trim())
          .filter((e) => e !== "");
  const origin = fromVar === null ? "registry.endpoints in system.json" : "MBC_REGISTRY_ENDPOINTS";
  if (endpoints.length === 0)
    throw new RuntimeConfigError(`the etcd registry has no endpoints: set registry.endpoints in the spec, or MBC_REGISTRY_ENDPOINTS (comma separated URLs)`);
  for (const e of endpoints) {
    const problem = endpointProblem(e);
    if (problem !== null) throw new RuntimeConfigError(`${origin}: ${JSON.stringify(e)} ${problem}`);
  }

  const user = variable(vars, "MBC_REGISTRY_USER");
  const password = variable(vars, "MBC_REGISTRY_PASSWORD");
  if ((user === null) !== (password === null))
    throw new RuntimeConfigError(
      `${user === null ? "MBC_REGISTRY_PASSWORD is set without MBC_REGISTRY_USER" : "MBC_REGISTRY_USER is set without MBC_REGISTRY_PASSWORD"}: set both, or neither`,
    );

  const file = (name: string): Buffer | undefined => {
    const path = variable(vars, name);
    if (path === null) return undefined;
    try {
      return readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new RuntimeConfigError(`${name}: cannot read ${JSON.stringify(path)} (${code}): give the path of a PEM file this process may read`);
    }
  };
  const ca = file("MBC_REGISTRY_CA");
  const cert = file("MBC_REGISTRY_CERT");
  const key = file("MBC_REGISTRY_KEY");
  if ((cert === undefined) !== (key === undefined))
    throw new RuntimeConfigError(
      `${cert === undefined ? "MBC_REGISTRY_KEY is set without MBC_REGISTRY_CERT" : "MBC_REGISTRY_CERT is set without MBC_REGISTRY_KEY"}: a client certificate needs both`,
    );
  if ((ca !== undefined || cert !== undefined) && !endpoints.some((e) => e.startsWith("https:")))
    throw new RuntimeConfigError(
      `MBC_REGISTRY_CA/CERT/KEY are set, but no etcd endpoint is https:// (${endpoints.join(", ")}): use https endpoints, or unset them`,
    );
  return {
    endpoints,
    auth: user === null || password === null ? null : { user, password },
    tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
  };
}
