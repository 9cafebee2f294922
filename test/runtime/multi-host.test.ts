/**
 * One system across three "hosts" with the etcd registry: three network namespaces (`ip netns`),
 * each with its own loopback and one address on a private /24, joined by a bridge. etcd runs in
 * the first, the sink instance in the second, the http source in the third, each process with
 * MBC_BIND and MBC_ADVERTISE_HOST set to its host's address and MBC_REGISTRY_ENDPOINTS naming
 * etcd across the bridge (the spec names an endpoint nothing listens on: the variable must win).
 *
 * - Records posted to the source (from inside its host) are stored by the sink exactly once, and
 *   the sink's key in etcd holds the URL it advertised, the one the source reached it at.
 * - The sink host's process killed (SIGKILL): the source still acknowledges what it logs but
 *   commits nothing, says it has no live sink, and keeps the batches waiting; the sink restarted,
 *   everything acknowledged is stored once.
 * - The sink host's link cut (`ip link set down`) for longer than the ttl, then restored: the
 *   sink registers again and nothing acknowledged is lost or stored twice.
 *
 * Needs root and iproute2 (skipped with the reason elsewhere; MBC_REQUIRE_TOOLS=1 makes that a
 * failure) and etcd. Names carry this process's pid (`mbc-mh-PID-…`), so a parallel run never
 * meets them; the bridge and the veth pairs are made inside the namespaces, never in the
 * machine's own, so deleting the namespaces removes everything, and the addresses and ports
 * (fixed: nothing else can bind inside these namespaces) cannot collide with the machine's.
 * Namespaces left by a run whose process is gone are deleted first.
 *
 * Bounds on time are the configured value × 2 + 1 s; every other wait is on a condition.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSystem, type E2ESystem, metricValue, readIds, record } from "../helpers/e2e.js";
import { etcdArgs } from "../helpers/etcd.js";
import { cleanupAll, killAll, type RuntimeChild, removeDir, spawnRuntime, tempDir, waitUntil } from "../helpers/runtime.js";
import { assertTool, tool } from "../helpers/tools.js";

const PREFIX = `mbc-mh-${process.pid}-`;
const NS = { etcd: `${PREFIX}etcd`, sink: `${PREFIX}sink`, source: `${PREFIX}source` } as const;
/** Only inside the namespaces: the machine never sees this subnet. */
const SUBNET = `10.231.${process.pid % 256}`;
const ADDR = { etcd: `${SUBNET}.1`, sink: `${SUBNET}.2`, source: `${SUBNET}.3` } as const;
const ETCD_URL = `http://${ADDR.etcd}:2379`;
const SOURCE_PORT = 8080;
const SINK_PORT = 9000;
const HEARTBEAT_MS = 500;
const TTL_MS = 2000;
const SYSTEM = "multi-host";

function ip(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  return { status: r.error ? null : r.status, stderr: r.error ? r.error.message : r.stderr };
}

function mustIp(...args: string[]): void {
  const r = ip(...args);
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

const netnsTool = tool("ip netns", () => {
  if (process.platform !== "linux") return "network namespaces are Linux only";
  if (process.getuid?.() !== 0) return "ip netns needs root";
  const probe = `${PREFIX}probe`;
  const added = ip("netns", "add", probe);
  if (added.status === null) return `ip is not installed (Debian: apt-get install iproute2): ${added.stderr}`;
  if (added.status !== 0) return `ip netns add failed: ${added.stderr.trim()}`;
  ip("netns", "del", probe);
  return null;
});

const etcdTool = tool("etcd", () => {
  const probe = spawnSync("etcd", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) return "etcd is not installed (Debian: apt-get install etcd-server)";
  return null;
});

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Deletes the namespaces a run whose process is gone left behind (it was killed before its afterAll). */
function removeStaleNamespaces(): void {
  const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const m = /^mbc-mh-(\d+)-/.exec(name);
    if (m && !pidAlive(Number(m[1]))) ip("netns", "del", name);
  }
}

let etcdProc: ChildProcess | null = null;
const created: string[] = [];

function removeNamespaces(): void {
  for (const ns of created.splice(0)) ip("netns", "del", ns);
}

/** Also when the test process is ended before afterAll: nothing of ours stays behind. */
const onExit = () => {
  etcdProc?.kill("SIGKILL");
  removeNamespaces();
};

/** A bridge in the etcd host; the sink and source hosts each on it by a veth pair made inside the namespaces. */
function makeNetwork(): void {
  for (const ns of Object.values(NS)) {
    mustIp("netns", "add", ns);
    created.push(ns);
    mustIp("-n", ns, "link", "set", "lo", "up");
  }
  mustIp("-n", NS.etcd, "link", "add", "br0", "type", "bridge");
  mustIp("-n", NS.etcd, "addr", "add", `${ADDR.etcd}/24`, "dev", "br0");
  mustIp("-n", NS.etcd, "link", "set", "br0", "up");
  for (const host of ["sink", "source"] as const) {
    mustIp("-n", NS.etcd, "link", "add", `v-${host}`, "type", "veth", "peer", "name", "eth0", "netns", NS[host]);
    mustIp("-n", NS.etcd, "link", "set", `v-${host}`, "master", "br0");
    mustIp("-n", NS.etcd, "link", "set", `v-${host}`, "up");
    mustIp("-n", NS[host], "addr", "add", `${ADDR[host]}/24`, "dev", "eth0");
    mustIp("-n", NS[host], "link", "set", "eth0", "up");
  }
}

interface Answer {
  status: number;
  text: string;
  json: unknown;
}

const CLIENT = `
const [method, url, timeout] = process.argv.slice(1);
const body = process.env.MH_BODY;
try {
  const res = await fetch(url, { method, headers: body ? { "content-type": "application/json" } : {}, body: body || undefined, signal: AbortSignal.timeout(Number(timeout)) });
  process.stdout.write(JSON.stringify({ status: res.status, text: await res.text() }));
} catch (err) {
  process.stdout.write(JSON.stringify({ status: 0, text: String(err && err.cause ? err.cause.code ?? err.cause : err) }));
}
`;

/** One HTTP request made from inside a host (a node child in its namespace); status 0 when it got no answer. */
function hostHttp(ns: string, method: string, url: string, body?: unknown, timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "--input-type=module", "-e", CLIENT, method, url, String(timeoutMs)], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", MH_BODY: body === undefined ? "" : JSON.stringify(body) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("exit", () => {
      try {
        const { status, text } = JSON.parse(out) as { status: number; text: string };
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
        resolve({ status, text, json });
      } catch {
        reject(new Error(`the client in ${ns} said: ${out}${err}`));
      }
    });
  });
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/** The system's keys in etcd, read from the source's host: key → value. */
async function registered(): Promise<Map<string, Record<string, unknown>>> {
  const res = await hostHttp(NS.source, "POST", `${ETCD_URL}/v3/kv/range`, { key: b64(`/mbc/${SYSTEM}/`), range_end: b64(`/mbc/${SYSTEM}0`) });
  if (res.status !== 200) throw new Error(`etcd answered ${res.status}: ${res.text}`);
  const kvs = (res.json as { kvs?: { key: string; value: string }[] }).kvs ?? [];
  return new Map(
    kvs.map((kv) => [Buffer.from(kv.key, "base64").toString(), JSON.parse(Buffer.from(kv.value, "base64").toString()) as Record<string, unknown>]),
  );
}

async function startEtcd(): Promise<void> {
  const dir = tempDir("mbc-mh-etcd-");
  const peer = "http://127.0.0.1:2380";
  const proc = spawn("ip", ["netns", "exec", NS.etcd, "etcd", ...etcdArgs({ dataDir: dir, clientUrl: ETCD_URL, peerUrl: peer })], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  etcdProc = proc;
  const output: string[] = [];
  proc.stdout?.on("data", (d: Buffer) => output.push(d.toString()));
  proc.stderr?.on("data", (d: Buffer) => output.push(d.toString()));
  try {
    await waitUntil(async () => (await registered()).size >= 0, `etcd to answer at ${ETCD_URL} from the source's host`, 60_000, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${output.join("").slice(-2000)}`);
  }
}

let sys: E2ESystem;
const dirs = { sink: "", source: "" };

/** The built system with fixed ports: each process is alone on its host. */
async function build(): Promise<void> {
  sys = await buildSystem({
    mbc: 1,
    name: SYSTEM,
    // Nothing listens here: MBC_REGISTRY_ENDPOINTS must be what the processes use.
    registry: { backend: "etcd", endpoints: ["http://127.0.0.1:9"], heartbeat: `${HEARTBEAT_MS}ms`, ttl: `${TTL_MS}ms` },
    sources: { input: { type: "http", port: 8080, batch: { maxRecords: 50, maxWait: "50ms" }, to: "sink" } },
    services: { sink: { handler: "builtin:jsonl-sink", config: { path: "out/sink.jsonl" } } },
  });
  const systemPath = join(sys.bundle, "..", "system.json");
  const system = JSON.parse(readFileSync(systemPath, "utf8")) as {
    model: { sources: { port: number | null }[]; services: { port: number; instances: { port: number | null }[] }[] };
  };
  for (const source of system.model.sources) source.port = SOURCE_PORT;
  for (const service of system.model.services) {
    service.port = SINK_PORT;
    for (const instance of service.instances) instance.port = SINK_PORT;
  }
  writeFileSync(systemPath, `${JSON.stringify(system, null, 2)}\n`);
  dirs.sink = tempDir("mbc-mh-sink-host-");
  dirs.source = tempDir("mbc-mh-source-host-");
}

/** A process on its host, as a unit of that host would run it: its own data and state folders. */
function runOn(host: "sink" | "source"): RuntimeChild {
  const args = host === "sink" ? ["--role", "service", "--name", "sink", "--instance", "0"] : ["--role", "source", "--name", "input"];
  return spawnRuntime(sys.bundle, args, {
    wrap: ["ip", "netns", "exec", NS[host]],
    env: {
      MBC_DATA_DIR: join(dirs[host], "data"),
      MBC_STATE_DIR: join(dirs[host], "state"),
      MBC_BIND: ADDR[host],
      MBC_ADVERTISE_HOST: ADDR[host],
      MBC_REGISTRY_ENDPOINTS: ETCD_URL,
    },
  });
}

const SINK_KEY = `/mbc/${SYSTEM}/sink/0`;
const SINK_URL = `http://${ADDR.sink}:${SINK_PORT}`;
const SOURCE_URL = `http://${ADDR.source}:${SOURCE_PORT}`;
const sinkFile = () => join(dirs.sink, "data", "out", "sink.jsonl");

let sink: RuntimeChild;
let source: RuntimeChild;
/** The ids the source acknowledged (202), in every test. */
const acked: string[] = [];
let posted = 0;

/** Posts `count` new records from the source's host; returns the answer's status. */
async function post(count: number): Promise<number> {
  const records = Array.from({ length: count }, (_, k) => record("mh", posted + k));
  posted += count;
  const answer = await hostHttp(NS.source, "POST", `${SOURCE_URL}/records`, records, 30_000);
  if (answer.status === 202) acked.push(...records.map((r) => r.id));
  return answer.status;
}

/** Every acknowledged record stored once, and nothing stored that was not acknowledged. */
async function expectStoredOnce(): Promise<void> {
  await waitUntil(() => acked.every((id) => readIds(sinkFile()).ids.has(id)), `all ${acked.length} acknowledged records in the sink`, 120_000, 200);
  const { ids, bad } = readIds(sinkFile());
  expect(bad).toBe(0);
  const twice = [...ids].filter(([, n]) => n !== 1).map(([id]) => id);
  expect(twice).toEqual([]);
  expect([...ids.keys()].sort()).toEqual([...acked].sort());
}

async function sinkRegistered(pid: number): Promise<boolean> {
  return (await registered()).get(SINK_KEY)?.pid === pid;
}

async function sourceReady(): Promise<boolean> {
  return (await hostHttp(NS.source, "GET", `${SOURCE_URL}/readyz`)).status === 200;
}

async function sourceMetric(name: string): Promise<number> {
  const res = await hostHttp(NS.source, "GET", `${SOURCE_URL}/metrics`);
  if (res.status !== 200) throw new Error(`metrics answered ${res.status}`);
  return metricValue(res.text, name);
}

describe.skipIf(netnsTool.skip || etcdTool.skip)("one system across three hosts (network namespaces) with the etcd registry", () => {
  beforeAll(async () => {
    assertTool(netnsTool);
    assertTool(etcdTool);
    process.on("exit", onExit);
    removeStaleNamespaces();
    makeNetwork();
    await startEtcd();
    await build();
    sink = runOn("sink");
    await waitUntil(() => sinkRegistered(sink.pid), "the sink to register in etcd", 60_000, 200);
    source = runOn("source");
    await waitUntil(sourceReady, "the source to see the sink", 60_000, 200);
  }, 180_000);

  afterAll(async () => {
    await killAll();
    if (etcdProc !== null && etcdProc.exitCode === null && etcdProc.signalCode === null) {
      const proc = etcdProc;
      const gone = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGKILL");
      await gone;
    }
    etcdProc = null;
    removeNamespaces();
    process.off("exit", onExit);
    for (const dir of [dirs.sink, dirs.source]) if (dir !== "") removeDir(dir);
    cleanupAll();
  });

  it("records posted to the source on one host are stored once by the sink on another; the key holds the advertised URL", async () => {
    expect((await registered()).get(SINK_KEY)).toMatchObject({ url: SINK_URL, weight: 1, pid: sink.pid });
    // Nothing listens on loopback on another host: the address advertised is the one that works.
    for (let k = 0; k < 4; k++) expect(await post(100)).toBe(202);
    await expectStoredOnce();
    expect(await sourceMetric("mbc_batches_waiting")).toBe(0);
  });

  it("the sink host's process killed: the source keeps what it acknowledges uncommitted; the sink restarted, all of it is stored once", async () => {
    sink.kill("SIGKILL");
    await sink.exited;
    const before = readIds(sinkFile()).ids.size;
    for (let k = 0; k < 3; k++) expect(await post(100)).toBe(202);
    // The key goes with the lease; the source then has no live sink and says so.
    await waitUntil(async () => !(await registered()).has(SINK_KEY), "etcd to expire the killed sink's key", 2 * TTL_MS + 1000, 100);
    await waitUntil(
      async () => {
        const ready = await hostHttp(NS.source, "GET", `${SOURCE_URL}/readyz`);
        return ready.status === 503 && ready.text.includes("no live instance of sink");
      },
      "the source's discovery to drop the sink",
      2 * (TTL_MS + HEARTBEAT_MS) + 1000,
      100,
    );
    expect(await post(100)).toBe(202);
    await waitUntil(async () => (await sourceMetric("mbc_batches_waiting")) > 0, "the source to hold batches waiting", 60_000, 200);
    expect(readIds(sinkFile()).ids.size).toBe(before);

    sink = runOn("sink");
    await waitUntil(() => sinkRegistered(sink.pid), "the restarted sink to register", 60_000, 200);
    expect((await registered()).get(SINK_KEY)?.url).toBe(SINK_URL);
    await expectStoredOnce();
    await waitUntil(async () => (await sourceMetric("mbc_batches_waiting")) === 0, "the source to commit every batch", 60_000, 200);
  });

  it("the sink host's link cut for longer than the ttl, then restored: nothing acknowledged is lost or stored twice", async () => {
    expect(await post(100)).toBe(202);
    mustIp("-n", NS.etcd, "link", "set", "v-sink", "down");
    try {
      for (let k = 0; k < 3; k++) expect(await post(100)).toBe(202);
      // Cut off, the sink's lease runs out: etcd drops its key, the source its instance.
      await waitUntil(async () => !(await registered()).has(SINK_KEY), "etcd to expire the cut-off sink's key", 2 * TTL_MS + 1000, 100);
      await waitUntil(
        async () => (await hostHttp(NS.source, "GET", `${SOURCE_URL}/readyz`)).text.includes("no live instance of sink"),
        "the source's discovery to drop the sink",
        2 * (TTL_MS + HEARTBEAT_MS) + 1000,
        100,
      );
      expect(await post(100)).toBe(202);
    } finally {
      mustIp("-n", NS.etcd, "link", "set", "v-sink", "up");
    }
    // The same process registers again once etcd answers it.
    await waitUntil(() => sinkRegistered(sink.pid), "the sink to register again", 60_000, 200);
    await expectStoredOnce();
    await waitUntil(async () => (await sourceMetric("mbc_batches_waiting")) === 0, "the source to commit every batch", 60_000, 200);
    // Neither process gave up through the cut.
    expect(sink.proc.exitCode).toBeNull();
    expect(source.proc.exitCode).toBeNull();
  });
});
