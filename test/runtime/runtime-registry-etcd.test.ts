/**
 * The etcd registry backend against a real etcd (Debian's etcd-server), started by this file on
 * ports it reserved, with its data in a temp folder; nothing here uses an etcd of the machine.
 * Without etcd the file is skipped with the reason (MBC_REQUIRE_TOOLS=1 makes that a failure).
 *
 * - A whole system (the built node target under its supervisor) with `registry.backend: etcd`:
 *   no registry process, records posted to its http source reach the sink.
 * - An instance killed without a word leaves discovery once its lease runs out; restarted at
 *   once, it waits for its old lease and registers again.
 * - A second copy of a running instance exits 2 naming the first.
 * - Over https, with the CA, a client certificate and a user and password (etcd with
 *   --client-cert-auth and authentication on; certificates made with openssl).
 *
 * Bounds on time are the configured value × 2 + 1 s; every other wait is on a condition.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { holderWaitMs } from "../../src/runtime/registry/etcd/registrar.js";
import { buildSystem, type E2ESystem, readIds, record, startSystem, stopEverything, waitReady } from "../helpers/e2e.js";
import { etcdArgs } from "../helpers/etcd.js";
import { freePortBlock } from "../helpers/ports.js";
import { cleanupAll, httpJson, type RuntimeChild, removeDir, spawnRuntime, tempDir, waitUntil } from "../helpers/runtime.js";
import { assertTool, tool } from "../helpers/tools.js";

const opensslTool = tool("openssl", () =>
  spawnSync("openssl", ["version"]).status === 0 ? null : "openssl is not installed (Debian: apt-get install openssl)",
);

const etcdTool = tool("etcd", () => {
  const probe = spawnSync("etcd", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) return "etcd is not installed (Debian: apt-get install etcd-server)";
  return null;
});

const HEARTBEAT_MS = 500;
const TTL_MS = 2000;
const SYSTEM = "etcd-shop";

interface Etcd {
  url: string;
  proc: ChildProcess;
  dir: string;
  output: string[];
}

let etcd: Etcd | null = null;
const extra: RuntimeChild[] = [];

async function startEtcd(tls: { dir: string } | null = null): Promise<Etcd> {
  const client = await freePortBlock(2);
  const peer = client + 1;
  const dir = tempDir("mbc-etcd-");
  const url = `${tls ? "https" : "http"}://127.0.0.1:${client}`;
  const tlsArgs = tls
    ? [
        "--cert-file",
        join(tls.dir, "server.pem"),
        "--key-file",
        join(tls.dir, "server.key"),
        "--trusted-ca-file",
        join(tls.dir, "ca.pem"),
        "--client-cert-auth",
      ]
    : [];
  const proc = spawn("etcd", [...etcdArgs({ dataDir: dir, clientUrl: url, peerUrl: `http://127.0.0.1:${peer}` }), ...tlsArgs], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  proc.stdout?.on("data", (d: Buffer) => output.push(d.toString()));
  proc.stderr?.on("data", (d: Buffer) => output.push(d.toString()));
  const started: Etcd = { url, proc, dir, output };
  try {
    await waitUntil(
      tls
        ? async () => (await tlsCall(tls.dir, url, "/v3/kv/range", { key: b64("/") })).status === 200
        : async () => (await httpJson("POST", `${url}/v3/kv/range`, { key: b64("/") }, {}, 1000)).status === 200,
      `etcd to answer at ${url}`,
      60_000,
      100,
    );
  } catch (err) {
    proc.kill("SIGKILL");
    throw new Error(`${(err as Error).message}\n${output.join("").slice(-2000)}`);
  }
  return started;
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/** One request to an etcd that wants TLS and a client certificate (the files in `dir`). */
function tlsCall(dir: string, url: string, path: string, body: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = httpsRequest(new URL(path, url), {
      method: "POST",
      ca: readFileSync(join(dir, "ca.pem")),
      cert: readFileSync(join(dir, "client.pem")),
      key: readFileSync(join(dir, "client.key")),
      headers: { "content-type": "application/json", ...(token ? { authorization: token } : {}) },
      timeout: 2000,
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text || "{}") as Record<string, unknown> });
        } catch {
          resolve({ status: res.statusCode ?? 0, json: { text } });
        }
      });
    });
    req.end(text);
  });
}

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in `dir`.
 * The client's has no CommonName: with authentication on, etcd's JSON gateway refuses a client
 * certificate that has one (it would not be used as the user, as it is over gRPC).
 */
function makeCertificates(dir: string): void {
  const ssl = (...args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=mbc test CA");
  for (const [name, cn] of [
    ["server", "127.0.0.1"],
    ["client", null],
  ] as const) {
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", cn === null ? "/O=mbc" : `/CN=${cn}`);
    ssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    );
  }
}

/** The instances registered in etcd under the system's prefix: key → value. */
async function registered(): Promise<Map<string, Record<string, unknown>>> {
  const prefix = `/mbc/${SYSTEM}/`;
  const end = `/mbc/${SYSTEM}0`;
  const res = await httpJson("POST", `${etcd?.url}/v3/kv/range`, { key: b64(prefix), range_end: b64(end) }, {}, 2000);
  const kvs = ((res.json as { kvs?: { key: string; value: string }[] } | null)?.kvs ?? []) as { key: string; value: string }[];
  return new Map(
    kvs.map((kv) => [Buffer.from(kv.key, "base64").toString(), JSON.parse(Buffer.from(kv.value, "base64").toString()) as Record<string, unknown>]),
  );
}

function spec(endpoint = etcd?.url): Record<string, unknown> {
  return {
    mbc: 1,
    name: SYSTEM,
    registry: { backend: "etcd", endpoints: [endpoint], heartbeat: `${HEARTBEAT_MS}ms`, ttl: `${TTL_MS}ms` },
    sources: { input: { type: "http", port: 8080, batch: { maxRecords: 50, maxWait: "50ms" }, to: "work" } },
    services: {
      work: { handler: "builtin:passthrough", instances: 2, to: "sink" },
      sink: { handler: "builtin:jsonl-sink", config: { path: "out/sink.jsonl" } },
    },
  };
}

/** One process of a built system, outside any supervisor (as a Compose service or a systemd unit runs it). */
function runInstance(sys: E2ESystem, service: string, instance: number): RuntimeChild {
  const child = spawnRuntime(sys.bundle, ["--role", "service", "--name", service, "--instance", String(instance)], {
    env: { MBC_DATA_DIR: sys.dataDir, MBC_STATE_DIR: sys.stateDir },
  });
  extra.push(child);
  return child;
}

describe.skipIf(etcdTool.skip)("the etcd registry backend against etcd", () => {
  beforeAll(async () => {
    assertTool(etcdTool);
    etcd = await startEtcd();
  }, 90_000);

  afterEach(async () => {
    for (const c of extra.splice(0)) c.kill("SIGKILL");
    await stopEverything();
  });

  afterAll(async () => {
    if (etcd !== null) {
      const proc = etcd.proc;
      const gone = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGTERM");
      await gone;
      removeDir(etcd.dir);
    }
    cleanupAll();
  });

  it("runs a whole system with no registry process: records posted to the source reach the sink", async () => {
    const sys = await buildSystem(spec());
    const run = startSystem(sys);
    await waitReady(sys, run.child);
    expect(Object.keys(run.childPids()).sort()).toEqual(["service:sink/0", "service:work/0", "service:work/1", "source:input"]);
    const keys = await registered();
    expect([...keys.keys()].sort()).toEqual([`/mbc/${SYSTEM}/sink/0`, `/mbc/${SYSTEM}/work/0`, `/mbc/${SYSTEM}/work/1`]);
    expect(keys.get(`/mbc/${SYSTEM}/work/1`)).toMatchObject({ url: `http://127.0.0.1:${sys.ports.services.work?.[1]}`, weight: 1 });

    const records = Array.from({ length: 200 }, (_, k) => record("etcd", k));
    const answer = await httpJson("POST", sys.sourceUrl("input"), records, {}, 30_000);
    expect(answer.status).toBe(202);
    const sink = sys.sinkFile("sink");
    await waitUntil(() => readIds(sink).ids.size === 200, "every record in the sink", 60_000, 100);
    const { ids } = readIds(sink);
    expect([...ids.values()].every((n) => n === 1)).toBe(true);
    // Both instances of work took batches: the source discovered them from etcd.
    const workLogs = [0, 1].map((k) => run.logsOf("service", "work", k).length);
    expect(workLogs.every((n) => n > 0)).toBe(true);
  }, 120_000);

  it("an instance killed without a word leaves discovery once its lease runs out; restarted, it registers again", async () => {
    const sys = await buildSystem(spec());
    const sinkKey = `/mbc/${SYSTEM}/sink/0`;
    const sink = runInstance(sys, "sink", 0);
    await waitUntil(async () => (await registered()).get(sinkKey)?.pid === sink.pid, "the sink to register", 60_000, 50);
    // A process upstream that discovers the sink: its /readyz says whether it sees a live one.
    const work = runInstance(sys, "work", 0);
    await waitUntil(async () => (await registered()).get(`/mbc/${SYSTEM}/work/0`)?.pid === work.pid, "work to register", 60_000, 50);
    const workUrl = (await registered()).get(`/mbc/${SYSTEM}/work/0`)?.url as string;
    await waitUntil(async () => (await httpJson("GET", `${workUrl}/readyz`)).status === 200, "work to see the sink", 60_000, 50);

    sink.kill("SIGKILL");
    await sink.exited;
    // Gone from etcd when its lease runs out, and from work's view at its next look.
    await waitUntil(async () => !(await registered()).has(sinkKey), "etcd to expire the killed sink's key", 2 * TTL_MS + 1000, 50);
    await waitUntil(
      async () => {
        const ready = await httpJson("GET", `${workUrl}/readyz`);
        return ready.status === 503 && JSON.stringify(ready.json).includes("no live instance of sink");
      },
      "work's discovery to drop the sink",
      2 * (TTL_MS + HEARTBEAT_MS) + 1000,
      50,
    );

    // Restarted while nothing holds its key: it registers, and work sees it again.
    const again = runInstance(sys, "sink", 0);
    await waitUntil(async () => (await registered()).get(sinkKey)?.pid === again.pid, "the restarted sink to register", 60_000, 50);
    await waitUntil(async () => (await httpJson("GET", `${workUrl}/readyz`)).status === 200, "work to see the sink again", 60_000, 50);
  }, 120_000);

  it("an instance restarted while its previous lease is alive waits for it, then registers", async () => {
    const sys = await buildSystem(spec());
    const key = `/mbc/${SYSTEM}/sink/0`;
    const first = runInstance(sys, "sink", 0);
    await waitUntil(async () => (await registered()).get(key)?.pid === first.pid, "the first to register", 60_000, 50);
    first.kill("SIGKILL");
    const again = runInstance(sys, "sink", 0);
    await waitUntil(async () => (await registered()).get(key)?.pid === again.pid, "the restarted instance to register", 60_000, 50);
    // It did not give up meanwhile.
    expect(again.proc.exitCode).toBeNull();
  }, 120_000);

  it("a second copy of a running instance exits 2 naming the first", async () => {
    const sys = await buildSystem(spec());
    const key = `/mbc/${SYSTEM}/work/0`;
    const first = runInstance(sys, "work", 0);
    await waitUntil(async () => (await registered()).get(key)?.pid === first.pid, "the first copy to register", 60_000, 50);
    const firstUrl = (await registered()).get(key)?.url as string;

    const second = runInstance(sys, "work", 0);
    // It waits (the holder might be a copy that just died) at most its configured wait: bound from when it starts waiting.
    await second.waitForLog((l) => String(l.msg).includes("is held in etcd by"), "the second copy to wait for the holder", 60_000);
    const exit = await second.waitForExit(2 * holderWaitMs(TTL_MS, HEARTBEAT_MS) + 1000);
    expect(exit.code).toBe(2);
    const said = second.lines.join("\n");
    expect(said).toContain(`service work instance 0 is already registered in etcd by the instance at ${firstUrl} (pid ${first.pid}`);
    // The first is untouched: still the holder, still ready.
    expect((await registered()).get(key)?.pid).toBe(first.pid);
    expect((await httpJson("GET", `${firstUrl}/readyz?scope=self`)).status).toBe(200);
  }, 120_000);
});

describe("the etcd backend's setup problems stop a process with exit 2 and what to fix (no etcd needed)", () => {
  afterEach(async () => {
    for (const c of extra.splice(0)) c.kill("SIGKILL");
    await stopEverything();
  });
  afterAll(() => cleanupAll());

  const offline = () => ({ ...spec(), registry: { backend: "etcd", endpoints: ["https://127.0.0.1:9"], ttl: "2s" } });

  it("--role registry: the backend has no registry process", async () => {
    const sys = await buildSystem(offline());
    const child = spawnRuntime(sys.bundle, ["--role", "registry"], { env: { MBC_DATA_DIR: sys.dataDir, MBC_STATE_DIR: sys.stateDir } });
    extra.push(child);
    const exit = await child.waitForExit(60_000);
    expect(exit.code).toBe(2);
    expect(child.lines.join("\n")).toContain("could not start: --role registry: this system's registry backend (etcd) runs no registry process of its own");
    expect(child.lines.join("\n")).not.toContain("stack");
  }, 120_000);

  it("the supervisor and a single process: an unreadable MBC_REGISTRY_CA", async () => {
    const sys = await buildSystem(offline());
    const env = { MBC_DATA_DIR: sys.dataDir, MBC_STATE_DIR: sys.stateDir, MBC_REGISTRY_CA: join(sys.root, "missing.pem") };
    for (const args of [[], ["--role", "service", "--name", "sink"]]) {
      const child = spawnRuntime(sys.bundle, args, { env });
      extra.push(child);
      const exit = await child.waitForExit(60_000);
      expect(exit.code, args.join(" ")).toBe(2);
      const said = child.logs().map((l) => String(l.msg));
      expect(said, args.join(" ")).toContain(
        `could not start: MBC_REGISTRY_CA: cannot read ${JSON.stringify(join(sys.root, "missing.pem"))} (ENOENT): give the path of a PEM file this process may read`,
      );
      expect(child.lines.join("\n")).not.toContain("stack");
    }
  }, 120_000);
});

describe.skipIf(etcdTool.skip || opensslTool.skip)("the etcd backend with TLS, a client certificate and a password", () => {
  let secure: Etcd | null = null;
  let certs = "";
  beforeAll(async () => {
    assertTool(etcdTool);
    assertTool(opensslTool);
    certs = tempDir("mbc-etcd-tls-");
    makeCertificates(certs);
    secure = await startEtcd({ dir: certs });
    // Authentication on: the root user, and a user for the system with the run of /mbc/.
    for (const [path, body] of [
      ["/v3/auth/user/add", { name: "root", password: "root-pw" }],
      ["/v3/auth/role/add", { name: "root" }],
      ["/v3/auth/user/grant", { user: "root", role: "root" }],
      ["/v3/auth/user/add", { name: "mbc", password: "s3cret" }],
      ["/v3/auth/role/add", { name: "mbc" }],
      ["/v3/auth/role/grant", { name: "mbc", perm: { permType: "READWRITE", key: b64("/mbc/"), range_end: b64("/mbc0") } }],
      ["/v3/auth/user/grant", { user: "mbc", role: "mbc" }],
      ["/v3/auth/enable", {}],
    ] as const) {
      const r = await tlsCall(certs, secure.url, path, body);
      if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.json)}`);
    }
  }, 120_000);

  afterEach(async () => {
    for (const c of extra.splice(0)) c.kill("SIGKILL");
    await stopEverything();
  });

  afterAll(async () => {
    if (secure !== null) {
      const proc = secure.proc;
      const gone = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGTERM");
      await gone;
      removeDir(secure.dir);
    }
    if (certs !== "") removeDir(certs);
    cleanupAll();
  });

  it("registers over https with the CA, the client certificate and the user's token; wrong credentials are said and retried", async () => {
    const url = secure?.url as string;
    const sys = await buildSystem(spec(url));
    const env = {
      MBC_DATA_DIR: sys.dataDir,
      MBC_STATE_DIR: sys.stateDir,
      MBC_REGISTRY_ENDPOINTS: url,
      MBC_REGISTRY_CA: join(certs, "ca.pem"),
      MBC_REGISTRY_CERT: join(certs, "client.pem"),
      MBC_REGISTRY_KEY: join(certs, "client.key"),
      MBC_REGISTRY_USER: "mbc",
    };
    const holder = async (key: string) => {
      const token = String((await tlsCall(certs, url, "/v3/auth/authenticate", { name: "root", password: "root-pw" })).json.token);
      const r = await tlsCall(certs, url, "/v3/kv/range", { key: b64(key) }, token);
      const kv = (r.json.kvs as { value: string }[] | undefined)?.[0];
      return kv === undefined ? null : (JSON.parse(Buffer.from(kv.value, "base64").toString()) as { pid: number });
    };
    const key = `/mbc/${SYSTEM}/sink/0`;

    const wrong = spawnRuntime(sys.bundle, ["--role", "service", "--name", "sink", "--instance", "0"], { env: { ...env, MBC_REGISTRY_PASSWORD: "wrong" } });
    extra.push(wrong);
    await wrong.waitForLog((l) => String(l.error ?? "").includes('etcd refused the credentials of MBC_REGISTRY_USER "mbc"'), "the refusal", 60_000);
    expect(wrong.proc.exitCode).toBeNull();
    expect(await holder(key)).toBeNull();
    wrong.kill("SIGKILL");
    await wrong.exited;

    const right = spawnRuntime(sys.bundle, ["--role", "service", "--name", "sink", "--instance", "0"], { env: { ...env, MBC_REGISTRY_PASSWORD: "s3cret" } });
    extra.push(right);
    await waitUntil(async () => (await holder(key))?.pid === right.pid, "the instance to register over TLS", 60_000, 100);
  }, 120_000);
});
