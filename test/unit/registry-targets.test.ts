import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { buildArtefacts, type TARGET_IDS } from "../../src/build/index.js";
import type { Artefact } from "../../src/build/types.js";
import { registryRunsProcess } from "../../src/policy/index.js";
import { validateText } from "../../src/validate/index.js";
import { buildInputs } from "../helpers/build.js";

const spec = (registry: string) => `mbc: 1
name: shop
registry:
${registry}
sources:
  orders:
    type: http
    port: 8080
    to: enrich
services:
  enrich:
    handler: builtin:passthrough
    instances: 2
    to: store
  store:
    handler: builtin:log
`;
const ETCD = spec("  backend: etcd\n  endpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379]");
const EMBEDDED = spec("  heartbeat: 1s");

function build(text: string, target: (typeof TARGET_IDS)[number]): Map<string, string> {
  const { model, diagnostics } = validateText("microbatch.yaml", text);
  if (!model) throw new Error(JSON.stringify(diagnostics));
  const artefacts = buildArtefacts(model, buildInputs(text), [target]).get(target) as Artefact[];
  return new Map(artefacts.map((a) => [a.path, typeof a.content === "string" ? a.content : Buffer.from(a.content).toString("utf8")]));
}

describe("registry backends in the targets", () => {
  it("only the embedded registry runs as a process of the system", () => {
    expect(registryRunsProcess(validateText("s.yaml", EMBEDDED).model as never)).toBe(true);
    expect(registryRunsProcess(validateText("s.yaml", ETCD).model as never)).toBe(false);
  });

  it("compose: no registry container with etcd, nothing depends on one, no MBC_REGISTRY_URL", () => {
    const embedded = parse(build(EMBEDDED, "compose").get("compose.yaml") as string);
    expect(Object.keys(embedded.services)).toContain("registry");
    expect(embedded.services["enrich-0"].depends_on).toHaveProperty("registry");

    const files = build(ETCD, "compose");
    const compose = parse(files.get("compose.yaml") as string);
    expect(Object.keys(compose.services)).toEqual(["orders", "enrich-0", "enrich-1", "store-0"]);
    for (const [name, s] of Object.entries(compose.services as Record<string, { environment: Record<string, string>; depends_on?: object }>)) {
      expect(s.environment, name).not.toHaveProperty("MBC_REGISTRY_URL");
      expect(Object.keys(s.depends_on ?? {}), name).not.toContain("registry");
    }
    expect(compose.services["enrich-0"].depends_on).toEqual({ "store-0": { condition: "service_healthy" } });
    expect(files.get("README.md")).toContain("No registry container");
    expect(files.get("README.md")).not.toContain("| `registry` |");
  });

  it("systemd: no registry unit with etcd, no unit wants or waits for one, no MBC_REGISTRY_URL", () => {
    const embedded = build(EMBEDDED, "systemd");
    expect([...embedded.keys()]).toContain("units/mbc-shop-registry.service");

    const files = build(ETCD, "systemd");
    expect([...files.keys()].filter((p) => p.includes("registry"))).toEqual([]);
    for (const [path, content] of files) {
      if (!path.startsWith("units/")) continue;
      expect(content, path).not.toContain("registry.service");
    }
    // A sink waits for nothing: no empty After=.
    expect(files.get("units/mbc-shop-store@.service")).not.toMatch(/^After=/m);
    expect(files.get("units/mbc-shop-enrich@.service")).toMatch(/^After=mbc-shop-store@0\.service$/m);
    expect(files.get("env/common.env")).not.toContain("MBC_REGISTRY_URL");
    expect(files.get("install.sh")).not.toContain("registry.service");
    expect(files.get("README.md")).toContain("No registry unit");
  });

  it("node: system.json carries the backend and the endpoints; the README names them", () => {
    const files = build(ETCD, "node");
    const system = JSON.parse(files.get("system.json") as string);
    expect(system.model.registry).toMatchObject({ backend: "etcd", endpoints: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"] });
    expect(files.get("README.md")).toContain("etcd at http://10.0.0.1:2379, http://10.0.0.2:2379");
    expect(files.get("README.md")).not.toContain("| registry | port");
  });
});
