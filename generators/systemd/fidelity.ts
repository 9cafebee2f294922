import { fidelityTable } from "../../src/build/fidelity-shared.js";

const maps = (note: string) => ({ how: "maps", note }) as const;
const dispatch = (extra = "") => maps(`the runtime's dispatch${extra}`);

/**
 * The systemd target runs the node target's runtime, one process a unit: what the runtime does
 * maps exactly; what systemd adds (restarts, limits, the sandbox) is said in the notes.
 */
export const systemdFidelity = fidelityTable("systemd", {
  mbc: maps("runtime/system.json"),
  name: maps("the default prefix (mbc-NAME) and installDir (/opt/mbc/NAME); unit descriptions"),
  description: maps("Description= of PREFIX.target (control characters become spaces) and README.md"),
  "defaults.retry.maxRetries": dispatch("; StartLimitBurst= = maxRetries + 1"),
  "defaults.retry.interval": dispatch("; RestartSec="),
  "defaults.retry.backoff": dispatch(" (systemd restarts after a constant RestartSec=)"),
  "defaults.retry.multiplier": dispatch(" (systemd restarts after a constant RestartSec=)"),
  "defaults.retry.maxInterval": dispatch("; StartLimitIntervalSec= = (maxRetries + 1) × (interval + maxInterval)"),
  "defaults.retry.jitter": dispatch(),
  "defaults.retry.on": dispatch(),
  "defaults.retry.budget.ratio": dispatch(),
  "defaults.retry.budget.minPerSecond": dispatch(),
  "defaults.resources.cpus": maps("CPUQuota= of each instance (cpus × 100 %)"),
  "defaults.resources.memory": maps("MemoryMax= of each instance, and --max-old-space-size at 75 % of it"),
  "registry.backend": maps(
    "embedded: the registry unit; etcd: no registry unit, every unit registers in and discovers from etcd (credentials and TLS: MBC_REGISTRY_* in env/common.env); kubernetes: not on this target (target-constraint)",
  ),
  "registry.endpoints": maps("etcd: runtime/system.json; MBC_REGISTRY_ENDPOINTS in env/common.env overrides them"),
  "registry.port": maps("the registry unit's listener; MBC_REGISTRY_URL in env/common.env (embedded backend only)"),
  "sources.*.type": maps("one unit a source: PREFIX-source-NAME.service"),
  "sources.*.port": maps("the http source's listener (below 1024 its unit keeps CAP_NET_BIND_SERVICE)"),
  "sources.*.path": maps("http: the POST path; file: the JSONL file, relative to INSTALLDIR/data (ProtectHome= hides /home, /root and /run/user)"),
  "sources.*.to": maps("the first stage; the source's unit starts after its instances (After=)"),
  "services.*.handler": maps("copied to runtime/handlers/; builtins run in the runtime"),
  "services.*.image": { how: "ignores", note: "the systemd target runs no containers: a service with only an image gets no unit" },
  "services.*.config": maps("ctx.config (runtime/system.json); a sink's relative path resolves below INSTALLDIR/data, the only folder a unit may write"),
  "services.*.instances": maps("PREFIX-SERVICE@K.service for K = 0 … n−1, each wanted by PREFIX.target, with its weight and capacity"),
  "services.*.loadBalancing": maps("the runtime's balancer"),
  "services.*.port": maps("instance K listens on port + K (below 1024 the unit keeps CAP_NET_BIND_SERVICE)"),
  "services.*.timeout": maps("per-attempt timeout of calls to the service"),
  "services.*.retry.maxRetries": dispatch("; StartLimitBurst= = maxRetries + 1"),
  "services.*.retry.interval": dispatch("; RestartSec="),
  "services.*.retry.backoff": dispatch(" (systemd restarts after a constant RestartSec=)"),
  "services.*.retry.multiplier": dispatch(" (systemd restarts after a constant RestartSec=)"),
  "services.*.retry.maxInterval": dispatch("; StartLimitIntervalSec= = (maxRetries + 1) × (interval + maxInterval)"),
  "services.*.retry.jitter": dispatch(),
  "services.*.retry.on": dispatch(),
  "services.*.retry.budget.ratio": dispatch(),
  "services.*.retry.budget.minPerSecond": dispatch(),
  "services.*.resources.cpus": maps("CPUQuota= of each instance (cpus × 100 %)"),
  "services.*.resources.memory": maps("MemoryMax= of each instance, and --max-old-space-size at 75 % of it"),
  "services.*.env": maps("env/services/NAME.env (EnvironmentFile=, after env/common.env)"),
  "services.*.to": maps("next stages; a unit starts after the instances downstream of it (After=), and stops before them"),
  "checkpoint.dir": maps("MBC_STATE_DIR, below INSTALLDIR/data (a path that leaves it stops the build)"),
  "targets.systemd.prefix": maps("unit names: PREFIX.target, PREFIX-registry.service, PREFIX-source-NAME.service, PREFIX-SERVICE@.service"),
  "targets.systemd.user": maps("User= and Group= of every unit; install.sh creates both with systemd-sysusers"),
  "targets.systemd.installDir": maps("runtime/, env/ and data/ (MBC_DATA_DIR, the only writable folder) below it"),
  "targets.systemd.node": maps("the binary of every ExecStart="),
  "targets.node.bind": maps("the address every listener binds to (runtime/system.json), as under the node target"),
});
