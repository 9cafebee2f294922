/**
 * The kubernetes target's generator: the objects it writes for each kind of source and service,
 * the figures it takes from the model and from src/policy/, what `imageHasRuntime` leaves out,
 * overlays that patch exactly what an environment changes, and the ConfigMaps' 1 MiB. Golden files
 * are in build.test.ts; kustomize's own reading of the output is in test/tools/kubernetes.test.ts.
 */
import { describe, expect, it } from "vitest";
import { CONFIGMAP_LIMIT_BYTES, configMapSizes, kubernetesNotes } from "../../generators/kubernetes/index.js";
import { type Json, k8sLiteral, objectsOf, quantityOfBytes, quantityOfCpus } from "../../generators/kubernetes/manifests.js";
import { applyPatch, diffJson } from "../../generators/kubernetes/patch.js";
import { drainBudgetMs } from "../../src/policy/index.js";
import { UsageError } from "../../src/usage-error.js";
import { buildKubernetes } from "../helpers/kubernetes.js";

const SPEC = `mbc: 1
name: shop
registry: { heartbeat: 2s, ttl: 5s }
sources:
  orders: { type: http, port: 8081, to: enrich }
  feed: { type: file, path: ./in/feed.jsonl, to: enrich }
  gen: { type: generator, rate: 10/s, to: enrich }
services:
  enrich:
    handler: ./handlers/enrich.mjs
    instances: [{ weight: 2 }, { weight: 1 }]
    port: 9300
    env: { GREETING: "a $(HOME) b $$", N: 3 }
    resources: { cpus: 0.5, memory: 256Mi }
    timeout: 3s
    to: store
  store:
    handler: builtin:jsonl-sink
    config: { path: ./out/orders.jsonl }
  own:
    image: registry.example.com/team/own:1.0
    instances: 2
environments:
  staging:
    targets: { kubernetes: { namespace: shop-staging } }
    services:
      enrich:
        instances: [{ weight: 1 }, { weight: 1 }, { weight: 1 }]
        resources: { cpus: 1 }
        env: { MODE: fast }
  same:
    description: nothing the cluster sees
`;
const FILES = { "handlers/enrich.mjs": "export default async (records) => records;\n" };

type Obj = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec: Record<string, unknown> };
const lookup = (objects: readonly Json[], kind: string, name: string) =>
  objects.find((o) => (o as Obj).kind === kind && (o as Obj).metadata.name === name) as unknown as Obj | undefined;
const find = (objects: readonly Json[], kind: string, name: string): Obj => {
  const o = lookup(objects, kind, name);
  if (o === undefined) throw new Error(`no ${kind} ${name}`);
  return o;
};
// biome-ignore lint/suspicious/noExplicitAny: reading nested manifest data in assertions
const podSpec = (o: Obj): any => (o.spec as any).template.spec;
/** The first document of a file, which must be there. */
const first = (docs: Record<string, unknown>[]): Record<string, unknown> => {
  if (docs[0] === undefined) throw new Error("an empty file");
  return docs[0];
};

describe("the kubernetes target's objects", () => {
  const built = buildKubernetes(SPEC, FILES);
  const objects = objectsOf(built.model) as unknown as Json[];

  it("one StatefulSet and headless Service a service, replicas = instances, ordinal from the host name", () => {
    const svc = find(objects, "Service", "enrich");
    expect(svc.spec).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: false, ports: [{ name: "http", port: 9300, targetPort: "http" }] });
    const sts = find(objects, "StatefulSet", "enrich");
    expect(sts.spec).toMatchObject({ serviceName: "enrich", replicas: 2, podManagementPolicy: "Parallel" });
    const c = podSpec(sts).containers[0];
    expect(c.command.slice(0, 4)).toEqual(["sh", "-c", 'exec "$$@" --instance "$${HOSTNAME##*-}"', "sh"]);
    expect(c.command.slice(4)).toEqual(["node", "--max-old-space-size=192", "/opt/mbc/runtime/mbc-runtime.mjs", "--role", "service", "--name", "enrich"]);
    expect(c.resources).toEqual({ requests: { cpu: "500m", memory: "256Mi" }, limits: { cpu: "500m", memory: "256Mi" } });
    expect(sts.metadata.labels).toEqual({
      "app.kubernetes.io/name": "enrich",
      "app.kubernetes.io/instance": "shop-enrich",
      "app.kubernetes.io/component": "service",
      "app.kubernetes.io/part-of": "shop",
      "app.kubernetes.io/managed-by": "mbc",
    });
  });

  it("probes: /healthz and /readyz?scope=self, periods from the heartbeat, unready after the ttl", () => {
    const c = podSpec(find(objects, "StatefulSet", "enrich")).containers[0];
    expect(c.readinessProbe).toEqual({ httpGet: { path: "/readyz?scope=self", port: 9300 }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 3 });
    expect(c.livenessProbe).toEqual({ httpGet: { path: "/healthz", port: 9300 }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 9 });
  });

  it("runs as 1000, non-root, read-only, without privilege escalation; grace = drain budget + 5 s", () => {
    const pod = podSpec(find(objects, "StatefulSet", "enrich"));
    expect(pod.securityContext).toMatchObject({ runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, fsGroup: 1000 });
    expect(pod.containers[0].securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    const enrich = built.model.services.find((s) => s.name === "enrich");
    if (!enrich) throw new Error("no enrich");
    const budget = drainBudgetMs(built.model, { kind: "service", name: "enrich", instance: 0, service: enrich });
    expect(pod.terminationGracePeriodSeconds).toBe(Math.ceil((budget + 5000) / 1000));
  });

  it("env: the target's variables first, the service's own after, every $ doubled for the kubelet", () => {
    const env = podSpec(find(objects, "StatefulSet", "enrich")).containers[0].env;
    expect(env.map((e: { name: string }) => e.name)).toEqual(["MBC_BIND", "MBC_NAMESPACE", "MBC_ADVERTISE_HOST", "MBC_DATA_DIR", "GREETING", "N"]);
    expect(env[1]).toEqual({ name: "MBC_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } });
    expect(env[4]).toEqual({ name: "GREETING", value: "a $$(HOME) b $$$$" });
    expect(k8sLiteral("$(X)$")).toBe("$$(X)$$");
  });

  it("sources: one pod each with a state claim; a Service only for http; file sources and writers share the data claim", () => {
    for (const name of ["orders", "feed", "gen"]) {
      const sts = find(objects, "StatefulSet", name);
      expect(sts.spec).toMatchObject({ replicas: 1, volumeClaimTemplates: [{ metadata: { name: "state" }, spec: { accessModes: ["ReadWriteOnce"] } }] });
    }
    expect(find(objects, "Service", "orders").spec).toMatchObject({ ports: [{ port: 8081 }] });
    expect(lookup(objects, "Service", "feed")).toBeUndefined();
    expect(lookup(objects, "Service", "gen")).toBeUndefined();
    expect(podSpec(find(objects, "StatefulSet", "gen")).containers[0].env).toContainEqual({ name: "MBC_PORT", value: "8080" });
    const claims = (name: string) => podSpec(find(objects, "StatefulSet", name)).volumes.map((v: { name: string }) => v.name);
    expect(claims("feed")).toContain("data");
    expect(claims("gen")).not.toContain("data");
    expect(claims("store")).toContain("data");
    expect(claims("enrich")).toContain("data");
    expect(find(objects, "PersistentVolumeClaim", "data").spec).toEqual({ accessModes: ["ReadWriteMany"], resources: { requests: { storage: "1Gi" } } });
  });

  it("checkpoint.dir lands below the state claim, however it climbs", () => {
    const stateDir = (dir: string) =>
      podSpec(
        find(
          objectsOf(buildKubernetes(SPEC.replace("sources:", `checkpoint: { dir: "${dir}" }\nsources:`), FILES).model) as unknown as Json[],
          "StatefulSet",
          "orders",
        ),
      ).containers[0].env.find((e: { name: string }) => e.name === "MBC_STATE_DIR").value;
    expect(stateDir("state/shop")).toBe("/var/lib/mbc/state/state/shop");
    expect(stateDir("/srv/state")).toBe("/var/lib/mbc/state/srv/state");
    expect(stateDir("../../up")).toBe("/var/lib/mbc/state/up");
    expect(stateDir(".")).toBe("/var/lib/mbc/state");
  });

  it("a service with its own image: no runtime, no command; MBC_POD_NAME gives it its ordinal", () => {
    const pod = podSpec(find(objects, "StatefulSet", "own"));
    expect(pod.containers[0].image).toBe("registry.example.com/team/own:1.0");
    expect(pod.containers[0].command).toBeUndefined();
    expect(pod.volumes).toBeUndefined();
    expect(pod.containers[0].env).toContainEqual({ name: "MBC_POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } });
  });

  it("system.json: the cluster is the registry, every instance on the service's port", () => {
    const system = JSON.parse(built.file("base/runtime/system.json"));
    expect(system.model.registry.backend).toBe("kubernetes");
    expect(system.model.services[0].instances.map((i: { port: number }) => i.port)).toEqual([9300, 9300]);
    expect(system.handlers).toEqual({ enrich: "handlers/enrich.mjs" });
  });

  it("system.json: an etcd registry stays etcd, reached from the pods", () => {
    const etcd = buildKubernetes(
      SPEC.replace("registry: { heartbeat: 2s, ttl: 5s }", "registry: { backend: etcd, endpoints: [http://etcd.infra:2379], heartbeat: 2s, ttl: 6s }"),
      FILES,
    );
    const system = JSON.parse(etcd.file("base/runtime/system.json"));
    expect(system.model.registry).toMatchObject({ backend: "etcd", endpoints: ["http://etcd.infra:2379"] });
  });

  it("the base: a kustomization that generates the ConfigMaps and lists every file, and one that names it", () => {
    const k = first(built.docs("base/kustomization.yaml"));
    expect(k).toMatchObject({
      namespace: "shop",
      resources: [
        "namespace.yaml",
        "data.yaml",
        "sources/orders.yaml",
        "sources/feed.yaml",
        "sources/gen.yaml",
        "services/enrich.yaml",
        "services/store.yaml",
        "services/own.yaml",
      ],
    });
    expect((k.configMapGenerator as { name: string }[]).map((g) => g.name)).toEqual(["mbc-runtime", "mbc-system", "mbc-handlers"]);
    expect(built.docs("kustomization.yaml")[0]).toMatchObject({ resources: ["base"] });
    for (const path of k.resources as string[]) expect(built.artefacts.map((a) => a.path)).toContain(`base/${path}`);
  });

  it("imageHasRuntime: no ConfigMap and no runtime volume; storageClass and sinkAccessMode reach every claim", () => {
    const own = buildKubernetes(
      SPEC.replace("environments:", "targets: { kubernetes: { imageHasRuntime: true, storageClass: fast-nfs, sinkAccessMode: ReadWriteOnce } }\nenvironments:"),
      FILES,
    );
    expect(own.docs("base/kustomization.yaml")[0]?.configMapGenerator).toBeUndefined();
    const objs = objectsOf(own.model) as unknown as Json[];
    const pod = podSpec(find(objs, "StatefulSet", "enrich"));
    expect(pod.volumes.map((v: { name: string }) => v.name)).toEqual(["tmp", "data"]);
    expect(find(objs, "PersistentVolumeClaim", "data").spec).toMatchObject({ accessModes: ["ReadWriteOnce"], storageClassName: "fast-nfs" });
    expect((find(objs, "StatefulSet", "orders").spec as { volumeClaimTemplates: [{ spec: unknown }] }).volumeClaimTemplates[0].spec).toMatchObject({
      storageClassName: "fast-nfs",
    });
    expect(own.artefacts.some((a) => a.path.startsWith("overlays/") && a.path.endsWith("system.json"))).toBe(false);
  });
});

describe("overlays", () => {
  const built = buildKubernetes(SPEC, FILES);

  it("patch only what the environment changes, with its namespace and its own system.json", () => {
    const k = built.docs("overlays/staging/kustomization.yaml")[0];
    expect(k).toMatchObject({
      namespace: "shop-staging",
      resources: ["../../base"],
      configMapGenerator: [{ name: "mbc-system", behavior: "replace", files: ["system.json"] }],
    });
    const patch = built.docs("overlays/staging/patches/statefulset-enrich.yaml")[0] as unknown as { op: string; path: string }[];
    expect(patch.map((p) => `${p.op} ${p.path}`)).toEqual([
      "replace /spec/replicas",
      "replace /spec/template/spec/containers/0/env",
      "replace /spec/template/spec/containers/0/resources/limits/cpu",
      "replace /spec/template/spec/containers/0/resources/requests/cpu",
    ]);
    expect(JSON.parse(built.file("overlays/staging/system.json")).model.environment).toBe("staging");
  });

  it("an environment that changes nothing of the objects has no patches", () => {
    expect(built.docs("overlays/same/kustomization.yaml")[0]?.patches).toBeUndefined();
    expect(built.artefacts.filter((a) => a.path.startsWith("overlays/same/patches/"))).toEqual([]);
  });

  it("applying a patch to its base object gives the environment's object, for any two objects", () => {
    const cases: [Json, Json][] = [
      [
        { a: 1, b: [1, 2], c: { d: "x" } },
        { a: 2, b: [1, 3], c: {}, e: null },
      ],
      [{ list: [1, 2] }, { list: [1, 2, 3] }],
      [{ "a/b": { "~": 1 } }, { "a/b": { "~": 2 } }],
      [[{ x: 1 }], [{ x: 1, y: 2 }]],
      [{ same: true }, { same: true }],
    ];
    for (const [a, b] of cases) expect(applyPatch(a, diffJson(a, b))).toEqual(b);
    expect(diffJson({ same: true }, { same: true })).toEqual([]);
  });
});

describe("sizes and notes", () => {
  it("quantities: exact binary units and millicores", () => {
    expect(quantityOfBytes(256 * 1024 * 1024)).toBe("256Mi");
    expect(quantityOfBytes(1_000_000)).toBe("1000000");
    expect(quantityOfBytes(3 * 1024)).toBe("3Ki");
    expect(quantityOfCpus(2)).toBe("2");
    expect(quantityOfCpus(0.25)).toBe("250m");
  });

  it("a runtime and handlers beyond a ConfigMap's 1 MiB stop the build with what to do", () => {
    const big = new Uint8Array(CONFIGMAP_LIMIT_BYTES);
    expect(() => buildKubernetes(SPEC, FILES, { runtime: big })).toThrow(UsageError);
    expect(() => buildKubernetes(SPEC, FILES, { runtime: big })).toThrow(/ConfigMap mbc-runtime .* at most 1048576/);
    const fits = buildKubernetes(SPEC, FILES);
    expect(configMapSizes(fits.model, fits.inputs).map((c) => c.name)).toEqual(["mbc-runtime", "mbc-system", "mbc-handlers"]);
    // The image holds the runtime: nothing is held to a ConfigMap's size.
    const own = SPEC.replace("environments:", "targets: { kubernetes: { imageHasRuntime: true } }\nenvironments:");
    expect(() => buildKubernetes(own, FILES, { runtime: big })).not.toThrow();
    const hugeHandler = { "handlers/enrich.mjs": `export default async (r) => r; // ${"x".repeat(CONFIGMAP_LIMIT_BYTES)}\n` };
    expect(() => buildKubernetes(SPEC, hugeHandler)).toThrow(/ConfigMap mbc-handlers/);
  });

  it("a warning names sinkAccessMode when pods share the data claim ReadWriteMany", () => {
    const built = buildKubernetes(SPEC, FILES);
    expect(kubernetesNotes(built.model)).toEqual([expect.stringMatching(/source "feed", service "enrich", service "store" share .*sinkAccessMode/)]);
    const once = buildKubernetes(SPEC.replace("environments:", "targets: { kubernetes: { sinkAccessMode: ReadWriteOnce } }\nenvironments:"), FILES);
    expect(kubernetesNotes(once.model)).toEqual([]);
  });

  it("same spec, same bytes", () => {
    const a = buildKubernetes(SPEC, FILES).artefacts;
    const b = buildKubernetes(SPEC, FILES).artefacts;
    expect(b).toEqual(a);
  });
});
