/**
 * The kubernetes target's objects, as data: a pure function of the model, so the base and every
 * environment's overlay come from the same code and an overlay is the difference of the two.
 *
 * - One StatefulSet and one headless Service a service: instance K is pod K, named
 *   `NAME-K.NAME.NAMESPACE.svc` while it is ready (src/policy/kubernetes.ts). A StatefulSet keeps
 *   ordinals stable, so the weight of instance K stays with pod K. The runtime takes `--instance`
 *   from the pod's host name, `NAME-K` on every Kubernetes version (the `apps.kubernetes.io/pod-index`
 *   label needs 1.28).
 * - One StatefulSet a source (one pod: a source owns its log), with a volume claim for its state;
 *   an http source also gets a Service on its port.
 * - One volume claim `data` (access mode `sinkAccessMode`) for the pods that read or write files:
 *   `builtin:jsonl-sink`, module handlers, file sources.
 * - The runtime folder (mbc-runtime.mjs, system.json, handlers) comes from three ConfigMaps that
 *   kustomize generates from runtime/ (kustomization.ts), unless the image holds it.
 */
import { posix } from "node:path";
import type { Model, ServiceModel, SourceModel } from "../../src/model/types.js";
import { drainBudgetMs, heapLimitMiB } from "../../src/policy/index.js";
import { handlerTarget, systemJsonText } from "../shared/runtime-folder.js";

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & {
  [key: string]: Json;
};

/** Where the runtime folder is mounted (or found, in an image that holds it). */
export const RUNTIME_DIR = "/opt/mbc/runtime";
/** The volume claim `data`: relative spec paths (file sources, sink paths) resolve against it. */
export const DATA_DIR = "/var/lib/mbc/data";
/** Each source's own state volume: its durable log, commit log and dead letters. */
export const STATE_DIR = "/var/lib/mbc/state";
/** The user and group every runtime pod runs as. */
export const RUN_AS = 1000;
/** The port of a source the spec gives none (file, generator): its probes and /metrics. */
export const UNPUBLISHED_SOURCE_PORT = 8080;
/** Size requested by each source's state claim and by the data claim; an overlay patches it. */
export const DEFAULT_VOLUME_SIZE = "1Gi";
/** Beyond a process's drain budget before the kubelet kills it (as under Compose). */
const STOP_GRACE_MS = 5000;
/** The ConfigMaps kustomize generates from runtime/ (with a hash suffix, so pods roll when they change). */
export const CONFIGMAPS = { runtime: "mbc-runtime", system: "mbc-system", handlers: "mbc-handlers" } as const;

/** The API server's limit on a ConfigMap's data (keys and values). */
export const CONFIGMAP_LIMIT_BYTES = 1024 * 1024;

/** The data of the ConfigMap mbc-system: its one key, and system.json as the pods read it. */
export function systemConfigMapBytes(model: Model): number {
  return Buffer.byteLength("system.json") + Buffer.byteLength(systemJsonText(clusterModel(model)));
}
export const DATA_CLAIM = "data";
export const STATE_CLAIM = "state";

/** Which pods mount the data claim: they read or write files the spec names. */
export function usesDataVolume(service: ServiceModel): boolean {
  return service.image === null && (service.handler?.kind === "module" || (service.handler?.kind === "builtin" && service.handler.name === "jsonl-sink"));
}

export function sourceUsesDataVolume(source: SourceModel): boolean {
  return source.type === "file";
}

/** Every pod that mounts the data claim, as `source/NAME` or `service/NAME` with its pod count. */
export function dataVolumeUsers(model: Model): { what: string; path: string; pods: number }[] {
  return [
    ...model.sources.filter(sourceUsesDataVolume).map((s) => ({ what: `source "${s.name}"`, path: s.path, pods: 1 })),
    ...model.services.filter(usesDataVolume).map((s) => ({ what: `service "${s.name}"`, path: s.path, pods: s.instances.length })),
  ];
}

/** A path of the spec placed below a mount point: absolute or `..`-leading paths cannot leave it. */
export function belowMount(mount: string, path: string): string {
  const inside = posix.normalize(`/${path}`).replace(/\/+$/, "");
  return inside === "" ? mount : `${mount}${inside}`;
}

/** A byte size as Kubernetes writes a quantity, exactly: the largest binary unit that divides it. */
export function quantityOfBytes(bytes: number): string {
  for (const [unit, factor] of [
    ["Gi", 1024 ** 3],
    ["Mi", 1024 ** 2],
    ["Ki", 1024],
  ] as const) {
    if (bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

/** CPUs as a quantity: whole cores as they are, else millicores (the API's own precision). */
export function quantityOfCpus(cpus: number): string {
  return Number.isInteger(cpus) ? String(cpus) : `${Math.max(1, Math.round(cpus * 1000))}m`;
}

/** Whole seconds, at least 1: probe periods and timeouts take no less. */
function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export function labelsOf(model: Model, component: "source" | "service" | "storage", name: string): Record<string, string> {
  return {
    "app.kubernetes.io/name": name,
    "app.kubernetes.io/instance": `${model.name}-${name}`,
    "app.kubernetes.io/component": component,
    "app.kubernetes.io/part-of": model.name,
    "app.kubernetes.io/managed-by": "mbc",
  };
}

/** What a workload selects its pods by: two labels that never change for a name. */
function selectorOf(model: Model, name: string): Record<string, string> {
  return { "app.kubernetes.io/name": name, "app.kubernetes.io/instance": `${model.name}-${name}` };
}

/** The probes of a runtime process on `port`: readiness is the registration (`/readyz?scope=self`). */
export function probesOf(model: Model, port: number): { readinessProbe: Json; livenessProbe: Json } {
  const period = seconds(model.registry.heartbeatMs);
  // Unready after `ttl` of failed probes: the pod leaves discovery when the embedded registry would expire it.
  const failures = Math.max(1, Math.ceil(model.registry.ttlMs / model.registry.heartbeatMs));
  return {
    readinessProbe: { httpGet: { path: "/readyz?scope=self", port }, periodSeconds: period, timeoutSeconds: period, failureThreshold: failures },
    // A restart costs more than a missed batch: liveness waits three times as long.
    livenessProbe: { httpGet: { path: "/healthz", port }, periodSeconds: period, timeoutSeconds: period, failureThreshold: failures * 3 },
  };
}

/** The runtime folder as the pod sees it: a projected volume of the three ConfigMaps, keys mapped to paths. */
export function runtimeVolume(handlerPaths: readonly string[]): Json {
  const sources: Json[] = [
    {
      configMap: {
        name: CONFIGMAPS.runtime,
        items: [
          { key: "mbc-runtime.mjs", path: "mbc-runtime.mjs" },
          { key: "package.json", path: "package.json" },
        ],
      },
    },
    { configMap: { name: CONFIGMAPS.system, items: [{ key: "system.json", path: "system.json" }] } },
  ];
  if (handlerPaths.length > 0) {
    sources.push({ configMap: { name: CONFIGMAPS.handlers, items: handlerPaths.map((path, k) => ({ key: handlerKey(k, path), path })) } });
  }
  return { name: "runtime", projected: { sources } };
}

/**
 * A handler's key in its ConfigMap: keys allow no `/`, so each file gets its position and
 * extension; the volume puts it back at its path.
 */
export function handlerKey(k: number, path: string): string {
  return `handler-${k}${posix.extname(path).replace(/[^-._a-zA-Z0-9]/g, "")}`;
}

/** The handler files of the runtime folder, in the order their keys number them. */
export function handlerFiles(model: Model): string[] {
  const paths = new Set<string>();
  for (const s of model.services) if (s.handler?.kind === "module") paths.add(handlerTarget(s.handler.path));
  return [...paths].sort();
}

/**
 * The model as the pods' system.json carries it: the cluster is the registry (`embedded` means
 * `kubernetes` here; an etcd registry stays etcd, reached from the pods), and every instance of a
 * service listens on the service's port (each pod has its own address; the probes of a
 * StatefulSet's one pod template need one port).
 */
export function clusterModel(model: Model): Model {
  return {
    ...model,
    registry: { ...model.registry, backend: model.registry.backend === "etcd" ? "etcd" : "kubernetes" },
    services: model.services.map((s) => ({ ...s, instances: s.instances.map((i) => ({ ...i, port: s.port })) })),
  };
}

interface PodParts {
  name: string;
  component: "source" | "service";
  replicas: number;
  container: Record<string, Json>;
  volumes: Json[];
  claims: Json[];
  graceMs: number;
  runsRuntime: boolean;
}

function statefulSet(model: Model, p: PodParts): K8sObject {
  const t = model.targets.kubernetes;
  const podSecurity: Record<string, Json> = p.runsRuntime
    ? { runAsUser: RUN_AS, runAsGroup: RUN_AS, runAsNonRoot: true, fsGroup: RUN_AS, seccompProfile: { type: "RuntimeDefault" } }
    : { seccompProfile: { type: "RuntimeDefault" } };
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: p.name, namespace: t.namespace, labels: labelsOf(model, p.component, p.name) },
    spec: {
      serviceName: p.name,
      replicas: p.replicas,
      // Instances are independent: start and replace them all at once, not one ordinal after another.
      podManagementPolicy: "Parallel",
      selector: { matchLabels: selectorOf(model, p.name) },
      template: {
        metadata: { labels: labelsOf(model, p.component, p.name) },
        spec: {
          enableServiceLinks: false,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: seconds(p.graceMs + STOP_GRACE_MS),
          securityContext: podSecurity,
          containers: [p.container],
          ...(p.volumes.length === 0 ? {} : { volumes: p.volumes }),
        },
      },
      ...(p.claims.length === 0 ? {} : { volumeClaimTemplates: p.claims }),
    },
  };
}

function claimSpec(model: Model, accessMode: string): Record<string, Json> {
  const storageClass = model.targets.kubernetes.storageClass;
  return {
    accessModes: [accessMode],
    ...(storageClass === null ? {} : { storageClassName: storageClass }),
    resources: { requests: { storage: DEFAULT_VOLUME_SIZE } },
  };
}

/** The container's security: nothing to escalate to, no capabilities, a read-only root (the runtime writes only to its volumes and /tmp). */
function containerSecurity(runsRuntime: boolean): Json {
  return runsRuntime ? { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } } : { allowPrivilegeEscalation: false };
}

const TMP_VOLUME: Json = { name: "tmp", emptyDir: {} };

/** Environment entries: the target's first, then the service's own without the names the target sets. */
function envOf(own: readonly Json[], user: Readonly<Record<string, string>>): Json[] {
  const set = new Set(own.map((e) => (e as { name: string }).name));
  return [
    ...own,
    ...Object.entries(user)
      .filter(([k]) => !set.has(k))
      .map(([name, value]) => ({ name, value: k8sLiteral(value) })),
  ];
}

/**
 * A string the kubelet passes on exactly: it expands `$(VAR)` in env values, commands and
 * arguments, and reads `$$` as `$`.
 */
export function k8sLiteral(text: string): string {
  return text.replace(/\$/g, "$$$$");
}

const fieldEnv = (name: string, fieldPath: string): Json => ({ name, valueFrom: { fieldRef: { fieldPath } } });

function resourcesOf(service: ServiceModel): Json | null {
  const q: Record<string, string> = {
    ...(service.resources.cpus === null ? {} : { cpu: quantityOfCpus(service.resources.cpus) }),
    ...(service.resources.memoryBytes === null ? {} : { memory: quantityOfBytes(service.resources.memoryBytes) }),
  };
  // Requests equal to limits: the scheduler places an instance where its limits fit.
  return Object.keys(q).length === 0 ? null : { requests: q, limits: q };
}

/** The runtime's command: `--instance` is the ordinal at the end of the pod's host name (`NAME-K`). */
function runtimeCommand(args: readonly string[], heapMiB: number | null, instanceFromHost: boolean): Json[] {
  const node = ["node", ...(heapMiB === null ? [] : [`--max-old-space-size=${heapMiB}`]), `${RUNTIME_DIR}/mbc-runtime.mjs`];
  if (!instanceFromHost) return [...node, ...args].map(k8sLiteral);
  // Arguments go to the script as "$@": no name or value is parsed by the shell.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the shell's parameter expansion, on purpose
  return ["sh", "-c", 'exec "$@" --instance "${HOSTNAME##*-}"', "sh", ...node, ...args].map(k8sLiteral);
}

/** All the objects of the system in one namespace, in a stable order: the namespace, claims, then each source and service. */
export function objectsOf(model: Model): K8sObject[] {
  const t = model.targets.kubernetes;
  const ns = t.namespace;
  const out: K8sObject[] = [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: ns, labels: { "app.kubernetes.io/part-of": model.name, "app.kubernetes.io/managed-by": "mbc" } },
    },
  ];
  const dataUsed = dataVolumeUsers(model).length > 0;
  if (dataUsed) {
    out.push({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: DATA_CLAIM, namespace: ns, labels: labelsOf(model, "storage", DATA_CLAIM) },
      spec: claimSpec(model, t.sinkAccessMode),
    });
  }
  const handlers = handlerFiles(model);
  const runtimeMounts = (): { volumes: Json[]; mounts: Json[] } => ({
    volumes: [...(t.imageHasRuntime ? [] : [runtimeVolume(handlers)]), TMP_VOLUME],
    mounts: [...(t.imageHasRuntime ? [] : [{ name: "runtime", mountPath: RUNTIME_DIR, readOnly: true }]), { name: "tmp", mountPath: "/tmp" }],
  });
  const dataVolume: Json = { name: DATA_CLAIM, persistentVolumeClaim: { claimName: DATA_CLAIM } };
  const dataMount: Json = { name: DATA_CLAIM, mountPath: DATA_DIR };
  const common: Json[] = [
    { name: "MBC_BIND", value: "0.0.0.0" },
    fieldEnv("MBC_NAMESPACE", "metadata.namespace"),
    fieldEnv("MBC_ADVERTISE_HOST", "status.podIP"),
  ];

  for (const source of model.sources) {
    const port = source.type === "http" ? source.port : UNPUBLISHED_SOURCE_PORT;
    const files = sourceUsesDataVolume(source);
    const { volumes, mounts } = runtimeMounts();
    const container: Record<string, Json> = {
      name: "source",
      image: t.image,
      command: runtimeCommand(["--role", "source", "--name", source.name], null, false),
      env: [
        ...common,
        { name: "MBC_DATA_DIR", value: DATA_DIR },
        { name: "MBC_STATE_DIR", value: k8sLiteral(belowMount(STATE_DIR, model.checkpoint.dir)) },
        ...(source.type === "http" ? [] : [{ name: "MBC_PORT", value: String(port) }]),
      ],
      ports: [{ name: "http", containerPort: port }],
      ...probesOf(model, port),
      securityContext: containerSecurity(true),
      volumeMounts: [...mounts, { name: STATE_CLAIM, mountPath: STATE_DIR }, ...(files ? [dataMount] : [])],
    };
    out.push(
      statefulSet(model, {
        name: source.name,
        component: "source",
        // A source owns its log: one pod, never two (a second would wait on the log's lock).
        replicas: 1,
        container,
        volumes: [...volumes, ...(files ? [dataVolume] : [])],
        claims: [{ metadata: { name: STATE_CLAIM }, spec: claimSpec(model, "ReadWriteOnce") }],
        graceMs: drainBudgetMs(model, { kind: "source", name: source.name, source }),
        runsRuntime: true,
      }),
    );
    if (source.type === "http") {
      out.push({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: source.name, namespace: ns, labels: labelsOf(model, "source", source.name) },
        spec: { selector: selectorOf(model, source.name), ports: [{ name: "http", port, targetPort: "http" }] },
      });
    }
  }

  for (const service of model.services) {
    const port = service.port;
    const own = service.image !== null;
    const files = usesDataVolume(service);
    const resources = resourcesOf(service);
    let container: Record<string, Json>;
    let volumes: Json[];
    if (own) {
      // The image is the service: it is told what the runtime would know. Its ordinal is the suffix of MBC_POD_NAME.
      container = {
        name: "service",
        image: service.image as string,
        env: envOf(
          [
            ...common,
            { name: "MBC_NAME", value: service.name },
            fieldEnv("MBC_POD_NAME", "metadata.name"),
            { name: "MBC_PORT", value: String(port) },
            { name: "MBC_DATA_DIR", value: DATA_DIR },
          ],
          service.env,
        ),
        ports: [{ name: "http", containerPort: port }],
        ...probesOf(model, port),
        ...(resources === null ? {} : { resources }),
        securityContext: containerSecurity(false),
      };
      volumes = [];
    } else {
      const rt = runtimeMounts();
      container = {
        name: "service",
        image: t.image,
        command: runtimeCommand(
          ["--role", "service", "--name", service.name],
          service.resources.memoryBytes === null ? null : heapLimitMiB(service.resources.memoryBytes),
          true,
        ),
        env: envOf([...common, { name: "MBC_DATA_DIR", value: DATA_DIR }], service.env),
        ports: [{ name: "http", containerPort: port }],
        ...probesOf(model, port),
        ...(resources === null ? {} : { resources }),
        securityContext: containerSecurity(true),
        volumeMounts: [...rt.mounts, ...(files ? [dataMount] : [])],
      };
      volumes = [...rt.volumes, ...(files ? [dataVolume] : [])];
    }
    out.push({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: service.name, namespace: ns, labels: labelsOf(model, "service", service.name) },
      spec: {
        // Headless: each ready pod has its own name (NAME-K.NAME.NAMESPACE.svc), which is how instances are found.
        clusterIP: "None",
        publishNotReadyAddresses: false,
        selector: selectorOf(model, service.name),
        ports: [{ name: "http", port, targetPort: "http" }],
      },
    });
    out.push(
      statefulSet(model, {
        name: service.name,
        component: "service",
        replicas: service.instances.length,
        container,
        volumes,
        claims: [],
        graceMs: drainBudgetMs(model, { kind: "service", name: service.name, instance: 0, service }),
        runsRuntime: !own,
      }),
    );
  }
  return out;
}
