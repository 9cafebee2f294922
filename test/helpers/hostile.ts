/**
 * The hostile and extreme specs that once got past `mbc validate` and then crashed or hung a
 * later command, or built what could not run (issue 14: "validate is the whole truth"). Each is
 * kept with what validate must say of it: every diagnostic as `LINE:COL SEVERITY CODE`, as
 * `mbc validate` reports it without flags. test/unit/hostile.test.ts checks them through the
 * API, test/runtime/hostile-specs-cli.test.ts through the CLI (with build and simulate), and
 * test/tools/fuzz.test.ts starts its mutations from them.
 */

export interface Reproducer {
  /** What it once did. */
  name: string;
  /** The file name (its extension decides nothing; the content does). */
  file: string;
  text: string;
  /** Every diagnostic of `mbc validate FILE`, in order. */
  expected: string[];
}

const head = (extra = "") => `mbc: 1
name: shop
${extra}sources:
  orders:
    type: http
    port: 8080
    to: store
services:
  store:
    handler: builtin:log
`;

/** A map of n keys under an anchor, and `uses` aliases of it: the expansion the alias count did not see. */
function aliasBomb(keys: number, uses: number): string {
  const lines = ["mbc: 1", "name: shop", "x-big: &big"];
  for (let i = 0; i < keys; i++) lines.push(`  k${i}: value-${i}`);
  lines.push("sources:", "  orders: { type: http, port: 8080, to: store }", "services:", "  store:", "    handler: ./handlers/store.mjs", "    config:");
  for (let i = 0; i < uses; i++) lines.push(`      r${i}: *big`);
  return `${lines.join("\n")}\n`;
}

export const REPRODUCERS: readonly Reproducer[] = [
  {
    name: "instances: 4294967296 (RangeError: Invalid array length)",
    file: "instances-2-32.yaml",
    text: `${head()}    instances: 4294967296\n`,
    expected: ["11:16 error schema"],
  },
  { name: "instances: 1e21", file: "instances-1e21.yaml", text: `${head()}    instances: 1e21\n`, expected: ["11:16 error schema"] },
  {
    name: "instances: 2147483648 (V8 heap out of memory, exit 134)",
    file: "instances-2-31.yaml",
    text: `${head()}    instances: 2147483648\n`,
    expected: ["11:16 error schema"],
  },
  {
    name: "port: 1, instances: 20000000 (RangeError: Set maximum size exceeded)",
    file: "port-1-instances.yaml",
    text: `${head()}    port: 1\n    instances: 20000000\n`,
    expected: ["12:16 error schema"],
  },
  {
    name: "port: 65535, instances: 3 (system.json got ports 65536 and 65537)",
    file: "port-past-65535.yaml",
    text: `${head()}    port: 65535\n    instances: 3\n`,
    expected: ["11:11 error port-conflict"],
  },
  {
    name: "70 services of 999 instances: more listeners than ports",
    file: "listeners.yaml",
    text: `mbc: 1\nname: shop\nsources:\n  orders: { type: generator, rate: 10, to: s0 }\nservices:\n${Array.from({ length: 70 }, (_, i) => `  s${i}: { handler: builtin:log, instances: 999 }`).join("\n")}\n`,
    expected: ["6:42 error port-conflict"],
  },
  {
    name: "resources: {cpus: 1e308} (CPUQuota=Infinity%)",
    file: "cpus.yaml",
    text: `${head()}    resources: { cpus: 1e308 }\n`,
    expected: ["11:24 error schema"],
  },
  {
    name: "memory: 1e300 (MemoryMax=1e+300)",
    file: "memory-huge.yaml",
    text: `${head()}    resources: { memory: 1e300 }\n`,
    expected: ["11:26 error schema"],
  },
  { name: "memory: 0 (MemoryMax=1)", file: "memory-zero.yaml", text: `${head()}    resources: { memory: 0 }\n`, expected: ["11:26 error schema"] },
  {
    name: "retry: {interval: 0ms, multiplier: 1e308} downstream (NaNms, stop_grace_period: NaNs)",
    file: "multiplier.yaml",
    text: `mbc: 1
name: shop
sources:
  orders: { type: http, port: 8080, to: work }
services:
  work: { handler: builtin:passthrough, to: store }
  store:
    handler: builtin:log
    retry: { interval: 0ms, multiplier: 1e308 }
`,
    expected: ["9:41 error schema"],
  },
  {
    name: "checkpoint: {dir: /abs/state} (build exited 2 without a position)",
    file: "checkpoint-absolute.yaml",
    text: head("checkpoint: { dir: /abs/state }\n"),
    expected: ["3:20 warning target-constraint"],
  },
  {
    name: 'targets.systemd.installDir: "/"',
    file: "install-dir-root.yaml",
    text: head('targets:\n  systemd:\n    installDir: "/"\n'),
    expected: ["5:17 error target-constraint"],
  },
  {
    name: "targets.systemd.installDir with a trailing space",
    file: "install-dir-space.yaml",
    text: head('targets:\n  systemd:\n    installDir: "/opt/shop "\n'),
    expected: ["5:17 error target-constraint"],
  },
  {
    name: "a tab in targets.systemd.node",
    file: "node-tab.yaml",
    text: head('targets:\n  systemd:\n    node: "/usr/bin/no\\tde"\n'),
    expected: ["5:11 error target-constraint"],
  },
  {
    name: "builtin:jsonl-sink without config.path (failed at start)",
    file: "sink-without-path.yaml",
    text: `mbc: 1
name: shop
sources:
  orders: { type: http, port: 8080, to: store }
services:
  store:
    handler: builtin:jsonl-sink
`,
    expected: ["6:3 error schema"],
  },
  {
    name: 'config: {1: one, "1": two} (one value dropped)',
    file: "keys-number.yaml",
    text: `${head()}    config: { 1: one, "1": two }\n`,
    expected: ["11:23 error duplicate-key"],
  },
  {
    name: 'config: {true: x, "true": y}',
    file: "keys-bool.yaml",
    text: `${head()}    config: { true: x, "true": y }\n`,
    expected: ["11:24 error duplicate-key"],
  },
  {
    name: 'config: {null: p, "": q}',
    file: "keys-null.yaml",
    text: `${head()}    config: { null: p, "": q }\n`,
    expected: ["11:24 error duplicate-key"],
  },
  {
    name: "two merge keys in one mapping",
    file: "merge-keys.yaml",
    text: `mbc: 1
name: shop
x-a: &a { capacity: 100 }
x-b: &b { capacity: 200 }
sources:
  orders: { type: http, port: 8080, to: store }
services:
  store:
    handler: builtin:log
    <<: *a
    <<: *b
`,
    expected: ["11:5 error duplicate-key"],
  },
  {
    name: "a list as a key (stringified, with a process warning)",
    file: "collection-key.yaml",
    text: `${head()}    config:\n      ? [1, 2]\n      : x\n`,
    expected: ["12:9 error yaml-syntax"],
  },
  {
    name: "an alias referenced 900 times to a 20,000-key map (Invalid string length at 636 MB)",
    file: "alias-expansion.yaml",
    text: aliasBomb(20_000, 900),
    expected: ["20010:11 error yaml-syntax"],
  },
  {
    name: "an alias inside the node it names (a circular value build could not serialise)",
    file: "alias-cycle.yaml",
    text: `mbc: 1
name: shop
sources:
  orders: { type: http, port: 8080, to: store }
services:
  store: &s
    handler: builtin:log
    config: { self: *s }
`,
    expected: ["8:21 error yaml-syntax"],
  },
  {
    name: "rate: 1e12 (simulate --duration 5s never ended)",
    file: "rate-1e12.yaml",
    text: `mbc: 1
name: shop
sources:
  orders: { type: generator, rate: 1e12, to: store }
services:
  store: { handler: builtin:log }
`,
    expected: ["4:36 error schema"],
  },
  {
    name: "simulation.duration: 99999999h (validate --simulate never ended)",
    file: "duration.yaml",
    text: head("simulation: { duration: 99999999h }\n"),
    expected: ["3:25 error schema"],
  },
  {
    name: "no timeouts and no retries set: neither timeout-inversion nor retry-storm",
    file: "defaults.yaml",
    text: `mbc: 1
name: shop
sources:
  orders: { type: http, port: 8080, rate: 500/s, to: parse }
services:
  parse: { handler: builtin:passthrough, to: enrich }
  enrich: { handler: builtin:passthrough, to: [score, audit] }
  score: { handler: builtin:passthrough, to: store }
  store: { handler: builtin:log }
  audit: { handler: builtin:log }
`,
    expected: [],
  },
];

/**
 * Specs that validate clean at the bounds and that a later command must still refuse with a
 * diagnostic rather than run for ever: the largest rate for the longest time.
 */
export const SIMULATION_TOO_LARGE = `mbc: 1
name: firehose
sources:
  clicks: { type: generator, rate: 10000000/s, to: store }
services:
  store: { handler: builtin:log, instances: 2, capacity: 10000000/s }
simulation:
  duration: 24h
`;
