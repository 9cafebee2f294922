/** The schema is what editors show: every property documented, enums explained, snippets present. */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..", "..");
const schema = JSON.parse(readFileSync(join(root, "schema", "mbc.schema.json"), "utf8"));

type Node = Record<string, unknown>;

/** Every schema reachable below a node, with a JSON Pointer. */
function* walk(node: unknown, pointer = ""): Generator<[string, Node]> {
  if (typeof node !== "object" || node === null) return;
  if (Array.isArray(node)) {
    for (const [i, n] of node.entries()) yield* walk(n, `${pointer}/${i}`);
    return;
  }
  const n = node as Node;
  yield [pointer, n];
  for (const [k, v] of Object.entries(n)) {
    // Conditions (`if`) are never shown to a user; annotations are not schemas.
    if (["examples", "default", "const", "enum", "defaultSnippets", "markdownEnumDescriptions", "if"].includes(k)) continue;
    yield* walk(v, `${pointer}/${k}`);
  }
}

function resolveRef(ref: string): Node {
  return ref
    .slice(2)
    .split("/")
    .reduce<Node>((n, seg) => n[seg] as Node, schema);
}

describe("schema quality for editors", () => {
  it("documents every property, with markdown", () => {
    const missing: string[] = [];
    for (const [pointer, node] of walk(schema)) {
      const props = node.properties as Record<string, Node> | undefined;
      if (!props) continue;
      for (const [key, prop] of Object.entries(props)) {
        const target = typeof prop.$ref === "string" ? { ...resolveRef(prop.$ref), ...prop } : prop;
        if (typeof target.description !== "string" || target.description === "") missing.push(`${pointer}/properties/${key}: description`);
        if (typeof target.markdownDescription !== "string") missing.push(`${pointer}/properties/${key}: markdownDescription`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("explains every enum value", () => {
    const problems: string[] = [];
    for (const [pointer, node] of walk(schema)) {
      if (!Array.isArray(node.enum) || node.enum.length < 2) continue;
      const described = node.markdownEnumDescriptions;
      if (!Array.isArray(described) || described.length !== node.enum.length) problems.push(pointer);
    }
    expect(problems).toEqual([]);
  });

  it("gives the contract's defaults", () => {
    const d = schema.$defs;
    expect(d.defaults.properties.timeout.default).toBe("2s");
    expect(d.retry.properties.maxRetries.default).toBe(2);
    expect(d.retry.properties.interval.default).toBe("100ms");
    expect(d.retry.properties.backoff.default).toBe("exponential");
    expect(d.retry.properties.multiplier.default).toBe(2);
    expect(d.retry.properties.maxInterval.default).toBe("5s");
    expect(d.retry.properties.jitter.default).toBe("full");
    expect(d.retry.properties.on.default).toEqual(["timeout", "5xx", "connect"]);
    expect(d.retry.properties.budget.properties.ratio.default).toBe(0.2);
    expect(d.retry.properties.budget.properties.minPerSecond.default).toBe(10);
    expect(d.batch.properties.maxRecords.default).toBe(500);
    expect(d.batch.properties.maxWait.default).toBe("200ms");
    expect(d.batch.properties.maxBytes.default).toBe("1Mi");
    expect(d.registry.properties.port.default).toBe(7400);
    expect(d.registry.properties.heartbeat.default).toBe("1s");
    expect(d.registry.properties.ttl.default).toBe("3s");
    expect(d.checkpoint.properties.fsync.default).toBe(true);
    expect(d.simulation.properties.duration.default).toBe("60s");
    expect(d.simulation.properties.arrival.default).toBe("poisson");
    expect(d.simulation.properties.failureRate.default).toBe(0);
    expect(d.simulation.properties.seed.default).toBe(1);
    expect(d.targets.properties.compose.properties.image.default).toBe("node:20-alpine");
    expect(d.targets.properties.systemd.properties.user.default).toBe("mbc");
    expect(d.targets.properties.systemd.properties.node.default).toBe("/usr/bin/node");
    expect(d.targets.properties.node.properties.bind.default).toBe("127.0.0.1");
  });

  it("makes a new source, a new service and a whole spec one completion away", () => {
    const labels = (n: Node) => ((n.defaultSnippets as { label: string }[] | undefined) ?? []).map((s) => s.label);
    expect(labels(schema)).toContain("new mbc spec");
    expect(labels(schema.properties.sources)).toEqual(expect.arrayContaining(["http source", "file source", "generator source"]));
    expect(labels(schema.properties.services)).toEqual(expect.arrayContaining(["service", "jsonl sink"]));
  });

  it("is exported by the package", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    expect(pkg.exports["./schema"]).toBe("./schema/mbc.schema.json");
    expect(pkg.files).toContain(pkg.exports["./schema"].replace(/^\.\//, ""));
  });
});
