/**
 * The systemd target: units that run the node target's runtime, one process a unit, under a
 * hardened sandbox; install.sh and uninstall.sh; the runtime folder itself. See
 * docs/target-systemd.md for the layout and how each field maps.
 *
 * Every value from the spec goes through escape.ts on its way into a file; what no file can
 * hold safely (a `..` in installDir, a state folder outside the data folder) stops the build
 * with an UnsafeValueError instead of being changed.
 */
import { posix } from "node:path";
import { renderFidelity } from "../../src/build/fidelity.js";
import { headerText } from "../../src/build/header.js";
import { render } from "../../src/build/templates.js";
import type { Artefact, BuildInputs, Generator } from "../../src/build/types.js";
import { SPEC_DEFAULTS } from "../../src/generated/spec-defaults.js";
import type { HandlerServiceModel, Model, SourceModel } from "../../src/model/types.js";
import { DEFAULT_RESTART, heapLimitMiB, registryRunsProcess } from "../../src/policy/index.js";
import { runtimePackage } from "../shared/runtime-folder.js";
import { sourceIntake } from "../shared/sources.js";
import { checkSystemd, nodeProblem, writablePathProblem } from "./check.js";
import {
  comment,
  execLine,
  INSTANCE,
  type Specifier,
  safePath,
  shellWord,
  type UnitValue,
  UnsafeValueError,
  unitList,
  unitLiteral,
  unitName,
  unitPath,
  unitText,
  withInstance,
} from "./escape.js";
import { systemdFidelity } from "./fidelity.js";
import { type Entry, renderEnvFile, renderUnit } from "./unit-file.js";

/** Where install.sh puts the units. */
export const UNIT_DIR = "/etc/systemd/system";

/** Where everything goes on the machine, and what every unit is called. */
export interface SystemdLayout {
  prefix: string;
  user: string;
  node: string;
  installDir: string;
  /** installDir/runtime: the node target's folder (read-only to the units). */
  runtimeDir: string;
  /** installDir/env: the environment files (root's only). */
  envDir: string;
  /** installDir/data: MBC_DATA_DIR, owned by the user, the only folder the units may write. */
  dataDir: string;
  /** checkpoint.dir below dataDir: MBC_STATE_DIR. */
  stateDir: string;
  units: {
    target: string;
    registry: string;
    source(name: string): string;
    /** The template `PREFIX-NAME@.service`. */
    service(name: string): string;
    instance(name: string, k: number): string;
  };
}

export function systemdLayout(model: Model): SystemdLayout {
  const t = model.targets.systemd;
  // check.ts says the same of these at the fields, for `mbc validate`; a model that skipped it stops here.
  const installDir = safePath("targets.systemd.installDir", t.installDir);
  const node = t.node;
  const nodeRefused = nodeProblem(node);
  if (nodeRefused !== null) throw new UnsafeValueError(`targets.systemd.node ${JSON.stringify(node)}: ${nodeRefused}`);
  const dataDir = `${installDir}/data`;
  const stateRefused = writablePathProblem(model.checkpoint.dir);
  if (stateRefused !== null) throw new UnsafeValueError(`checkpoint.dir ${JSON.stringify(model.checkpoint.dir)} ${stateRefused}`);
  const state = posix.normalize(model.checkpoint.dir);
  const prefix = unitName(t.prefix);
  return {
    prefix,
    user: unitName(t.user),
    node,
    installDir,
    runtimeDir: `${installDir}/runtime`,
    envDir: `${installDir}/env`,
    dataDir,
    stateDir: state === "." ? dataDir : `${dataDir}/${state.replace(/\/$/, "")}`,
    units: {
      target: `${prefix}.target`,
      registry: `${prefix}-registry.service`,
      source: (name) => `${prefix}-source-${unitName(name)}.service`,
      service: (name) => `${prefix}-${unitName(name)}@.service`,
      instance: (name, k) => `${prefix}-${unitName(name)}@${k}.service`,
    },
  };
}

/** A systemd time span: whole seconds as `Ns`, else milliseconds. */
function span(ms: number): UnitValue {
  const exact = Math.round(ms * 1000) / 1000;
  return unitLiteral(exact % 1000 === 0 ? `${exact / 1000}s` : `${exact}ms`);
}

interface RestartPlan {
  maxRetries: number;
  intervalMs: number;
  maxIntervalMs: number;
}

/**
 * Restart=on-failure after RestartSec= (retry.interval; systemd 252 has no growing restart
 * delay). A crash loop is maxRetries + 1 starts within (maxRetries + 1) × (interval +
 * maxInterval): then systemd stops restarting the unit, which stays failed.
 */
function startLimit(r: RestartPlan): Entry[] {
  return [
    ["StartLimitIntervalSec", span((r.maxRetries + 1) * (r.intervalMs + r.maxIntervalMs))],
    ["StartLimitBurst", unitLiteral(String(r.maxRetries + 1))],
  ];
}

function restart(r: RestartPlan): Entry[] {
  return [
    ["Restart", unitLiteral("on-failure")],
    ["RestartSec", span(r.intervalMs)],
    { comment: "Exit status 2 is a configuration error (docs/runtime.md): restarting will not help." },
    ["RestartPreventExitStatus", unitLiteral("2")],
  ];
}

/** What the registry and the sources restart with: the node supervisor's policy, and the contract's default maxRetries. */
const DEFAULT_PLAN: RestartPlan = {
  maxRetries: SPEC_DEFAULTS.retry.maxRetries,
  intervalMs: DEFAULT_RESTART.intervalMs,
  maxIntervalMs: DEFAULT_RESTART.maxIntervalMs,
};

/**
 * The sandbox of every unit (measured by `systemd-analyze security`, see docs/target-systemd.md).
 * A unit that listens below port 1024 keeps CAP_NET_BIND_SERVICE, and runs without PrivateUsers=
 * (a capability inside a user namespace does not reach the host's ports).
 */
function hardening(o: { writable: readonly string[]; lowPorts: boolean }): Entry[] {
  const yes = unitLiteral("yes");
  const caps = unitLiteral(o.lowPorts ? "CAP_NET_BIND_SERVICE" : "");
  return [
    ["UMask", unitLiteral("0077")],
    ["NoNewPrivileges", yes],
    ["ProtectSystem", unitLiteral("strict")],
    ...(o.writable.length > 0 ? [["ReadWritePaths", unitList(o.writable)] as const] : []),
    ["PrivateTmp", yes],
    ["PrivateDevices", yes],
    ["PrivateMounts", yes],
    ...(o.lowPorts ? [{ comment: "Listens below port 1024: keeps CAP_NET_BIND_SERVICE, which a user namespace would not pass on." }] : []),
    ["PrivateUsers", unitLiteral(o.lowPorts ? "no" : "yes")],
    ["ProtectHome", yes],
    ["ProtectKernelTunables", yes],
    ["ProtectKernelModules", yes],
    ["ProtectKernelLogs", yes],
    ["ProtectControlGroups", yes],
    ["ProtectClock", yes],
    ["ProtectHostname", yes],
    ["ProtectProc", unitLiteral("invisible")],
    ["RestrictAddressFamilies", unitLiteral("AF_INET AF_INET6 AF_UNIX")],
    ["RestrictNamespaces", yes],
    ["RestrictRealtime", yes],
    ["RestrictSUIDSGID", yes],
    ["RemoveIPC", yes],
    ["LockPersonality", yes],
    { comment: "V8 compiles JavaScript into memory it writes, then executes: node aborts when W^X is enforced." },
    ["MemoryDenyWriteExecute", unitLiteral("no")],
    ["SystemCallArchitectures", unitLiteral("native")],
    ["SystemCallFilter", unitLiteral("@system-service")],
    ["SystemCallFilter", unitLiteral("~@privileged")],
    ["SystemCallErrorNumber", unitLiteral("EPERM")],
    ["CapabilityBoundingSet", caps],
    ["AmbientCapabilities", caps],
    ["DevicePolicy", unitLiteral("closed")],
    ["KeyringMode", unitLiteral("private")],
  ];
}

function names(list: readonly string[]): UnitValue {
  return unitLiteral(list.map(unitName).join(" "));
}

/** Services that get units: those the runtime runs (a service with only an image is for Compose). */
function runnable(model: Model): HandlerServiceModel[] {
  return model.services.filter((s) => s.handler !== null);
}

export const systemdGenerator: Generator = {
  id: "systemd",
  describe: "systemd units (a template a service), install.sh and the runtime, under a hardened sandbox",
  templates: ["systemd-README.md.hbs", "systemd-install.sh.hbs", "systemd-uninstall.sh.hbs"],
  fidelity: systemdFidelity,
  check: checkSystemd,
  generate(model: Model, inputs: BuildInputs): Artefact[] {
    const L = systemdLayout(model);
    const header = headerText(inputs);
    const services = runnable(model);
    const byName = new Map(services.map((s) => [s.name, s]));
    const instancesOf = (name: string) => {
      const s = byName.get(name);
      return s ? s.instances.map((i) => L.units.instance(s.name, i.index)) : [];
    };
    const runtime = `${L.runtimeDir}/mbc-runtime.mjs`;
    const commonEnv = `${L.envDir}/common.env`;
    const serviceEnv = (name: string) => `${L.envDir}/services/${unitName(name)}.env`;
    const run = (o: { env: string[]; exec: (string | Specifier)[]; syslog: UnitValue }): Entry[] => [
      ["Type", unitLiteral("exec")],
      ["User", unitName(L.user)],
      ["Group", unitName(L.user)],
      ...o.env.map((e) => ["EnvironmentFile", unitPath(e)] as const),
      ["ExecStart", execLine(o.exec)],
      ["SyslogIdentifier", o.syslog],
    ];
    const unitHeader = (what: string) => [header, what];
    const files: Artefact[] = [];
    const unitFile = (name: string, content: string) => files.push({ path: `units/${name}`, content });

    // The registry, when the system runs its own (the embedded one; etcd is outside the system).
    const ownRegistry = registryRunsProcess(model);
    const registryUnits = ownRegistry ? [L.units.registry] : [];
    const wantsRegistry: Entry[] = ownRegistry ? [["Wants", unitName(L.units.registry)]] : [];
    if (ownRegistry)
      unitFile(
        L.units.registry,
        renderUnit(unitHeader(`The service registry of ${model.name}.`), [
          {
            name: "Unit",
            entries: [
              ["Description", unitText(`${model.name}: registry`)],
              ["X-Mbc-Spec-Path", unitLiteral("/registry")],
              ["PartOf", unitName(L.units.target)],
              ...startLimit(DEFAULT_PLAN),
            ],
          },
          {
            name: "Service",
            entries: [
              ...run({ env: [commonEnv], exec: [L.node, runtime, "--role", "registry"], syslog: unitName(L.units.registry.replace(/\.service$/, "")) }),
              ...restart(DEFAULT_PLAN),
              ...hardening({ writable: [], lowPorts: model.registry.port < 1024 }),
            ],
          },
        ]),
      );

    // One unit a source.
    for (const s of model.sources) {
      const after = [...registryUnits, ...instancesOf(s.to)];
      unitFile(
        L.units.source(s.name),
        renderUnit(unitHeader(`Source ${s.name} of ${model.name}.`), [
          {
            name: "Unit",
            entries: [
              ["Description", unitText(`${model.name}: source ${s.name} (${s.type})`)],
              ["X-Mbc-Spec-Path", unitText(s.path)],
              ["PartOf", unitName(L.units.target)],
              ...wantsRegistry,
              ...(after.length > 0 ? [["After", names(after)] as const] : []),
              ...startLimit(DEFAULT_PLAN),
            ],
          },
          {
            name: "Service",
            entries: [
              ...run({
                env: [commonEnv],
                exec: [L.node, runtime, "--role", "source", "--name", s.name],
                syslog: unitName(L.units.source(s.name).replace(/\.service$/, "")),
              }),
              ...restart(DEFAULT_PLAN),
              ...hardening({ writable: [L.dataDir], lowPorts: lowPort(s) }),
            ],
          },
        ]),
      );
    }

    // One template a service: instance %i is `--instance %i`, listening on port + %i.
    for (const s of services) {
      const after = [...registryUnits, ...s.to.flatMap(instancesOf)];
      const template = L.units.service(s.name);
      const heap = s.resources.memoryBytes !== null ? [`--max-old-space-size=${heapLimitMiB(s.resources.memoryBytes)}`] : [];
      const resources: Entry[] = [
        ...(s.resources.cpus !== null ? [["CPUQuota", unitLiteral(cpuQuota(s.resources.cpus))] as const] : []),
        ...(s.resources.memoryBytes !== null ? [["MemoryMax", unitLiteral(String(Math.max(1, Math.floor(s.resources.memoryBytes))))] as const] : []),
      ];
      const plan: RestartPlan = { maxRetries: s.retry.maxRetries, intervalMs: s.retry.intervalMs, maxIntervalMs: s.retry.maxIntervalMs };
      unitFile(
        template,
        renderUnit(unitHeader(`Service ${s.name} of ${model.name}: instance K runs as ${template.replace("@.", "@K.")}.`), [
          {
            name: "Unit",
            entries: [
              ["Description", withInstance(unitText(`${model.name}: service ${s.name}, instance`), " ")],
              ["X-Mbc-Spec-Path", unitText(s.path)],
              ["PartOf", unitName(L.units.target)],
              ...wantsRegistry,
              ...(after.length > 0 ? [["After", names(after)] as const] : []),
              ...startLimit(plan),
            ],
          },
          {
            name: "Service",
            entries: [
              ...run({
                env: [commonEnv, serviceEnv(s.name)],
                exec: [L.node, ...heap, runtime, "--role", "service", "--name", s.name, "--instance", INSTANCE],
                syslog: withInstance(unitName(template.replace(/@\.service$/, "@")), ""),
              }),
              ...restart(plan),
              ...resources,
              ...hardening({ writable: [L.dataDir], lowPorts: s.port < 1024 }),
            ],
          },
        ]),
      );
    }

    // The target: wants every unit; each unit is PartOf= it, so stopping it stops them all.
    const members = [...registryUnits, ...model.sources.map((s) => L.units.source(s.name)), ...services.flatMap((s) => instancesOf(s.name))];
    unitFile(
      L.units.target,
      renderUnit(unitHeader(`Every unit of ${model.name}: systemctl start|stop|restart ${L.units.target}.`), [
        {
          name: "Unit",
          entries: [
            ["Description", unitText(model.description ? `${model.name}: ${model.description}` : `${model.name}: microbatch system`)],
            { comment: "The empty JSON Pointer: the whole spec." },
            ["X-Mbc-Spec-Path", unitLiteral("")],
            ["Wants", names(members)],
          ],
        },
        { name: "Install", entries: [["WantedBy", unitLiteral("multi-user.target")]] },
      ]),
    );

    // Environment files: the runtime's settings, then each service's own env (which wins, as under the node target).
    files.push({
      path: "env/common.env",
      mode: 0o600,
      content: renderEnvFile(
        [header, `The runtime's settings for every unit of ${model.name} (docs/runtime.md).`],
        [
          ["MBC_SYSTEM", `${L.runtimeDir}/system.json`],
          ["MBC_DATA_DIR", L.dataDir],
          ["MBC_STATE_DIR", L.stateDir],
          ...(ownRegistry ? [["MBC_REGISTRY_URL", `http://127.0.0.1:${model.registry.port}`] as [string, string]] : []),
        ],
      ),
    });
    for (const s of services) {
      files.push({
        path: `env/services/${unitName(s.name)}.env`,
        mode: 0o600,
        content: renderEnvFile([header, `The env of service ${s.name} (${s.path}/env), read after common.env.`], Object.entries(s.env)),
      });
    }

    files.push({
      path: `sysusers/${L.prefix}.conf`,
      content: [
        comment(header),
        `# The user and group the units of ${model.name} run as; install.sh applies it with systemd-sysusers.`,
        `g ${unitName(L.user)} -`,
        `u ${unitName(L.user)} - "mbc ${unitName(model.name)}" - -`,
        "",
      ].join("\n"),
    });

    const allUnits = [L.units.target, ...registryUnits, ...model.sources.map((s) => L.units.source(s.name)), ...services.map((s) => L.units.service(s.name))];
    const data = {
      header,
      headerComment: comment(header),
      name: model.name,
      description: model.description,
      version: inputs.version,
      specName: inputs.specName,
      layout: { ...L, unitDir: UNIT_DIR },
      ownRegistry,
      registryPort: model.registry.port,
      etcd: model.registry.backend === "etcd" ? model.registry.endpoints.join(", ") : null,
      sh: {
        prefix: shellWord(L.prefix),
        user: shellWord(L.user),
        installDir: shellWord(L.installDir),
        node: shellWord(L.node),
        unitDir: shellWord(UNIT_DIR),
        units: shellWord(allUnits.map(unitName).join(" ")),
      },
      units: allUnits.map((u) => ({ name: u, sh: shellWord(u) })),
      // install.sh --only ROLE[,ROLE…]: each role and the units it starts on this host.
      roles: [
        ...(ownRegistry ? [{ role: "registry", units: [L.units.registry] }] : []),
        ...model.sources.map((s) => ({ role: `source/${s.name}`, units: [L.units.source(s.name)] })),
        ...services.flatMap((s) => [
          { role: `service/${s.name}`, units: s.instances.map((i) => L.units.instance(s.name, i.index)) },
          ...s.instances.map((i) => ({ role: `service/${s.name}@${i.index}`, units: [L.units.instance(s.name, i.index)] })),
        ]),
      ].map((r) => ({ sh: shellWord(r.role), units: shellWord(r.units.map(unitName).join(" ")) })),
      registryUnit: ownRegistry ? shellWord(unitName(L.units.registry)) : null,
      // Every unit a role runs, one shell word each: those --only does not select are stopped.
      roleUnits: [...registryUnits, ...model.sources.map((s) => L.units.source(s.name)), ...services.flatMap((s) => instancesOf(s.name))].map((u) =>
        shellWord(unitName(u)),
      ),
      sources: model.sources.map((s) => ({ name: s.name, type: s.type, ...sourceIntake(s), unit: L.units.source(s.name) })),
      services: services.map((s) => ({
        name: s.name,
        template: L.units.service(s.name),
        instances: s.instances.length,
        firstPort: s.port,
        lastPort: s.port + s.instances.length - 1,
        lastIndex: s.instances.length - 1,
        cpus: s.resources.cpus,
        cpuPercent: s.resources.cpus === null ? null : cpuQuota(s.resources.cpus),
        memory: s.resources.memoryBytes,
      })),
      skipped: model.services.filter((s) => s.handler === null).map((s) => s.name),
    };
    files.push(
      { path: "install.sh", mode: 0o755, content: render("systemd-install.sh.hbs", inputs.templates["systemd-install.sh.hbs"], data) },
      { path: "uninstall.sh", mode: 0o755, content: render("systemd-uninstall.sh.hbs", inputs.templates["systemd-uninstall.sh.hbs"], data) },
      { path: "README.md", content: render("systemd-README.md.hbs", inputs.templates["systemd-README.md.hbs"], data) },
      { path: "FIDELITY.md", content: renderFidelity({ systemd: systemdFidelity }, header) },
    );

    files.push(...runtimePackage(model, inputs));
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  },
};

/** CPUQuota= for a number of CPUs: a percentage, to the hundredth systemd keeps. */
function cpuQuota(cpus: number): string {
  return `${Math.max(0.01, Number((cpus * 100).toFixed(2)))}%`;
}

function lowPort(s: SourceModel): boolean {
  return s.type === "http" && s.port < 1024;
}
