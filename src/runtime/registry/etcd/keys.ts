/**
 * Where an instance lives in etcd: the key `/mbc/<system>/<service>/<instance>`, whose value is
 * a JSON object with what others need to reach and weigh it (`url`, `weight`, `capacityPerSec`),
 * the `version` of mbc that wrote it, and the `host` and `pid` that hold it (named when a second
 * copy is refused).
 */
import type { InstanceEndpoint } from "../../core/contracts.js";

export interface InstanceValue {
  url: string;
  weight: number;
  capacityPerSec: number | null;
  version: string;
  host: string;
  pid: number;
}

/** Every instance of a system lives under this prefix. */
export function systemPrefix(system: string): string {
  return `/mbc/${system}/`;
}

export function instanceKey(system: string, service: string, instance: number): string {
  return `${systemPrefix(system)}${service}/${instance}`;
}

/** An endpoint from a key and value under the system's prefix; null for anything else (a key of another shape, a value that is not ours). */
export function parseInstance(prefix: string, key: string, value: string): InstanceEndpoint | null {
  if (!key.startsWith(prefix)) return null;
  const parts = key.slice(prefix.length).split("/");
  if (parts.length !== 2) return null;
  const [service, k] = parts as [string, string];
  if (service === "" || !/^(?:0|[1-9][0-9]{0,5})$/.test(k)) return null;
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const { url, weight, capacityPerSec } = v as Record<string, unknown>;
  if (typeof url !== "string" || typeof weight !== "number" || !(weight > 0)) return null;
  return { service, instance: Number(k), url, weight, capacityPerSec: typeof capacityPerSec === "number" ? capacityPerSec : null };
}

/** Who holds a key, for messages: its URL, and its process when the value says. */
export function describeHolder(value: string | null): string {
  if (value === null) return "another process";
  try {
    const v = JSON.parse(value) as Partial<InstanceValue>;
    const where = typeof v.pid === "number" && typeof v.host === "string" ? ` (pid ${v.pid} on ${v.host})` : "";
    return typeof v.url === "string" ? `the instance at ${v.url}${where}` : "another process";
  } catch {
    return "another process";
  }
}
