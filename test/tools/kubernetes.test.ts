/**
 * The kubernetes target against kustomize itself (`kubectl kustomize`, no cluster needed): the
 * base and every overlay of each example and of a spec with every kind of source and service
 * render, and the rendered objects are what the contract says — kinds, names and namespaces,
 * probes, volume claims, the generated ConfigMaps wired into every pod by their hashed names, and
 * each overlay's changes applied. Goldens are in test/unit/build.test.ts, the generator's own
 * tests in test/unit/kubernetes.test.ts.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { buildKubernetes, writeK8s } from "../helpers/kubernetes.js";
import { cleanupAll, repoRoot } from "../helpers/runtime.js";
import { assertTool, tool } from "../helpers/tools.js";

const kubectl = tool("kubectl", () => {
  const r = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
  if (r.error) return `kubectl is not installed (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
  return r.status === 0 ? null : `kubectl version --client failed: ${r.stderr.trim()}`;
});

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects, read in assertions
type Obj = any;

/** `kubectl kustomize DIR`: the objects it renders. */
function kustomize(dir: string): Obj[] {
  const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, env: { ...process.env, HOME: "/nonexistent-home" } });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return parseAllDocuments(r.stdout).map((d) => d.toJS());
}

const named = (objects: Obj[], kind: string) => objects.filter((o) => o.kind === kind).map((o) => o.metadata.name as string);
const get = (objects: Obj[], kind: string, name: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (o === undefined) throw new Error(`no ${kind} ${name} among ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(", ")}`);
  return o;
};

const SPEC = `mbc: 1
name: shop
registry: { heartbeat: 2s, ttl: 5s }
sources:
  orders: { type: http, port: 8081, to: enrich }
  feed: { type: file, path: ./in/feed.jsonl, to: enrich }
services:
  enrich:
    handler: ./handlers/deep/enrich.mjs
    instances: [{ weight: 2 }, { weight: 1 }]
    env: { GREETING: "a $(HOME) b" }
    to: store
  store:
    handler: builtin:jsonl-sink
    config: { path: ./out/orders.jsonl }
    resources: { cpus: 0.5, memory: 256Mi }
targets:
  kubernetes: { storageClass: standard }
environments:
  staging:
    targets: { kubernetes: { namespace: shop-staging } }
    services:
      enrich:
        instances: 3
        env: { MODE: fast }
      store:
        resources: { memory: 512Mi }
`;
const FILES = { "handlers/deep/enrich.mjs": "export default async (records) => records;\n" };

/** Checks what every rendering shares: one namespace, pods wired to the generated ConfigMaps, probes, claims. */
function checkCommon(objects: Obj[], namespace: string, heartbeatS: number): void {
  expect(named(objects, "Namespace")).toEqual([namespace]);
  for (const o of objects) if (o.kind !== "Namespace") expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(namespace);
  const configMaps = named(objects, "ConfigMap");
  for (const sts of objects.filter((o) => o.kind === "StatefulSet")) {
    const pod = sts.spec.template.spec;
    const c = pod.containers[0];
    expect(c.readinessProbe.httpGet.path).toBe("/readyz?scope=self");
    expect(c.livenessProbe.httpGet.path).toBe("/healthz");
    expect(c.readinessProbe.periodSeconds).toBe(heartbeatS);
    expect(pod.securityContext).toMatchObject({ runAsUser: 1000, runAsNonRoot: true });
    // kustomize put the hashed name of each generated ConfigMap into the projected volume.
    const refs = pod.volumes.find((v: Obj) => v.name === "runtime").projected.sources.map((s: Obj) => s.configMap.name);
    for (const ref of refs) expect(configMaps).toContain(ref);
    expect(refs.every((r: string) => /^mbc-(runtime|system|handlers)-[a-z0-9]{10}$/.test(r))).toBe(true);
    expect(sts.spec.selector.matchLabels).toEqual(
      Object.fromEntries(
        Object.entries(sts.spec.template.metadata.labels).filter(([k]) => k === "app.kubernetes.io/name" || k === "app.kubernetes.io/instance"),
      ),
    );
  }
}

describe.skipIf(kubectl.skip)("kubectl kustomize renders every base and overlay", () => {
  beforeAll(() => assertTool(kubectl));
  afterAll(() => cleanupAll());

  for (const example of readdirSync(join(repoRoot, "examples")).filter((d) => existsSync(join(repoRoot, "examples", d, "microbatch.yaml")))) {
    it(`the example ${example}`, () => {
      const exampleDir = join(repoRoot, "examples", example);
      const spec = readFileSync(join(exampleDir, "microbatch.yaml"), "utf8");
      const files: Record<string, string> = {};
      for (const f of readdirSync(exampleDir, { recursive: true, encoding: "utf8" })) {
        if (/\.(mjs|js)$/.test(f)) files[f.split("\\").join("/")] = readFileSync(join(exampleDir, f), "utf8");
      }
      const built = buildKubernetes(spec, files);
      const dir = writeK8s(built);
      const base = kustomize(dir);
      checkCommon(base, built.model.targets.kubernetes.namespace, Math.ceil(built.model.registry.heartbeatMs / 1000));
      for (const s of built.model.services) {
        expect(get(base, "Service", s.name).spec.clusterIP).toBe("None");
        expect(get(base, "StatefulSet", s.name).spec.replicas).toBe(s.instances.length);
      }
      for (const env of Object.keys(built.inputs.environments ?? {})) {
        const overlay = kustomize(join(dir, "overlays", env));
        const model = built.inputs.environments?.[env];
        if (!model) throw new Error(env);
        checkCommon(overlay, model.targets.kubernetes.namespace, Math.ceil(model.registry.heartbeatMs / 1000));
        for (const s of model.services) expect(get(overlay, "StatefulSet", s.name).spec.replicas).toBe(s.instances.length);
        // The overlay's system.json replaced the base's.
        const system = JSON.parse(get(overlay, "ConfigMap", named(overlay, "ConfigMap").find((n) => n.startsWith("mbc-system-")) ?? "").data["system.json"]);
        expect(system.model.environment).toBe(env);
      }
    });
  }

  it("every kind of source and sink, and an overlay that moves the namespace and patches replicas, env and resources", () => {
    const built = buildKubernetes(SPEC, FILES);
    const dir = writeK8s(built);
    const base = kustomize(dir);
    checkCommon(base, "shop", 2);
    expect(named(base, "StatefulSet").sort()).toEqual(["enrich", "feed", "orders", "store"]);
    expect(named(base, "Service").sort()).toEqual(["enrich", "orders", "store"]);
    expect(named(base, "PersistentVolumeClaim")).toEqual(["data"]);
    expect(get(base, "PersistentVolumeClaim", "data").spec).toMatchObject({ accessModes: ["ReadWriteMany"], storageClassName: "standard" });
    for (const source of ["orders", "feed"]) {
      expect(get(base, "StatefulSet", source).spec.volumeClaimTemplates).toEqual([
        { metadata: { name: "state" }, spec: { accessModes: ["ReadWriteOnce"], storageClassName: "standard", resources: { requests: { storage: "1Gi" } } } },
      ]);
    }
    // A handler in a subfolder comes back at its path from a key without slashes.
    const handlers = get(base, "ConfigMap", named(base, "ConfigMap").find((n) => n.startsWith("mbc-handlers-")) ?? "");
    expect(handlers.data).toEqual({ "handler-0.mjs": FILES["handlers/deep/enrich.mjs"] });
    const items = get(base, "StatefulSet", "enrich")
      .spec.template.spec.volumes.find((v: Obj) => v.name === "runtime")
      .projected.sources.flatMap((s: Obj) => s.configMap.items);
    expect(items).toContainEqual({ key: "handler-0.mjs", path: "handlers/deep/enrich.mjs" });

    const staging = kustomize(join(dir, "overlays", "staging"));
    checkCommon(staging, "shop-staging", 2);
    const enrich = get(staging, "StatefulSet", "enrich");
    expect(enrich.spec.replicas).toBe(3);
    expect(enrich.spec.template.spec.containers[0].env.slice(-2)).toEqual([
      { name: "GREETING", value: "a $$(HOME) b" },
      { name: "MODE", value: "fast" },
    ]);
    expect(get(staging, "StatefulSet", "store").spec.template.spec.containers[0].resources).toEqual({
      requests: { cpu: "500m", memory: "512Mi" },
      limits: { cpu: "500m", memory: "512Mi" },
    });
    // Everything the environment does not change is the base's, but for the name of its system.json's ConfigMap.
    const systemName = (objects: Obj[]) => named(objects, "ConfigMap").find((n) => n.startsWith("mbc-system-"));
    const orders = JSON.stringify(get(staging, "StatefulSet", "orders").spec).replaceAll(systemName(staging) ?? "?", systemName(base) ?? "?");
    expect(JSON.parse(orders)).toEqual(get(base, "StatefulSet", "orders").spec);
  });

  it("imageHasRuntime: no ConfigMap, nothing mounted from one", () => {
    const built = buildKubernetes(
      SPEC.replace("targets:\n  kubernetes: { storageClass: standard }", "targets:\n  kubernetes: { imageHasRuntime: true }"),
      FILES,
    );
    const objects = kustomize(writeK8s(built));
    expect(named(objects, "ConfigMap")).toEqual([]);
    for (const sts of objects.filter((o) => o.kind === "StatefulSet")) expect(sts.spec.template.spec.volumes.map((v: Obj) => v.name)).not.toContain("runtime");
  });
});
