import { fidelityTable } from "../../src/build/fidelity-shared.js";

const maps = (note: string) => ({ how: "maps", note }) as const;
const na = (note: string) => ({ how: "n/a", note }) as const;
const retry = (scope: string) => maps(`${scope}: the runtime's dispatch in each container`);
const restartNote = "; a crashed container is restarted by the engine (restart: on-failure) with its own backoff, not this one";

/**
 * The Compose target runs the same runtime, one container per process: what the runtime does
 * maps exactly, and the rest maps onto Compose keys. Relative paths land on named volumes.
 */
export const composeFidelity = fidelityTable("compose", {
  mbc: maps("runtime/system.json"),
  name: maps("the default project and network name; label dev.mbc.system"),
  description: maps("README.md"),
  "defaults.retry.maxRetries": retry("defaults"),
  "defaults.retry.interval": maps(`defaults: the runtime's dispatch in each container${restartNote}`),
  "defaults.retry.backoff": maps(`defaults: the runtime's dispatch in each container${restartNote}`),
  "defaults.retry.multiplier": maps(`defaults: the runtime's dispatch in each container${restartNote}`),
  "defaults.retry.maxInterval": maps(`defaults: the runtime's dispatch in each container${restartNote}`),
  "defaults.retry.jitter": retry("defaults"),
  "defaults.retry.on": retry("defaults"),
  "defaults.retry.budget.ratio": retry("defaults"),
  "defaults.retry.budget.minPerSecond": retry("defaults"),
  "defaults.resources.cpus": maps("deploy.resources.limits.cpus of each instance's container"),
  "defaults.resources.memory": maps("deploy.resources.limits.memory of each instance's container, and --max-old-space-size at 75 % of it"),
  "registry.backend": maps(
    "embedded: the registry container; etcd: no registry container, every container registers in and discovers from etcd (credentials and TLS: MBC_REGISTRY_* added to the containers' environment, e.g. in an override file); kubernetes: not on this target (target-constraint)",
  ),
  "registry.endpoints": maps(
    "etcd: runtime/system.json; MBC_REGISTRY_ENDPOINTS in a container's environment overrides them (the cluster must be reachable from the project's network)",
  ),
  "registry.port": maps("the registry container's listener (not published); MBC_REGISTRY_URL of every other container (embedded backend only)"),
  "sources.*.type": maps("one container per source"),
  "sources.*.port": maps("the http source's listener, published on the host at the same port (only http sources publish one)"),
  "sources.*.path": maps("http: the POST path; file: the JSONL file, relative to the named volume `data` (MBC_DATA_DIR)"),
  "sources.*.to": maps("the first stage; depends_on its instances (service_healthy)"),
  "services.*.handler": maps("copied to runtime/handlers/, mounted read-only at /opt/mbc; builtins run in the runtime; unused when the service has an image"),
  "services.*.image": maps(
    "the service's containers run this image instead of the runtime (no command, no mount); MBC_NAME, MBC_INSTANCE, MBC_PORT tell it its place; with the etcd backend it gets MBC_REGISTRY_ENDPOINTS instead of MBC_REGISTRY_URL and registers itself under /mbc/NAME/SERVICE/K",
  ),
  "services.*.config": maps(
    "ctx.config of the handler (system.json); a relative sink path lands on the named volume `data`, shared by every container (an absolute one stays inside the container)",
  ),
  "services.*.instances": maps("one Compose service per instance, NAME-K, started with --instance K; weights and capacities in system.json"),
  "services.*.loadBalancing": maps("the runtime's balancer in each upstream container"),
  "services.*.port": maps("instance k listens on port + k inside its container (not published)"),
  "services.*.timeout": maps("per-attempt timeout of calls to the service; also its stop_grace_period (drain budget + 5 s)"),
  "services.*.retry.maxRetries": maps(
    "the service: the runtime's dispatch in each container; no limit on container restarts (a batch's retries are not a process's)",
  ),
  "services.*.retry.interval": maps(`the service: the runtime's dispatch in each container${restartNote}`),
  "services.*.retry.backoff": maps(`the service: the runtime's dispatch in each container${restartNote}`),
  "services.*.retry.multiplier": maps(`the service: the runtime's dispatch in each container${restartNote}`),
  "services.*.retry.maxInterval": maps(`the service: the runtime's dispatch in each container${restartNote}`),
  "services.*.retry.jitter": retry("the service"),
  "services.*.retry.on": retry("the service"),
  "services.*.retry.budget.ratio": retry("the service"),
  "services.*.retry.budget.minPerSecond": retry("the service"),
  "services.*.resources.cpus": maps("deploy.resources.limits.cpus of each instance's container"),
  "services.*.resources.memory": maps("deploy.resources.limits.memory of each instance's container, and --max-old-space-size at 75 % of it"),
  "services.*.env": maps("environment of each instance's container, $ written as $$; the MBC_* variables the target sets win"),
  "services.*.to": maps("next stages; depends_on each of their instances (service_healthy)"),
  "checkpoint.dir": maps("below the named volume `state` (MBC_STATE_DIR); an absolute path or one that leaves with .. stays inside the volume"),
  "targets.compose.project": maps("COMPOSE_PROJECT_NAME in .env"),
  "targets.compose.image": maps("the image of every container that runs the runtime"),
  "targets.compose.network": maps("the project's one network"),
  "targets.node.bind": na("the node target; containers bind 0.0.0.0 on their own network"),
});
