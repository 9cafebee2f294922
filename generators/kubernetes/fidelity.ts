import type { FidelityTable } from "../../src/build/fidelity.js";
import { fidelityTable } from "../../src/build/fidelity-shared.js";

const maps = (note: string) => ({ how: "maps", note }) as const;
const approximates = (note: string) => ({ how: "approximates", note }) as const;
const na = (note: string) => ({ how: "n/a", note }) as const;
const dispatch = (scope: string, extra = "") => maps(`${scope}: the runtime's dispatch in each pod${extra}`);
const restartNote = "; a crashed container is restarted by the kubelet with its own back-off (10 s doubling to 5 min), not this one";

/**
 * The kubernetes target runs the same runtime, one pod a process: what the runtime does maps
 * exactly; the cluster is the registry (registry.backend `kubernetes`); the rest maps onto
 * StatefulSets, Services, volume claims and probes.
 */
export const kubernetesFidelity: FidelityTable = {
  ...fidelityTable("kubernetes", {
    mbc: maps("runtime/system.json"),
    name: maps("the default namespace; label app.kubernetes.io/part-of"),
    description: maps("runtime/system.json"),
    "defaults.retry.maxRetries": dispatch("defaults"),
    "defaults.retry.interval": dispatch("defaults", restartNote),
    "defaults.retry.backoff": dispatch("defaults", restartNote),
    "defaults.retry.multiplier": dispatch("defaults", restartNote),
    "defaults.retry.maxInterval": dispatch("defaults", restartNote),
    "defaults.retry.jitter": dispatch("defaults"),
    "defaults.retry.on": dispatch("defaults"),
    "defaults.retry.budget.ratio": dispatch("defaults"),
    "defaults.retry.budget.minPerSecond": dispatch("defaults"),
    "defaults.resources.cpus": maps("resources.requests and limits.cpu of each instance's container (millicores)"),
    "defaults.resources.memory": maps("resources.requests and limits.memory of each instance's container, and --max-old-space-size at 75 % of it"),
    "registry.backend": maps(
      "embedded and kubernetes both mean the cluster: each instance's DNS name under its headless Service, published while the pod is ready; etcd: every pod registers in and discovers from etcd; no registry process either way",
    ),
    "registry.endpoints": maps(
      "etcd: runtime/system.json; MBC_REGISTRY_ENDPOINTS in a pod's environment (an overlay's env patch) overrides them; the cluster must reach them",
    ),
    "registry.port": { how: "ignores", note: "no registry process runs: the cluster is the registry" },
    "sources.*.type": maps("one StatefulSet of one pod a source, with a volume claim `state` for its log"),
    "sources.*.port": maps("the http source's listener, behind a Service of the same name and port"),
    "sources.*.path": maps("http: the POST path; file: the JSONL file, relative to the volume claim `data` (an absolute path is refused)"),
    "sources.*.to": maps("the first stage, found through its headless Service"),
    "services.*.handler": maps("copied to runtime/handlers/ and mounted from the ConfigMap mbc-handlers (or held by the image); builtins run in the runtime"),
    "services.*.image": maps(
      "the service's pods run this image instead of the runtime (no command, no ConfigMap); MBC_NAME, MBC_POD_NAME (NAME-K), MBC_PORT tell it its place",
    ),
    "services.*.config": maps("ctx.config (system.json); a relative sink path lands on the volume claim `data`, shared by the pods that write files"),
    "services.*.instances": maps(
      "the StatefulSet's replicas: instance K is pod NAME-K (--instance from its host name); weights and capacities by ordinal in system.json",
    ),
    "services.*.loadBalancing": maps("the runtime's balancer in each upstream pod"),
    "services.*.port": approximates("every instance listens on port (each pod has its own address), not port + K; the headless Service's port"),
    "services.*.timeout": maps("per-attempt timeout of calls to the service; also its terminationGracePeriodSeconds (drain budget + 5 s)"),
    "services.*.retry.maxRetries": dispatch("the service"),
    "services.*.retry.interval": dispatch("the service", restartNote),
    "services.*.retry.backoff": dispatch("the service", restartNote),
    "services.*.retry.multiplier": dispatch("the service", restartNote),
    "services.*.retry.maxInterval": dispatch("the service", restartNote),
    "services.*.retry.jitter": dispatch("the service"),
    "services.*.retry.on": dispatch("the service"),
    "services.*.retry.budget.ratio": dispatch("the service"),
    "services.*.retry.budget.minPerSecond": dispatch("the service"),
    "services.*.resources.cpus": maps("resources.requests and limits.cpu of each instance's container (millicores)"),
    "services.*.resources.memory": maps("resources.requests and limits.memory of each instance's container, and --max-old-space-size at 75 % of it"),
    "services.*.env": maps("env of each instance's container, $ written as $$; the MBC_* variables the target sets win"),
    "services.*.to": maps("next stages, found through their headless Services"),
    "checkpoint.dir": maps("below each source's own volume claim `state` (MBC_STATE_DIR); an absolute path or one that leaves with .. stays inside the claim"),
    "targets.node.bind": na("the node target; pods bind 0.0.0.0 on their own address"),
    "targets.kubernetes.namespace": maps("metadata.namespace of every object, and the kustomizations' namespace"),
    "targets.kubernetes.image": maps("the image of every pod that runs the runtime, as uid and gid 1000"),
    "targets.kubernetes.imageHasRuntime": maps("true: no ConfigMap; the image holds runtime/ at /opt/mbc/runtime"),
    "targets.kubernetes.storageClass": maps("storageClassName of every volume claim (unset: the cluster's default)"),
    "targets.kubernetes.sinkAccessMode": maps("accessModes of the volume claim `data`"),
  }),
  // The cluster is the registry: its heartbeat and ttl become the probes (the shared rows speak of the embedded one).
  "registry.heartbeat": approximates(
    "each process's DNS poll exactly; the probes' periodSeconds in whole seconds, at least 1 (a shorter heartbeat probes every second)",
  ),
  "registry.ttl": approximates(
    "the readiness probe's failureThreshold = ttl / heartbeat, rounded up: a pod leaves discovery after that many failed probes, plus the DNS's own caching",
  ),
};
