/**
 * What the kubernetes target cannot carry, as findings at the fields (see generators/systemd/check.ts
 * for how `mbc validate` and the build share them):
 * - the namespace, the default one (the system's `name`) included, and every name that becomes a
 *   Service or StatefulSet must be a DNS-1123 label (a spec name may end with a dash; these may not),
 *   a StatefulSet's at most 52 characters (its pods' `controller-revision-hash` label);
 * - every image must be a reference the kubelet pulls;
 * - a file source reads a file: a relative path lands on the `data` claim, an absolute one would be
 *   a path on some node, which a pod does not see;
 * - `ReadWriteOncePod` lets one pod mount the `data` claim: not the several that read or write files.
 * - system.json goes into a ConfigMap (unless the image holds the runtime), which the API server
 *   takes up to 1 MiB: a system of many services can outgrow it. The runtime's and the handlers'
 *   ConfigMaps are held to the same at build time, where their sizes are known.
 */
import { posix } from "node:path";
import type { TargetFinding } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { joinPointer } from "../../src/pointer.js";
import { DNS_LABEL, MAX_STATEFULSET_NAME } from "../../src/policy/kubernetes.js";
import { imageProblem } from "../shared/image-reference.js";
import { CONFIGMAP_LIMIT_BYTES, CONFIGMAPS, dataVolumeUsers, systemConfigMapBytes } from "./manifests.js";

const IMAGE_HINT = "for example node:20-alpine or registry.example.com/team/enrich:1.4";

function nameProblem(name: string): string | null {
  if (!DNS_LABEL.test(name)) return "is not a DNS-1123 label (lowercase letters, digits and dashes, starting and ending with a letter or digit)";
  if (name.length > MAX_STATEFULSET_NAME) return `is longer than ${MAX_STATEFULSET_NAME} characters, which a StatefulSet's name may be`;
  return null;
}

export function checkKubernetes(model: Model): TargetFinding[] {
  const out: TargetFinding[] = [];
  const t = model.targets.kubernetes;
  if (!DNS_LABEL.test(t.namespace)) {
    // Only the default can get here (the schema checks a namespace that is set): it is the system's name.
    out.push({
      path: "/name",
      message: `the namespace defaults to the system's name ${JSON.stringify(t.namespace)}, which is not a DNS-1123 label (it may not end with a dash)`,
      hint: "set targets.kubernetes.namespace, or rename the system",
    });
  }
  const image = imageProblem(t.image);
  if (image !== null) out.push({ path: "/targets/kubernetes/image", message: `image ${JSON.stringify(t.image)} ${image}`, hint: IMAGE_HINT });
  for (const s of model.sources) {
    const problem = nameProblem(s.name);
    if (problem !== null)
      out.push({ path: s.path, at: "key", message: `source name "${s.name}" names its StatefulSet and Service, and ${problem}`, hint: "rename the source" });
    if (s.type === "file" && s.location !== null && posix.isAbsolute(s.location))
      out.push({
        path: joinPointer(s.path, "path"),
        message: `the file ${JSON.stringify(s.location)} of source "${s.name}" is a path on a host, which a pod does not see`,
        hint: "a path relative to the spec's folder: it is read from the volume claim `data` (copy the file there), or an http source",
      });
  }
  for (const s of model.services) {
    const problem = nameProblem(s.name);
    if (problem !== null)
      out.push({
        path: s.path,
        at: "key",
        message: `service name "${s.name}" names its StatefulSet and headless Service, and ${problem}`,
        hint: "rename the service",
      });
    if (s.image !== null) {
      const own = imageProblem(s.image);
      if (own !== null)
        out.push({ path: joinPointer(s.path, "image"), message: `the image ${JSON.stringify(s.image)} of service "${s.name}" ${own}`, hint: IMAGE_HINT });
    }
  }
  if (!t.imageHasRuntime) {
    const bytes = systemConfigMapBytes(model);
    if (bytes > CONFIGMAP_LIMIT_BYTES)
      out.push({
        path: "/services",
        at: "key",
        message: `system.json would hold ${bytes} bytes in the ConfigMap ${CONFIGMAPS.system}; the API server accepts at most ${CONFIGMAP_LIMIT_BYTES} (1 MiB)`,
        hint: "set targets.kubernetes.imageHasRuntime: true and build an image that holds the runtime/ folder (docs/target-kubernetes.md), or split the system",
      });
  }
  const users = dataVolumeUsers(model);
  const pods = users.reduce((n, u) => n + u.pods, 0);
  if (t.sinkAccessMode === "ReadWriteOncePod" && pods > 1) {
    out.push({
      path: "/targets/kubernetes/sinkAccessMode",
      message: `ReadWriteOncePod lets one pod mount the volume claim "data", but ${pods} pods read or write files on it (${users.map((u) => u.what).join(", ")})`,
      hint: "ReadWriteMany (storage that offers it), or ReadWriteOnce (those pods on one node)",
    });
  }
  return out;
}
