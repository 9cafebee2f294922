/**
 * Raw (schema-valid) spec → normalised model. Pure: no file system, clock or environment.
 * Defaults: the contract's, then `defaults`, then the entry's own values.
 */
import { posix } from "node:path";
import type { Finding } from "../diagnostic.js";
import { SPEC_DEFAULTS } from "../generated/spec-defaults.js";
import type { Batch, Defaults, Retry, Service, Source1 } from "../generated/spec-types.js";
import { joinPointer } from "../pointer.js";
import { resolveTimeouts, SINK_TIMEOUT_MS } from "./timeouts.js";
import type { BatchModel, HandlerRef, InstanceModel, LoadBalancing, Model, RawSpec, RetryModel, ServiceModel, SourceModel } from "./types.js";
import { parseDuration, parseRate, parseSize } from "./units.js";

export const FIRST_ASSIGNED_PORT = 9100;
export const MAX_PORT = 65535;

/** The contract's defaults, as the schema states them (src/generated/spec-defaults.ts). */
const D = SPEC_DEFAULTS;

export interface NormaliseResult {
  model: Model;
  findings: Finding[];
}

/** Entries of a name-keyed map, in file order. */
export function entries<T>(map: Record<string, T | undefined> | undefined): [string, T][] {
  return map ? Object.entries(map).filter((e): e is [string, T] => e[1] !== undefined) : [];
}

function batchOf(own: Batch | undefined, defaults: Batch | undefined): BatchModel {
  const d = D.batch;
  return {
    maxRecords: own?.maxRecords ?? defaults?.maxRecords ?? d.maxRecords,
    maxWaitMs: parseDuration(own?.maxWait ?? defaults?.maxWait ?? d.maxWait),
    maxBytes: parseSize(own?.maxBytes ?? defaults?.maxBytes ?? d.maxBytes),
  };
}

function retryOf(own: Retry | undefined, defaults: Retry | undefined): RetryModel {
  const d = D.retry;
  const pick = <K extends keyof Retry>(k: K) => own?.[k] ?? defaults?.[k];
  return {
    maxRetries: pick("maxRetries") ?? d.maxRetries,
    intervalMs: parseDuration(pick("interval") ?? d.interval),
    backoff: pick("backoff") ?? d.backoff,
    multiplier: pick("multiplier") ?? d.multiplier,
    maxIntervalMs: parseDuration(pick("maxInterval") ?? d.maxInterval),
    jitter: pick("jitter") ?? d.jitter,
    on: [...(pick("on") ?? d.on)],
    deadLetterAfterMs: ((v) => (v === undefined ? null : parseDuration(v)))(pick("deadLetterAfter")),
    budget: {
      ratio: own?.budget?.ratio ?? defaults?.budget?.ratio ?? d.budget.ratio,
      minPerSecond: own?.budget?.minPerSecond ?? defaults?.budget?.minPerSecond ?? d.budget.minPerSecond,
    },
  };
}

/** The contract's default retry, as the model holds it: what a stage gets when its spec says nothing. */
export const DEFAULT_RETRY: Readonly<RetryModel> = retryOf(undefined, undefined);

export function resolveHandler(handler: string | undefined): HandlerRef | null {
  if (handler === undefined) return null;
  if (handler.startsWith("builtin:")) return { kind: "builtin", name: handler.slice("builtin:".length) };
  const path = posix.normalize(handler.replace(/\\/g, "/"));
  const outside = path === ".." || path.startsWith("../") || posix.isAbsolute(path);
  return { kind: "module", path, outside };
}

function sourceOf(name: string, raw: Source1, defaults: Defaults | undefined): SourceModel {
  const path = joinPointer("/sources", name);
  const ratePerSec = raw.rate === undefined ? null : parseRate(raw.rate);
  const batch = batchOf(raw.batch, defaults?.batch);
  const to = raw.to;
  // The schema requires what each type needs (an http port, a file's path, a generator's rate).
  switch (raw.type) {
    case "http":
      return { name, path, type: "http", port: required(raw.port, path), location: raw.path ?? D.source.http.path, ratePerSec, batch, to };
    case "file":
      return { name, path, type: "file", location: required(raw.path, path), ratePerSec, batch, to };
    case "generator":
      return {
        name,
        path,
        type: "generator",
        ratePerSec: required(ratePerSec ?? undefined, path),
        count: raw.count ?? null,
        record: { ...(raw.record ?? {}) },
        batch,
        to,
      };
  }
}

/** A value the schema requires: only a spec that skipped the schema check lacks it. */
function required<T>(value: T | undefined, path: string): T {
  if (value === undefined) throw new Error(`${path}: a schema-valid spec has this value (normalise runs after the schema check)`);
  return value;
}

function instancesOf(raw: Service): { weight: number; capacityPerSec: number | null }[] {
  const serviceCapacity = raw.capacity === undefined ? null : parseRate(raw.capacity);
  const list = raw.instances ?? D.service.instances;
  if (typeof list === "number") return Array.from({ length: list }, () => ({ weight: 1, capacityPerSec: serviceCapacity }));
  return list.map((i) => ({ weight: i.weight ?? D.instance.weight, capacityPerSec: i.capacity === undefined ? serviceCapacity : parseRate(i.capacity) }));
}

function defaultLoadBalancing(instances: { weight: number }[]): LoadBalancing {
  const first = instances[0]?.weight;
  return instances.some((i) => i.weight !== first) ? "weighted-round-robin" : "round-robin";
}

export function normalise(raw: RawSpec, environment: string | null = null): NormaliseResult {
  const findings: Finding[] = [];
  const defaults = raw.defaults;
  const sources = entries(raw.sources).map(([name, s]) => sourceOf(name, s, defaults));

  const registryPort = raw.registry?.port ?? D.registry.port;
  const registryBackend = raw.registry?.backend ?? D.registry.backend;
  // Only the embedded registry is a process of the system with a port of its own.
  const declared = new Set<number>(registryBackend === "embedded" ? [registryPort] : []);
  for (const s of sources) if (s.type === "http") declared.add(s.port);
  const rawServices = entries(raw.services);
  for (const [, svc] of rawServices) {
    if (svc.port === undefined) continue;
    const n = instancesOf(svc).length;
    for (let k = 0; k < n; k++) declared.add(svc.port + k);
  }

  let cursor = FIRST_ASSIGNED_PORT;
  const services: ServiceModel[] = rawServices.map(([name, svc]) => {
    const path = joinPointer("/services", name);
    const shapes = instancesOf(svc);
    let port = svc.port;
    const portAssigned = port === undefined;
    if (port === undefined) {
      // The first contiguous range from the cursor that no declared port falls into.
      let p = cursor;
      for (let k = 0; k < shapes.length && p + shapes.length - 1 <= MAX_PORT; k++) {
        if (declared.has(p + k)) {
          p = p + k + 1;
          k = -1;
        }
      }
      if (p + shapes.length - 1 > MAX_PORT) {
        findings.push({
          code: "port-conflict",
          severity: "error",
          path,
          at: "key",
          message: `no free range of ${shapes.length} port(s) is left above ${FIRST_ASSIGNED_PORT} for service "${name}"`,
          hint: "give the service an explicit `port`",
        });
        p = cursor;
      }
      port = p;
      cursor = p + shapes.length;
    }
    const instances: InstanceModel[] = shapes.map((shape, index) => ({ index, ...shape, port: (port as number) + index }));
    const handler = resolveHandler(svc.handler);
    // Without a handler, the schema requires an image: the service runs only that.
    const runs = handler === null ? { handler, image: required(svc.image, path) } : { handler, image: svc.image ?? null };
    return {
      name,
      path,
      ...runs,
      config: { ...(svc.config ?? {}) } as Record<string, unknown>,
      instances,
      loadBalancing: svc.loadBalancing ?? defaultLoadBalancing(instances),
      capacityPerSec: svc.capacity === undefined ? null : parseRate(svc.capacity),
      port,
      portAssigned,
      // Set below, once every service's `to` is known (a default depends on the stages below).
      timeoutMs: 0,
      retry: retryOf(svc.retry, defaults?.retry),
      resources: {
        cpus: svc.resources?.cpus ?? defaults?.resources?.cpus ?? null,
        memoryBytes: (() => {
          const m = svc.resources?.memory ?? defaults?.resources?.memory;
          return m === undefined ? null : parseSize(m);
        })(),
      },
      env: Object.fromEntries(Object.entries(svc.env ?? {}).map(([k, v]) => [k, String(v)])),
      to: svc.to === undefined ? [] : typeof svc.to === "string" ? [svc.to] : [...svc.to],
    };
  });

  const timeouts = resolveTimeouts(
    rawServices.map(([name, svc], k) => {
      const set = svc.timeout ?? defaults?.timeout;
      return { name, setMs: set === undefined ? null : parseDuration(set), to: (services[k] as ServiceModel).to };
    }),
  );
  for (const s of services) s.timeoutMs = timeouts.get(s.name) ?? SINK_TIMEOUT_MS;

  const sim = raw.simulation;
  const model: Model = {
    mbc: 1,
    name: raw.name,
    description: raw.description ?? null,
    environment,
    registry: {
      backend: registryBackend,
      endpoints: registryBackend === "etcd" ? [...(raw.registry?.endpoints ?? [])] : [],
      port: registryPort,
      heartbeatMs: parseDuration(raw.registry?.heartbeat ?? D.registry.heartbeat),
      ttlMs: parseDuration(raw.registry?.ttl ?? D.registry.ttl),
    },
    sources,
    services,
    checkpoint: { dir: raw.checkpoint?.dir ?? `.mbc/state/${raw.name}`, fsync: raw.checkpoint?.fsync ?? D.checkpoint.fsync },
    simulation: {
      durationMs: parseDuration(sim?.duration ?? D.simulation.duration),
      arrival: sim?.arrival ?? D.simulation.arrival,
      failureRate: sim?.failureRate ?? D.simulation.failureRate,
      faults: (sim?.faults ?? []).map((f) => ({ service: f.service, instance: f.instance, atMs: parseDuration(f.at), durationMs: parseDuration(f.duration) })),
      seed: sim?.seed ?? D.simulation.seed,
    },
    targets: {
      compose: {
        project: raw.targets?.compose?.project ?? raw.name,
        image: raw.targets?.compose?.image ?? D.targets.compose.image,
        network: raw.targets?.compose?.network ?? raw.name,
      },
      systemd: {
        prefix: raw.targets?.systemd?.prefix ?? `mbc-${raw.name}`,
        user: raw.targets?.systemd?.user ?? D.targets.systemd.user,
        installDir: raw.targets?.systemd?.installDir ?? `/opt/mbc/${raw.name}`,
        node: raw.targets?.systemd?.node ?? D.targets.systemd.node,
      },
      node: { bind: raw.targets?.node?.bind ?? D.targets.node.bind },
      kubernetes: {
        namespace: raw.targets?.kubernetes?.namespace ?? raw.name,
        image: raw.targets?.kubernetes?.image ?? D.targets.kubernetes.image,
        imageHasRuntime: raw.targets?.kubernetes?.imageHasRuntime ?? D.targets.kubernetes.imageHasRuntime,
        storageClass: raw.targets?.kubernetes?.storageClass ?? null,
        sinkAccessMode: raw.targets?.kubernetes?.sinkAccessMode ?? D.targets.kubernetes.sinkAccessMode,
      },
    },
  };
  return { model, findings };
}
