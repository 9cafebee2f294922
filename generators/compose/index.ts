/**
 * The compose target: compose.yaml, .env (COMPOSE_PROJECT_NAME: older Compose rejects a
 * top-level `name`), runtime/ (what the node target runs, mounted read-only into every
 * container), README.md and FIDELITY.md. See docs/target-compose.md.
 *
 * One container per process, as the node target's supervisor would start them: the registry,
 * each source, each service instance (`NAME-K`, started with `--instance K`). compose.yaml is
 * built as data and serialised by yaml.ts, so no name or value of the spec can add a key, a
 * service or a path; every `$` is written `$$`.
 */
import { posix } from "node:path";
import { renderFidelity } from "../../src/build/fidelity.js";
import { headerText } from "../../src/build/header.js";
import { render } from "../../src/build/templates.js";
import type { Artefact, BuildInputs, Generator } from "../../src/build/types.js";
import type { Model, ServiceModel, SourceModel } from "../../src/model/types.js";
import { drainBudgetMs, heapLimitMiB, registryRunsProcess } from "../../src/policy/index.js";
import { runtimePackage } from "../shared/runtime-folder.js";
import { sourceIntake } from "../shared/sources.js";
import { commentText, escapeDollars, toYaml } from "../shared/yaml.js";
import { checkCompose } from "./check.js";
import { composeFidelity } from "./fidelity.js";

/** Where runtime/ is mounted (read-only) in each container. */
export const RUNTIME_MOUNT = "/opt/mbc";
/** The named volume `data`: relative spec paths (file sources, sink paths) resolve against it. */
export const DATA_DIR = "/var/lib/mbc/data";
/** The named volume `state`: the sources' durable logs, commit logs and dead letters. */
export const STATE_ROOT = "/var/lib/mbc/state";
export const LABEL_PREFIX = "dev.mbc";

/** Healthchecks run `node -e` (the runtime's image has no curl); generous enough for a loaded host. */
const HEALTHCHECK = { interval: "5s", timeout: "3s", retries: 3, start_period: "10s" } as const;
const HEALTH_FETCH_TIMEOUT_MS = 2000;
/** Beyond a process's drain budget before Compose kills it (the supervisor's grace, too). */
const STOP_GRACE_MS = 5000;

/** Compose service names: the spec's own names are kept; mbc's registry yields when one is taken. */
export interface ComposeNames {
  registry: string;
  sources: ReadonlyMap<string, string>;
  /** Instance k of each service (by the service's name). */
  instances: ReadonlyMap<string, readonly string[]>;
}

export function composeNames(model: Model): ComposeNames {
  const taken = new Set<string>();
  const claim = (candidates: readonly string[]): string => {
    for (const c of candidates) {
      if (!taken.has(c)) {
        taken.add(c);
        return c;
      }
    }
    const base = candidates[candidates.length - 1] as string;
    for (let i = 2; ; i++) {
      const c = `${base}-${i}`;
      if (!taken.has(c)) {
        taken.add(c);
        return c;
      }
    }
  };
  // Spec names are unique and DNS-safe; instance names `NAME-K` never collide with each other
  // (the part after the last dash is K), but a source may be called `enrich-0`.
  const sources = new Map(model.sources.map((s) => [s.name, claim([s.name])]));
  const instances = new Map(model.services.map((s) => [s.name, s.instances.map((i) => claim([`${s.name}-${i.index}`, `${s.name}-${i.index}-mbc`]))]));
  const registry = claim(["registry", "mbc-registry"]);
  return { registry, sources, instances };
}

/** A duration as Compose writes it: whole seconds as `Ns`, else milliseconds. */
export function composeDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${Math.round(ms)}ms`;
}

/** A byte size as Compose writes it, exactly: the largest binary unit that divides it. */
export function composeBytes(bytes: number): string {
  for (const [unit, factor] of [
    ["g", 1024 ** 3],
    ["m", 1024 ** 2],
    ["k", 1024],
  ] as const) {
    if (bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}b`;
}

/** A path of the spec placed below a mount point: absolute or `..`-leading paths cannot leave it. */
export function belowMount(mount: string, path: string): string {
  const inside = posix.normalize(`/${path}`).replace(/\/+$/, "");
  return inside === "" ? mount : `${mount}${inside}`;
}

function fetchScript(url: string): string {
  return `fetch(${JSON.stringify(url)},{signal:AbortSignal.timeout(${HEALTH_FETCH_TIMEOUT_MS})}).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))`;
}

/**
 * The port a source without one in the spec (file, generator) listens on inside its container,
 * set through MBC_PORT: its healthcheck and /metrics have a fixed address, not published. The
 * container runs one process, so no other listener can want it.
 */
export const UNPUBLISHED_SOURCE_PORT = 8080;

/**
 * The healthcheck of a runtime container: GET /readyz?scope=self on its port — the process's own
 * readiness (listening, registered, its log working), not its downstream's, which is what
 * `depends_on: service_healthy` should wait for: the same ordered, ready start-up the supervisor
 * of the node target makes, downstream first.
 */
export function healthcheck(port: number): Record<string, unknown> {
  return { test: ["CMD", "node", "-e", fetchScript(`http://127.0.0.1:${port}/readyz?scope=self`)], ...HEALTHCHECK };
}

interface Built {
  doc: Record<string, unknown>;
  names: ComposeNames;
}

function buildDocument(model: Model): Built {
  const names = composeNames(model);
  const network = model.targets.compose.network;
  const image = model.targets.compose.image;
  // The embedded registry is a container of the project; etcd is outside it (system.json names its endpoints).
  const ownRegistry = registryRunsProcess(model);
  const registryEnv: [string, string][] = ownRegistry ? [["MBC_REGISTRY_URL", `http://${names.registry}:${model.registry.port}`]] : [];
  const byName = new Map(model.services.map((s) => [s.name, s]));
  const runtimeMount = `./runtime:${RUNTIME_MOUNT}:ro`;
  const stateDir = belowMount(STATE_ROOT, model.checkpoint.dir);

  const labels = (role: string, name: string, specPath: string, instance?: number): Record<string, string> => ({
    [`${LABEL_PREFIX}.system`]: model.name,
    [`${LABEL_PREFIX}.role`]: role,
    [`${LABEL_PREFIX}.name`]: name,
    ...(instance === undefined ? {} : { [`${LABEL_PREFIX}.instance`]: String(instance) }),
    [`${LABEL_PREFIX}.spec-path`]: specPath,
  });
  const command = (args: readonly string[], heapMiB: number | null): string[] => [
    "node",
    ...(heapMiB === null ? [] : [`--max-old-space-size=${heapMiB}`]),
    `${RUNTIME_MOUNT}/mbc-runtime.mjs`,
    ...args,
  ];
  /** depends_on: the registry, then every instance of each next stage, healthy (an image has no healthcheck of ours: started). */
  const dependsOn = (next: readonly string[]): Record<string, { condition: string }> => {
    const entries: [string, { condition: string }][] = ownRegistry ? [[names.registry, { condition: "service_healthy" }]] : [];
    for (const n of next) {
      const svc = byName.get(n);
      for (const c of names.instances.get(n) ?? []) {
        entries.push([c, { condition: svc !== undefined && runsImage(svc) ? "service_started" : "service_healthy" }]);
      }
    }
    return Object.fromEntries(entries);
  };
  const grace = (ms: number) => `${Math.ceil((ms + STOP_GRACE_MS) / 1000)}s`;
  /** The target's variables first; the service's own `env` after, without the keys the target sets. */
  const environment = (own: readonly [string, string][], user: Readonly<Record<string, string>>): Record<string, string> => {
    const set = new Set(own.map(([k]) => k));
    return Object.fromEntries([...own, ...Object.entries(user).filter(([k]) => !set.has(k))]);
  };

  const services: [string, Record<string, unknown>][] = [];
  if (ownRegistry)
    services.push([
      names.registry,
      {
        image,
        init: true,
        command: command(["--role", "registry"], null),
        environment: environment(
          [
            ["MBC_BIND", "0.0.0.0"],
            ["MBC_ADVERTISE_HOST", names.registry],
          ],
          {},
        ),
        volumes: [runtimeMount],
        networks: [network],
        healthcheck: healthcheck(model.registry.port),
        restart: "on-failure",
        stop_grace_period: grace(drainBudgetMs(model, { kind: "registry" })),
        labels: labels("registry", "registry", "/registry"),
      },
    ]);

  for (const source of model.sources) {
    const name = names.sources.get(source.name) as string;
    services.push([name, sourceService(source, name)]);
  }
  for (const service of model.services) {
    const instanceNames = names.instances.get(service.name) ?? [];
    for (const inst of service.instances) {
      services.push([instanceNames[inst.index] as string, instanceService(service, inst.index, instanceNames[inst.index] as string)]);
    }
  }

  function sourceService(source: SourceModel, name: string): Record<string, unknown> {
    const published = source.type === "http" ? source.port : null;
    const port = published ?? UNPUBLISHED_SOURCE_PORT;
    return {
      image,
      init: true,
      command: command(["--role", "source", "--name", source.name], null),
      environment: environment(
        [
          ...registryEnv,
          ["MBC_BIND", "0.0.0.0"],
          ["MBC_ADVERTISE_HOST", name],
          ["MBC_DATA_DIR", DATA_DIR],
          ["MBC_STATE_DIR", stateDir],
          ...(published === null ? [["MBC_PORT", String(port)] as [string, string]] : []),
        ],
        {},
      ),
      volumes: [runtimeMount, `data:${DATA_DIR}`, `state:${STATE_ROOT}`],
      ...(published === null ? {} : { ports: [`${published}:${published}`] }),
      networks: [network],
      depends_on: dependsOn([source.to]),
      healthcheck: healthcheck(port),
      restart: "on-failure",
      stop_grace_period: grace(drainBudgetMs(model, { kind: "source", name: source.name, source })),
      labels: labels("source", source.name, source.path),
    };
  }

  function instanceService(service: ServiceModel, k: number, name: string): Record<string, unknown> {
    const inst = service.instances[k];
    const port = inst?.port ?? service.port + k;
    const limits = {
      ...(service.resources.cpus === null ? {} : { cpus: String(service.resources.cpus) }),
      ...(service.resources.memoryBytes === null ? {} : { memory: composeBytes(service.resources.memoryBytes) }),
    };
    const common = {
      networks: [network],
      depends_on: dependsOn(service.to),
    };
    const tail = {
      restart: "on-failure",
      stop_grace_period: grace(drainBudgetMs(model, { kind: "service", name: service.name, instance: k, service })),
      ...(Object.keys(limits).length === 0 ? {} : { deploy: { resources: { limits } } }),
      labels: labels("service", service.name, service.path, k),
    };
    const base: [string, string][] = [...registryEnv, ["MBC_BIND", "0.0.0.0"], ["MBC_ADVERTISE_HOST", name], ["MBC_DATA_DIR", DATA_DIR]];
    if (runsImage(service)) {
      // The image is the service: it registers itself, so it is told what the runtime would know.
      return {
        image: service.image,
        init: true,
        environment: environment(
          [
            ...base,
            // Without a registry container, the image registers itself in etcd (docs/runtime.md: the etcd backend's keys).
            ...(ownRegistry ? [] : ([["MBC_REGISTRY_ENDPOINTS", model.registry.endpoints.join(",")]] as [string, string][])),
            ["MBC_NAME", service.name],
            ["MBC_INSTANCE", String(k)],
            ["MBC_PORT", String(port)],
            ["MBC_WEIGHT", String(inst?.weight ?? 1)],
          ],
          service.env,
        ),
        volumes: [`data:${DATA_DIR}`],
        ...common,
        ...tail,
      };
    }
    return {
      image,
      init: true,
      command: command(
        ["--role", "service", "--name", service.name, "--instance", String(k)],
        service.resources.memoryBytes === null ? null : heapLimitMiB(service.resources.memoryBytes),
      ),
      environment: environment(base, service.env),
      volumes: [runtimeMount, `data:${DATA_DIR}`],
      ...common,
      healthcheck: healthcheck(port),
      ...tail,
    };
  }

  const doc = {
    services: Object.fromEntries(services),
    networks: { [network]: {} },
    volumes: { state: {}, data: {} },
  };
  return { doc: escapeDollars(doc), names };
}

/** A service whose containers run its own image instead of the runtime. */
function runsImage(service: ServiceModel): boolean {
  return service.image !== null;
}

export const composeGenerator: Generator = {
  id: "compose",
  describe: "compose.yaml and .env: one container per registry, source and service instance, running the bundled runtime",
  templates: ["compose-README.md.hbs"],
  fidelity: composeFidelity,
  check: checkCompose,
  generate(model: Model, inputs: BuildInputs): Artefact[] {
    const header = commentText(headerText(inputs));
    // In Markdown the header is an HTML comment, which `-->` in a spec's file name would end.
    const htmlHeader = header.replace(/--/g, "-&#45;");
    const { doc, names } = buildDocument(model);
    const compose = `# ${header}\n${toYaml(doc)}`;
    const project = model.targets.compose.project;
    const env = `# ${header}\n# Compose reads this file from the project folder; older Compose rejects a top-level name.\nCOMPOSE_PROJECT_NAME=${project}\n`;
    const data = {
      header: htmlHeader,
      name: model.name,
      description: model.description,
      version: inputs.version,
      specName: inputs.specName,
      project,
      network: model.targets.compose.network,
      image: model.targets.compose.image,
      registry: registryRunsProcess(model) ? { name: names.registry, port: model.registry.port } : null,
      etcd: model.registry.backend === "etcd" ? model.registry.endpoints.join(", ") : null,
      sources: model.sources.map((s) => {
        const { port, location } = sourceIntake(s);
        return { compose: names.sources.get(s.name), name: s.name, type: s.type, published: port, location };
      }),
      instances: model.services.flatMap((s) =>
        s.instances.map((i) => ({
          compose: names.instances.get(s.name)?.[i.index],
          name: s.name,
          index: i.index,
          port: i.port,
          weight: i.weight,
          image: s.image,
        })),
      ),
      dataDir: DATA_DIR,
      stateDir: belowMount(STATE_ROOT, model.checkpoint.dir),
    };
    return [
      { path: "compose.yaml", content: compose },
      { path: ".env", content: env },
      { path: "README.md", content: render("compose-README.md.hbs", inputs.templates["compose-README.md.hbs"], data) },
      { path: "FIDELITY.md", content: renderFidelity({ compose: composeFidelity }, htmlHeader) },
      ...runtimePackage(model, inputs),
    ];
  },
};
