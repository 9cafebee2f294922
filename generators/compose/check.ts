/**
 * What the Compose target cannot carry, as findings at the fields (see generators/systemd/check.ts
 * for how `mbc validate` and the build share them): every image must be a reference Docker and
 * Podman accept, or `docker compose up` stops with "invalid reference format" (the grammar is in
 * generators/shared/image-reference.ts).
 */
import type { TargetFinding } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { joinPointer } from "../../src/pointer.js";
import { imageProblem } from "../shared/image-reference.js";
import { registryBackendFindings } from "../shared/registry.js";

export { imageProblem };

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
