/**
 * The kubernetes target: a kustomize base (base/: kustomization.yaml, namespace.yaml, data.yaml,
 * sources/NAME.yaml, services/NAME.yaml, runtime/; kustomization.yaml beside it names it) and
 * `overlays/ENV/` for each environment of the spec, which patches only what that environment
 * changes. See docs/target-kubernetes.md.
 *
 * Every object is built as data (manifests.ts) and serialised by yaml.ts, so no name or value of
 * the spec can add a key or an object. The runtime folder is the one every target ships, with the
 * model the cluster runs (`clusterModel`: the kubernetes registry backend, one port a service);
 * kustomize turns it into ConfigMaps, each held to the API's 1 MiB.
 */
import { renderFidelity } from "../../src/build/fidelity.js";
import { headerText } from "../../src/build/header.js";
import { render } from "../../src/build/templates.js";
import type { Artefact, BuildInputs, Generator } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { UsageError } from "../../src/usage-error.js";
import { runtimePackage, systemJsonText } from "../shared/runtime-folder.js";
import { sourceIntake } from "../shared/sources.js";
import { commentText, toYaml } from "../shared/yaml.js";
import { checkKubernetes } from "./check.js";
import { kubernetesFidelity } from "./fidelity.js";
import {
  CONFIGMAP_LIMIT_BYTES,
  CONFIGMAPS,
  clusterModel,
  dataVolumeUsers,
  handlerFiles,
  handlerKey,
  type Json,
  type K8sObject,
  objectsOf,
  systemConfigMapBytes,
} from "./manifests.js";

export { CONFIGMAP_LIMIT_BYTES };

import { diffJson } from "./patch.js";

/** What the API server accepts in one ConfigMap's data (keys and values together). */

const KUSTOMIZE_API = { apiVersion: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization" } as const;

/** The file of the base an object is written to. */
function fileOf(o: K8sObject): string {
  const component = o.metadata.labels?.["app.kubernetes.io/component"];
  if (o.kind === "Namespace") return "namespace.yaml";
  if (component === "storage") return "data.yaml";
  return `${component === "source" ? "sources" : "services"}/${o.metadata.labels?.["app.kubernetes.io/name"] ?? o.metadata.name}.yaml`;
}

/** Several objects as one YAML stream, after the header comment. */
function stream(header: string, objects: readonly K8sObject[]): string {
  return `# ${header}\n${objects.map((o) => toYaml(o)).join("---\n")}`;
}

/** Each ConfigMap's data size (keys and values, in bytes) for a model and its inputs. */
export function configMapSizes(model: Model, inputs: BuildInputs): { name: string; bytes: number; what: string }[] {
  const bytes = (text: string | Uint8Array) => (typeof text === "string" ? Buffer.byteLength(text) : text.byteLength);
  const runtime = runtimePackage(clusterModel(model), inputs);
  const file = (path: string) => runtime.find((a) => a.path === `runtime/${path}`)?.content ?? "";
  const handlers = handlerFiles(model);
  return [
    {
      name: CONFIGMAPS.runtime,
      what: "the bundled runtime",
      bytes: bytes("mbc-runtime.mjs") + bytes(inputs.runtime) + bytes("package.json") + bytes(file("package.json")),
    },
    { name: CONFIGMAPS.system, what: "system.json", bytes: systemConfigMapBytes(model) },
    ...(handlers.length === 0
      ? []
      : [{ name: CONFIGMAPS.handlers, what: "the handler modules", bytes: handlers.reduce((n, p, k) => n + bytes(handlerKey(k, p)) + bytes(file(p)), 0) }]),
  ];
}

/** Refuses a build whose ConfigMaps the API server would refuse, saying which and what to do. */
function assertConfigMapsFit(model: Model, inputs: BuildInputs, where: string): void {
  for (const c of configMapSizes(model, inputs)) {
    if (c.bytes <= CONFIGMAP_LIMIT_BYTES) continue;
    throw new UsageError(
      `the kubernetes target${where}: the ConfigMap ${c.name} (${c.what}) would hold ${c.bytes} bytes; the API server accepts at most ${CONFIGMAP_LIMIT_BYTES}`,
      "set targets.kubernetes.imageHasRuntime: true and build an image that holds the runtime/ folder at /opt/mbc/runtime (see docs/target-kubernetes.md), or make the handlers smaller",
    );
  }
}

function baseKustomization(model: Model, objects: readonly K8sObject[]): Record<string, Json> {
  const t = model.targets.kubernetes;
  const handlers = handlerFiles(model);
  const files = [...new Set(objects.map(fileOf))];
  return {
    ...KUSTOMIZE_API,
    namespace: t.namespace,
    resources: files,
    ...(t.imageHasRuntime
      ? {}
      : {
          generatorOptions: { labels: { "app.kubernetes.io/part-of": model.name, "app.kubernetes.io/managed-by": "mbc" } },
          configMapGenerator: [
            { name: CONFIGMAPS.runtime, files: ["mbc-runtime.mjs=runtime/mbc-runtime.mjs", "package.json=runtime/package.json"] },
            { name: CONFIGMAPS.system, files: ["system.json=runtime/system.json"] },
            ...(handlers.length === 0 ? [] : [{ name: CONFIGMAPS.handlers, files: handlers.map((p, k) => `${handlerKey(k, p)}=runtime/${p}`) }]),
          ],
        }),
  };
}

const idOf = (o: K8sObject) => `${o.kind}/${o.kind === "Namespace" ? "" : o.metadata.name}`;

/** The overlay of one environment: its kustomization, its system.json, and one patch file an object it changes. */
export function overlayArtefacts(base: Model, env: Model, name: string, header: string): Artefact[] {
  const dir = `overlays/${name}`;
  const before = new Map(objectsOf(base).map((o) => [idOf(o), o]));
  const after = objectsOf(env);
  const patches: { path: string; target: Json; ops: Json }[] = [];
  for (const o of after) {
    const old = before.get(idOf(o));
    // Objects are the same set in every environment (an overlay may not add sources or services);
    // the namespace is kustomize's `namespace:`, not a patch.
    if (old === undefined) throw new Error(`the ${name} environment has a ${o.kind} ${o.metadata.name} the base lacks`);
    const strip = (x: K8sObject) => ({ ...x, metadata: { ...x.metadata, namespace: null, name: x.kind === "Namespace" ? null : x.metadata.name } }) as Json;
    const ops = diffJson(strip(old), strip(o));
    if (ops.length === 0) continue;
    patches.push({
      path: `patches/${o.kind.toLowerCase()}-${o.metadata.name}.yaml`,
      target: { kind: o.kind, name: old.metadata.name },
      ops: ops as unknown as Json,
    });
  }
  const t = env.targets.kubernetes;
  const kustomization: Record<string, Json> = {
    ...KUSTOMIZE_API,
    namespace: t.namespace,
    resources: ["../../base"],
    ...(t.imageHasRuntime ? {} : { configMapGenerator: [{ name: CONFIGMAPS.system, behavior: "replace", files: ["system.json"] }] }),
    ...(patches.length === 0 ? {} : { patches: patches.map((p) => ({ path: p.path, target: p.target })) }),
  };
  const out: Artefact[] = [
    {
      path: `${dir}/kustomization.yaml`,
      content: `# ${header}\n# The ${name} environment: the base with what environments.${name} changes.\n${toYaml(kustomization)}`,
    },
    ...patches.map((p) => ({ path: `${dir}/${p.path}`, content: `# ${header}\n${toYaml(p.ops)}` })),
  ];
  if (!t.imageHasRuntime) out.push({ path: `${dir}/system.json`, content: systemJsonText(clusterModel(env)) });
  return out;
}

/** The build's warnings about what the target needs of the cluster (printed by mbc build). */
export function kubernetesNotes(model: Model): string[] {
  const users = dataVolumeUsers(model);
  if (users.length === 0 || model.targets.kubernetes.sinkAccessMode !== "ReadWriteMany") return [];
  return [
    `${users.map((u) => u.what).join(", ")} share the volume claim "data" with access mode ReadWriteMany (targets.kubernetes.sinkAccessMode): the cluster needs a storage class that offers it (NFS, CephFS, Azure Files, EFS…), or set sinkAccessMode: ReadWriteOnce when those pods may share one node`,
  ];
}

export const kubernetesGenerator: Generator = {
  id: "kubernetes",
  describe: "a kustomize base and one overlay an environment: a StatefulSet and headless Service a service, a StatefulSet a source, the runtime in ConfigMaps",
  templates: ["kubernetes-README.md.hbs"],
  fidelity: kubernetesFidelity,
  check: checkKubernetes,
  notes: kubernetesNotes,
  generate(model: Model, inputs: BuildInputs): Artefact[] {
    const header = commentText(headerText(inputs));
    const htmlHeader = header.replace(/--/g, "-&#45;");
    if (!model.targets.kubernetes.imageHasRuntime) assertConfigMapsFit(model, inputs, "");
    const objects = objectsOf(model);
    const byFile = new Map<string, K8sObject[]>();
    for (const o of objects) byFile.set(fileOf(o), [...(byFile.get(fileOf(o)) ?? []), o]);
    const runtime = runtimePackage(clusterModel(model), inputs);
    const overlays: Artefact[] = [];
    for (const [name, env] of Object.entries(inputs.environments ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!env.targets.kubernetes.imageHasRuntime) assertConfigMapsFit(env, inputs, ` (environment ${name})`);
      overlays.push(...overlayArtefacts(model, env, name, header));
    }
    // kustomize refuses an overlay inside the folder of the base it names (a cycle): the base is
    // base/, and kustomization.yaml here names it, so `kubectl apply -k` of this folder applies it.
    const top = { ...KUSTOMIZE_API, resources: ["base"] };
    const readme = render("kubernetes-README.md.hbs", inputs.templates["kubernetes-README.md.hbs"], {
      header: htmlHeader,
      name: model.name,
      description: model.description,
      version: inputs.version,
      specName: inputs.specName,
      namespace: model.targets.kubernetes.namespace,
      image: model.targets.kubernetes.image,
      imageHasRuntime: model.targets.kubernetes.imageHasRuntime,
      environments: Object.keys(inputs.environments ?? {}).sort(),
      sources: model.sources.map((s) => ({ name: s.name, type: s.type, ...sourceIntake(s) })),
      services: model.services.map((s) => ({ name: s.name, replicas: s.instances.length, image: s.image, port: s.port })),
    });
    return [
      { path: "README.md", content: readme },
      { path: "kustomization.yaml", content: `# ${header}\n# The base as it is; overlays/ENV/ for an environment of the spec.\n${toYaml(top)}` },
      { path: "base/kustomization.yaml", content: `# ${header}\n${toYaml(baseKustomization(model, objects))}` },
      ...[...byFile].map(([path, list]) => ({ path: `base/${path}`, content: stream(header, list) })),
      { path: "FIDELITY.md", content: renderFidelity({ kubernetes: kubernetesFidelity }, htmlHeader) },
      ...runtime.map((a) => ({ ...a, path: `base/${a.path}` })),
      ...overlays,
    ];
  },
};
