/**
 * Mutated specs for the fuzz suite (test/tools/fuzz.test.ts): from valid seeds (the example, the
 * valid fixtures, the hostile reproducers), each spec takes a few mutations: a value replaced by
 * a hostile one (huge, tiny, negative, fractional, NaN-making, a control character, the wrong
 * type, a path that climbs out), a value at the edge of its bound, a key removed, added or
 * renamed, a service copied many times, the stages rewired (cycles, fan-outs, diamonds); then it
 * is written as YAML or JSON, sometimes with anchors and aliases, sometimes cut short or with a
 * character changed. One seeded stream (pure-rand) drives it all, so a seed gives the same specs.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { parse, stringify } from "yaml";
import { REPRODUCERS } from "./hostile.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  int(below: number): number;
  pick<T>(list: readonly T[]): T;
  chance(p: number): boolean;
}

export function seededRandom(seed: number): Random {
  const rng = xoroshiro128plus(seed);
  const next = () => uniformFloat64(rng);
  return {
    next,
    int: (below) => Math.floor(next() * below),
    pick: (list) => list[Math.floor(next() * list.length)] as (typeof list)[number],
    chance: (p) => next() < p,
  };
}

const root = join(import.meta.dirname, "..", "..");

export interface Seeds {
  /** The example and the valid fixtures. */
  valid: Obj[];
  /** The hostile reproducers whose trouble is a value (test/helpers/hostile.ts). */
  hostile: Obj[];
}

/** The seeds: every valid spec of the repository, and the reproducers, parsed. */
export function seedSpecs(): Seeds {
  let out: Obj[] = [];
  const add = (text: string) => {
    try {
      const value = parse(text, { merge: true, maxAliasCount: 1000 }) as Json;
      if (value && typeof value === "object" && !Array.isArray(value)) out.push(value);
    } catch {
      // a reproducer that is not even YAML stays a text seed only
    }
  };
  add(readFileSync(join(root, "examples", "01-design-document", "microbatch.yaml"), "utf8"));
  const fixtures = join(root, "fixtures", "valid");
  for (const name of readdirSync(fixtures).sort()) {
    const dir = join(fixtures, name);
    if (!statSync(dir).isDirectory()) continue;
    for (const file of readdirSync(dir)) if (/^microbatch\.(ya?ml|json)$/.test(file)) add(readFileSync(join(dir, file), "utf8"));
  }
  const valid = out;
  out = [];
  // The reproducers whose trouble is in the text (keys, aliases) are no values to mutate: the
  // suite runs them as they are.
  for (const r of REPRODUCERS) if (!r.expected.some((d) => / (yaml-syntax|duplicate-key)$/.test(d))) add(r.text);
  return { valid, hostile: out };
}

/** Values that broke something once, or that sit where a bound or a parser has an edge. */
const HOSTILE: readonly Json[] = [
  0,
  -1,
  1,
  0.5,
  1e-300,
  5e-324,
  1e21,
  1e300,
  1e308,
  -1e308,
  4294967296,
  2147483648,
  20_000_000,
  65535,
  65536,
  9007199254740992,
  "",
  " ",
  "\t",
  "a\u0000b",
  "\u001b[31mred",
  "line\nbreak",
  "0ms",
  "0s",
  "1ms",
  "24h",
  "24h0m0.001s",
  "99999999h",
  "1e12/s",
  "1000000000000/s",
  "10000000/s",
  "1/h",
  "0.5/h",
  "1024Gi",
  "1025Gi",
  "63Mi",
  "64Mi",
  "/",
  "/abs/state",
  "../../etc/x",
  "/opt/x ",
  "/usr/bin/no\tde",
  "builtin:jsonl-sink",
  "builtin:nope",
  "./handlers/missing.mjs",
  "../outside.mjs",
  "Node:20 alpine",
  "local host",
  "/metrics",
  "/a?b",
  true,
  false,
  null,
  [],
  {},
  [1, 2],
  { path: "../x.jsonl" },
  { "1": "one" },
];

/** Field paths (with `*` for any entry of a map) and the values near their edges. */
const EDGES: readonly [string, readonly Json[]][] = [
  ["services.*.instances", [0, 1, 1000, 1001, 4294967296, 1e21, [], [{ weight: 1e-300 }, { weight: 1e6 }], [{ weight: 1000001 }]]],
  ["services.*.port", [1, 1023, 65535, 65534, 0, 65536]],
  ["services.*.capacity", ["1/h", "0.9/h", 10000000, 10000001, "10000000/s", 1e-300, 0.001]],
  ["sources.*.rate", ["1/h", 10000000, "1e12/s", 1e12, 0.0001, "600000000/m"]],
  ["sources.*.count", [0, 9007199254740991, 9007199254740992, -1]],
  ["sources.*.port", [1, 65535, 7400, 9100]],
  ["sources.*.path", ["/records", "/metrics", "records", "/a b", "/x/:id", "/tmp/in.jsonl", "/home/u/in.jsonl", "../in.jsonl"]],
  ["sources.*.batch", [{ maxRecords: 1000000, maxBytes: "256Mi", maxWait: "24h" }, { maxRecords: 1, maxBytes: 1, maxWait: "0ms" }, { maxBytes: "257Mi" }]],
  ["services.*.timeout", ["1ms", "0ms", "24h", "25h", "59950ms"]],
  [
    "services.*.retry",
    [
      { interval: "0ms", multiplier: 1e308 },
      { interval: "0ms", multiplier: 10, maxRetries: 10, maxInterval: "24h" },
      { maxRetries: 10, budget: { ratio: 1, minPerSecond: 10000000 } },
      { maxRetries: 11 },
      { budget: { ratio: 0, minPerSecond: 0 } },
      { on: [] },
    ],
  ],
  [
    "services.*.resources",
    [{ cpus: 1e308 }, { cpus: 0.01, memory: "64Mi" }, { cpus: 1024, memory: "1024Gi" }, { memory: 0 }, { memory: 1e300 }, { cpus: 0.001 }],
  ],
  [
    "services.*.env",
    [{ A: "a\u0000b" }, { A: "x".repeat(8193) }, { "1A": "x" }, { PATH: "$HOME" }, Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`V${i}`, i]))],
  ],
  ["services.*.config", [{}, { path: "" }, { path: "/abs/out.jsonl" }, { path: "../../out.jsonl" }, { sample: -1 }, { sample: 2 }, { x: 1 }]],
  ["services.*.handler", ["builtin:jsonl-sink", "builtin:log", "builtin:passthrough", "builtin:", "./h.mjs", "../h.mjs", "/h.mjs"]],
  ["services.*.image", ["node:20-alpine", "Registry/X", "a b", ""]],
  ["checkpoint", [{ dir: "/abs/state" }, { dir: "../up" }, { dir: "." }, { dir: "a\u0000b" }, { fsync: false }]],
  [
    "registry",
    [
      { heartbeat: "0ms" },
      { heartbeat: "10ms", ttl: "20ms" },
      { ttl: "1s", heartbeat: "1s" },
      { port: 65535 },
      { port: 9100 },
      { backend: "etcd" },
      { backend: "etcd", endpoints: ["http://127.0.0.1:2379"], ttl: "1500ms", port: 9100 },
      { backend: "etcd", endpoints: ["http://127.0.0.1:2379", "https://[::1]:2379/"], heartbeat: "1s", ttl: "2s" },
      { backend: "kubernetes", endpoints: [] },
      { endpoints: ["http://u:p@h:1"] },
    ],
  ],
  [
    "simulation",
    [
      { duration: "99999999h" },
      { duration: "24h" },
      { duration: "0ms" },
      { duration: "1ms" },
      { failureRate: 1 },
      { seed: 9007199254740991 },
      { seed: 1e21 },
      { arrival: "bursty" },
      { faults: [{ service: "nope", instance: 0, at: "0s", duration: "1s" }] },
      { faults: [{ service: "store", instance: 999, at: "0s", duration: "24h" }] },
    ],
  ],
  [
    "targets",
    [
      { systemd: { installDir: "/" } },
      { systemd: { installDir: "/opt/x " } },
      { systemd: { node: "/usr/bin/no\tde" } },
      { systemd: { node: "node" } },
      { compose: { image: "Node:20 alpine" } },
      { node: { bind: "local host" } },
      { node: { bind: "::1" } },
      { systemd: {}, compose: {}, node: {} },
    ],
  ],
  ["description", ["x".repeat(4097), "evil\nExecStart=/bin/sh", "\u001b[2J"]],
];

function entries(node: Json): [string | number, Json][] {
  if (Array.isArray(node)) return node.map((v, i) => [i, v]);
  if (node && typeof node === "object") return Object.entries(node);
  return [];
}

/** Every container and key below `root`, as [parent, key] pairs. */
function slots(rootNode: Json): [Obj | Json[], string | number][] {
  const out: [Obj | Json[], string | number][] = [];
  const stack: Json[] = [rootNode];
  const seen = new Set<Json>();
  while (stack.length > 0) {
    const node = stack.pop() as Json;
    if (seen.has(node)) continue;
    seen.add(node);
    for (const [k, v] of entries(node)) {
      out.push([node as Obj | Json[], k]);
      if (v && typeof v === "object") stack.push(v);
    }
  }
  return out;
}

function resolveTemplate(spec: Obj, template: string, random: Random): [Obj, string] | null {
  const parts = template.split(".");
  let node: Json = spec;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i] as string;
    if (!node || typeof node !== "object" || Array.isArray(node)) return null;
    if (part === "*") {
      const keys = Object.keys(node);
      if (keys.length === 0) return null;
      node = (node as Obj)[random.pick(keys)] as Json;
    } else {
      if (!(part in node)) (node as Obj)[part] = {};
      node = (node as Obj)[part] as Json;
    }
  }
  if (!node || typeof node !== "object" || Array.isArray(node)) return null;
  return [node as Obj, parts[parts.length - 1] as string];
}

const clone = <T>(v: T): T => structuredClone(v);

/** Applies one mutation to `spec` in place. */
function mutate(spec: Obj, random: Random): void {
  const services = spec.services && typeof spec.services === "object" && !Array.isArray(spec.services) ? (spec.services as Obj) : null;
  switch (random.int(8)) {
    case 0:
    case 1: {
      const [template, values] = random.pick(EDGES);
      const at = resolveTemplate(spec, template, random);
      if (at) at[0][at[1]] = clone(random.pick(values));
      return;
    }
    case 2: {
      const all = slots(spec);
      if (all.length === 0) return;
      const [parent, key] = random.pick(all);
      (parent as Obj)[key as string] = clone(random.pick(HOSTILE));
      return;
    }
    case 3: {
      const all = slots(spec).filter(([p]) => !Array.isArray(p));
      if (all.length === 0) return;
      const [parent, key] = random.pick(all);
      delete (parent as Obj)[key as string];
      return;
    }
    case 4: {
      const all = slots(spec).filter(([p]) => !Array.isArray(p));
      const [parent] = all.length > 0 ? random.pick(all) : [spec];
      const key = random.pick(["x-note", "bogus", "Timeout", "instance", "to", "port", "rate", "config", "<<", "1", ""]);
      (parent as Obj)[key] = clone(random.pick(HOSTILE));
      return;
    }
    case 5: {
      if (!services) return;
      const names = Object.keys(services);
      if (names.length === 0) return;
      const from = random.pick(names);
      const copies = random.pick([1, 2, 10, 50]);
      for (let i = 0; i < copies; i++) {
        const copy = clone(services[from]) as Obj;
        if (copy && typeof copy === "object" && "port" in copy) delete copy.port;
        services[`${from.slice(0, 30)}-c${i}`] = copy;
      }
      return;
    }
    case 6: {
      if (!services) return;
      const names = Object.keys(services);
      if (names.length === 0) return;
      const svc = services[random.pick(names)];
      if (!svc || typeof svc !== "object" || Array.isArray(svc)) return;
      const n = random.pick([0, 1, 1, 2, 3]);
      const targets = Array.from({ length: n }, () => random.pick([...names, "ghost"]));
      if (n === 0) delete (svc as Obj).to;
      else (svc as Obj).to = n === 1 ? (targets[0] as string) : [...new Set(targets)];
      return;
    }
    default: {
      const all = slots(spec).filter(([p, k]) => !Array.isArray(p) && typeof k === "string");
      if (all.length === 0) return;
      const [parent, key] = random.pick(all);
      const value = (parent as Obj)[key as string] as Json;
      delete (parent as Obj)[key as string];
      (parent as Obj)[random.pick([`${key}-2`, String(key).toUpperCase(), `x-${key}`, "9bad", "a".repeat(41), `${key} `])] = value;
    }
  }
}

/** YAML with an anchor on one service and aliases to it elsewhere (a shape that JSON cannot write). */
function withAliases(spec: Obj, random: Random): string | null {
  const services = spec.services;
  if (!services || typeof services !== "object" || Array.isArray(services)) return null;
  const names = Object.keys(services);
  if (names.length === 0) return null;
  const name = random.pick(names);
  const text = stringify(spec, { lineWidth: 0 });
  const line = `  ${name}:`;
  const at = text.indexOf(`\n${line}\n`);
  if (at < 0) return null;
  const anchored = `${text.slice(0, at + 1)}  ${name}: &svc\n${text.slice(at + 1 + line.length + 1)}`;
  const uses = random.pick([1, 3, 20]);
  return `${anchored}x-copies:\n${Array.from({ length: uses }, (_, i) => `  c${i}: *svc`).join("\n")}\n`;
}

export interface Mutant {
  /** A file name with the extension of the form it is written in. */
  file: string;
  text: string;
}

/** The `index`-th mutant of a run: its own stream, so any one can be made again alone. */
export function mutant(seeds: Seeds, runSeed: number, index: number): Mutant {
  const random = seededRandom((runSeed ^ Math.imul(index + 1, 0x9e3779b1)) | 0);
  // Mostly valid specs with a mutation or two, so that many stay valid and go on to build and
  // simulate; now and then a reproducer, or several mutations at once.
  const spec = clone(random.pick(random.chance(0.8) ? seeds.valid : seeds.hostile));
  const count = random.chance(0.6) ? 1 : 2 + random.int(3);
  for (let i = 0; i < count; i++) mutate(spec, random);
  const form = random.next();
  let text: string;
  let file: string;
  if (form < 0.25) {
    text = JSON.stringify(spec, null, random.chance(0.5) ? 2 : 0) ?? "null";
    file = `m${index}.json`;
  } else {
    text = (form < 0.35 ? withAliases(spec, random) : null) ?? stringify(spec, { lineWidth: 0 });
    file = `m${index}.yaml`;
  }
  // Sometimes the text itself is damaged: cut short, or one character changed.
  const damage = random.next();
  if (damage < 0.04) text = text.slice(0, random.int(text.length + 1));
  else if (damage < 0.08 && text.length > 0) {
    const at = random.int(text.length);
    text = text.slice(0, at) + random.pick(["\t", "\u0000", '"', "'", ":", "&", "*", "\n", "-", "{", "é"]) + text.slice(at + 1);
  }
  return { file, text };
}
