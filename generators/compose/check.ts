/**
 * What the Compose target cannot carry, as findings at the fields (see generators/systemd/check.ts
 * for how `mbc validate` and the build share them): every image must be a reference Docker and
 * Podman accept, or `docker compose up` stops with "invalid reference format". The grammar is
 * the distribution project's (github.com/distribution/reference): an optional registry host, a
 * lowercase path, an optional tag and digest, at most 255 characters before the tag.
 */
import type { TargetFinding } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { joinPointer } from "../../src/pointer.js";
import { registryBackendFindings } from "../shared/registry.js";

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const REFERENCE = new RegExp(`^(${NAME})(?::[\\w][\\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?$`);

/** Why `image` is not an image reference Docker and Podman accept, or null. */
export function imageProblem(image: string): string | null {
  const m = REFERENCE.exec(image);
  if (m === null) return "is not an image reference (REGISTRY/PATH:TAG, lowercase path, no spaces)";
  if ((m[1] as string).length > 255) return "has a name longer than 255 characters";
  return null;
}

export function checkCompose(model: Model): TargetFinding[] {
  const out = registryBackendFindings(model, "Compose");
  const hint = "for example node:20-alpine or registry.example.com/team/enrich:1.4";
  const image = model.targets.compose.image;
  const problem = imageProblem(image);
  if (problem !== null) out.push({ path: "/targets/compose/image", message: `image ${JSON.stringify(image)} ${problem}`, hint });
  for (const s of model.services) {
    if (s.image === null) continue;
    const own = imageProblem(s.image);
    if (own !== null) out.push({ path: joinPointer(s.path, "image"), message: `the image ${JSON.stringify(s.image)} of service "${s.name}" ${own}`, hint });
  }
  return out;
}
