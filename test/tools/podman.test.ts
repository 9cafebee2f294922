/**
 * Real runs of what `mbc build` writes for the design documents' example, under rootful Podman
 * (see helpers/podman.ts for how it runs with no Docker engine and no systemd on the host):
 *
 * - compose: `docker-compose up -d` against `podman system service` brings every container up
 *   and healthy in `depends_on` order (podman runs healthchecks only when asked, so the test
 *   asks, as a timer would), records posted to the published source port reach the jsonl sink
 *   exactly once, a killed instance is restarted by its restart policy, `down -v` removes it all;
 * - systemd: systemd as PID 1 in a container whose /usr is this machine's, `install.sh` installs
 *   and starts the target, every unit runs with its hardening, records reach the sink, a
 *   `kill -9`ed instance is restarted by systemd and nothing is lost, `uninstall.sh` removes the
 *   units and keeps the data.
 */
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runMbc } from "../helpers/cli.js";
import { makePodman, nodeImage, type Podman, type PodmanService, podmanTool, startService } from "../helpers/podman.js";
import { freePorts, removeDir, repoRoot, tempDir, waitUntil } from "../helpers/runtime.js";
import { assertTool } from "../helpers/tools.js";

const execFileAsync = promisify(execFile);
const example = join(repoRoot, "examples", "01-design-document");

/**
 * A copy of the example, with `edit` applied to its spec text; returns the folder. The copy's
 * timeouts are raised (data-processing 5s → 60s, result-storage 1s → 20s): in CI the containers
 * share two cores and one disk with the other test files, an fsync there can take seconds, and a
 * batch that times out three times is dead-lettered, which these tests would read as a loss.
 */
function exampleCopy(edit: (yaml: string) => string): string {
  const dir = tempDir("mbc-podman-spec-");
  cpSync(example, dir, { recursive: true });
  const spec = join(dir, "microbatch.yaml");
  const text = readFileSync(spec, "utf8");
  const relaxed = text.replace(/^( {4}timeout:) 5s$/m, "$1 60s").replace(/^( {4}timeout:) 1s$/m, "$1 20s");
  expect(relaxed.match(/^ {4}timeout: (60|20)s$/gm)).toHaveLength(2);
  writeFileSync(spec, edit(relaxed));
  return dir;
}

function build(dir: string, target: string): string {
  const r = runMbc(["build", "microbatch.yaml", "--target", target, "-o", "build"], { cwd: dir });
  expect(r.status, r.stderr).toBe(0);
  return join(dir, "build", target);
}

/** `count` NDJSON records with ids from `first`. */
function records(first: number, count: number): string {
  return Array.from({ length: count }, (_, k) => JSON.stringify({ id: first + k })).join("\n");
}

/** Ids of the records in a jsonl text; fails on a line that is not a record of ours. */
function ids(jsonl: string): number[] {
  return jsonl
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => (JSON.parse(l) as { id: number }).id);
}

function expectExactlyOnce(found: number[], count: number): void {
  const sorted = [...found].sort((a, b) => a - b);
  expect(sorted.length).toBe(count);
  expect(new Set(sorted).size).toBe(count);
  expect(sorted[0]).toBe(0);
  expect(sorted[count - 1]).toBe(count - 1);
}

/** How a test posts records to the source and reads the ids the sink holds. */
interface Pipeline {
  post(first: number, count: number): Promise<void>;
  sinkIds(): Promise<number[]>;
  /** What the system's processes logged last: shown when the records do not arrive. */
  logs(): Promise<string>;
}

/** Posts requests `from`..`to`-1 of 100 records each, then waits for the sink to hold every record posted so far, once. */
async function deliver(p: Pipeline, from: number, to: number): Promise<void> {
  for (let k = from; k < to; k++) await p.post(k * 100, 100);
  const total = to * 100;
  let seen = "nothing read";
  try {
    await waitUntil(
      async () => {
        try {
          const n = (await p.sinkIds()).length;
          seen = `${n} records`;
          return n >= total;
        } catch (err) {
          seen = `a failed read: ${(err as Error).message}`;
          return false;
        }
      },
      `${total} records in the sink`,
      // Delivery takes a second or two; on a loaded machine (the other test files start runtimes
      // too) it once took more than a minute.
      150_000,
      500,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message} (last seen: ${seen})\n${await p.logs().catch((e: Error) => e.message)}`);
  }
  expectExactlyOnce(await p.sinkIds(), total);
}

/** Prints a file inside a container that has node and nothing else. */
const CAT = "process.stdout.write(require('fs').readFileSync(process.argv[1],'utf8'))";
/** Prints the mbc_ lines of a /metrics page, or why it could not be read (5 s at most). */
const PROBE =
  "fetch(process.argv[1],{signal:AbortSignal.timeout(5000)}).then((r)=>r.text()).then((t)=>console.log(t.split('\\n').filter((l)=>l.startsWith('mbc_')).join('\\n')),(e)=>console.log('unreachable:',e.message,e.cause?.code??e.cause?.message??''))";
/** Lists a folder: name, size, modification time; the content of lock files. */
const LIST =
  "const fs=require('fs'),p=require('path'),d=process.argv[1];for(const f of fs.readdirSync(d)){const s=fs.statSync(p.join(d,f));console.log(f,s.size,s.mtime.toISOString());if(f.endsWith('.lock'))console.log(' ',fs.readFileSync(p.join(d,f),'utf8'))}";

const composeTool = podmanTool("podman compose run", ["docker-compose", "tar", "ldd"]);

describe.skipIf(composeTool.skip)("the compose project runs under docker-compose and podman", () => {
  let podman: Podman;
  let service: PodmanService | undefined;
  let specDir: string;
  let projectDir: string;
  let project: string;
  let port: number;

  const compose = async (args: readonly string[], timeoutMs = 240_000) => {
    const { stdout, stderr } = await execFileAsync("docker-compose", [...args], {
      cwd: projectDir,
      env: { ...podman.env, DOCKER_HOST: service?.dockerHost ?? "" },
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout + stderr;
  };
  const containers = async (): Promise<string[]> =>
    (await podman.runAsync(["ps", "-a", "--filter", `label=com.docker.compose.project=${project}`, "--format", "{{.Names}}"])).split("\n").filter(Boolean);
  const health = async (name: string) => (await podman.runAsync(["inspect", "--format", "{{.State.Health.Status}}", name])).trim();
  const container = (name: string) => `${project}_${name}_1`;
  const logs = async () => {
    const out: string[] = [];
    for (const name of await containers()) {
      const { stdout, stderr } = await execFileAsync("podman", ["logs", "--tail", "20", name], { env: podman.env }).catch((e: Error) => ({
        stdout: "",
        stderr: e.message,
      }));
      out.push(`--- ${name}\n${stdout}${stderr}`);
    }
    // The sink as a processor reaches it (network and state), and its folder (a lock left behind?).
    const probe: [string, string, string][] = [
      [container("data-processing-0"), PROBE, "http://result-storage-0:9102/metrics"],
      [container("result-storage-0"), LIST, "/var/lib/mbc/data/data"],
    ];
    for (const [name, script, arg] of probe) {
      const { stdout, stderr } = await execFileAsync("podman", ["exec", name, "node", "-e", script, arg], { env: podman.env, timeout: 20_000 }).catch(
        (e: Error) => ({ stdout: "", stderr: e.message }),
      );
      out.push(`--- ${name}: ${arg}\n${stdout}${stderr}`);
    }
    return out.join("\n");
  };
  const sinkIds = async () => ids(await podman.runAsync(["exec", container("result-storage-0"), "node", "-e", CAT, "/var/lib/mbc/data/data/results.jsonl"]));
  const post = async (first: number, count: number) => {
    const res = await fetch(`http://127.0.0.1:${port}/records`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: records(first, count),
      signal: AbortSignal.timeout(10_000),
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { accepted: number }).accepted).toBe(count);
  };

  beforeAll(async () => {
    assertTool(composeTool);
    assertBuilt();
    podman = makePodman();
    const image = nodeImage(podman);
    port = await freePorts(1);
    project = `mbc-podman-${process.pid}`;
    specDir = exampleCopy((yaml) =>
      yaml
        .replace(/^name: design-example$/m, `name: ${project}`)
        .replace(/^( {4}port:) 8080$/m, `$1 ${port}`)
        .concat(`\ntargets:\n  compose:\n    image: ${image}\n`),
    );
    projectDir = build(specDir, "compose");
    expect(readFileSync(join(projectDir, ".env"), "utf8")).toContain(`COMPOSE_PROJECT_NAME=${project}`);
    service = await startService(podman);
  }, 180_000);

  afterAll(async () => {
    if (service) {
      await compose(["down", "-v", "--timeout", "5"]).catch(() => undefined);
      await service.stop();
    }
    if (podman) removeDir(podman.dir);
    if (specDir) removeDir(specDir);
  }, 120_000);

  it("comes up healthy in depends_on order", async () => {
    // docker-compose waits for each dependency to turn healthy; podman only runs a healthcheck
    // when asked, so ask every second, as podman's systemd timers would.
    let pumping = true;
    const pump = (async () => {
      while (pumping) {
        for (const name of await containers().catch(() => [])) {
          await podman.runAsync(["healthcheck", "run", name], 20_000).catch(() => undefined);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    try {
      await compose(["up", "-d"]);
    } finally {
      pumping = false;
      await pump;
    }
    const names = (await containers()).sort();
    expect(names).toEqual(["data-processing-0", "data-processing-1", "input", "registry", "result-storage-0"].map(container).sort());
    for (const name of names) {
      await podman.runAsync(["healthcheck", "run", name], 20_000).catch(() => undefined);
      expect(await health(name), name).toBe("healthy");
    }
  }, 300_000);

  it("carries records posted to the source to the sink exactly once", async () => {
    await deliver({ post, sinkIds, logs }, 0, 10);
  }, 240_000);

  it("restarts a killed instance (restart: on-failure) and loses nothing", async () => {
    const name = container("data-processing-0");
    const before = Number((await podman.runAsync(["inspect", "--format", "{{.RestartCount}}", name])).trim());
    // A crash, not a `podman kill` (a stop by hand is never restarted): SIGKILL to node, the
    // child of the container's init (init: true), which then exits 137.
    const init = Number((await podman.runAsync(["inspect", "--format", "{{.State.Pid}}", name])).trim());
    const children = readFileSync(`/proc/${init}/task/${init}/children`, "utf8").trim().split(/\s+/).map(Number);
    expect(children.length).toBe(1);
    process.kill(children[0] as number, "SIGKILL");
    await waitUntil(
      async () => {
        const [state, restarts] = (await podman.runAsync(["inspect", "--format", "{{.State.Status}} {{.RestartCount}}", name])).trim().split(" ");
        return state === "running" && Number(restarts) > before;
      },
      "podman to restart the killed instance",
      60_000,
      500,
    );
    await deliver({ post, sinkIds, logs }, 10, 20);
  }, 300_000);

  it("comes down with down -v: no container, no volume left", async () => {
    await compose(["down", "-v", "--timeout", "10"]);
    expect(await containers()).toEqual([]);
    const volumes = (await podman.runAsync(["volume", "ls", "--format", "{{.Name}}"])).split("\n").filter((v) => v.startsWith(`${project}_`));
    expect(volumes).toEqual([]);
  }, 120_000);
});

const systemdBinary = "/lib/systemd/systemd";
const systemdTool = podmanTool("podman systemd run", ["tar"], () => {
  // The container's /usr is this machine's: systemd and node must be there.
  for (const file of [systemdBinary, "/usr/bin/node"]) if (!existsSync(file)) return `${file} is missing (the container borrows this machine's /usr)`;
  return null;
});

describe.skipIf(systemdTool.skip)("the systemd units run under systemd as PID 1", () => {
  let podman: Podman;
  let root: string;
  let specDir: string;
  let name: string;
  const prefix = "mbc-design-example";
  const sink = "/opt/mbc/design-example/data/data/results.jsonl";

  const exec = (args: readonly string[], timeoutMs = 60_000) => podman.runAsync(["exec", name, ...args], timeoutMs);
  const show = async (unit: string, prop: string) => (await exec(["systemctl", "show", "--value", "-p", prop, unit])).trim();
  const sinkIds = async () => ids(await exec(["node", "-e", CAT, sink]));
  const logs = () => exec(["journalctl", "--no-pager", "-n", "80", "-u", `${prefix}*`]);
  const post = async (first: number, count: number) => {
    const script = `fetch('http://127.0.0.1:8080/records',{method:'POST',headers:{'content-type':'application/x-ndjson'},body:process.argv[1],signal:AbortSignal.timeout(10000)}).then(async(r)=>{process.stdout.write(r.status+' '+await r.text())})`;
    const out = await exec(["node", "-e", script, records(first, count)]);
    expect(out).toMatch(new RegExp(`^202 .*"accepted":${count}`));
  };
  const units = [
    `${prefix}-registry.service`,
    `${prefix}-source-input.service`,
    `${prefix}-data-processing@0.service`,
    `${prefix}-data-processing@1.service`,
    `${prefix}-result-storage@0.service`,
  ];

  beforeAll(async () => {
    assertTool(systemdTool);
    assertBuilt();
    podman = makePodman();
    specDir = exampleCopy((yaml) => yaml);
    const out = build(specDir, "systemd");
    // A root folder whose /usr is this machine's, mounted read-only: systemd, node, the shell and
    // systemd-sysusers come from there; the rest is what a fresh Debian root has.
    root = join(podman.dir, "root");
    for (const d of ["etc", "var", "run", "tmp", "root", "usr", "opt", "srv"]) mkdirSync(join(root, d), { recursive: true });
    for (const d of ["bin", "lib", "lib64", "sbin"]) symlinkSync(`usr/${d}`, join(root, d));
    writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    writeFileSync(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    writeFileSync(join(root, "etc/machine-id"), "");
    symlinkSync("../usr/lib/os-release", join(root, "etc/os-release"));
    cpSync(out, join(root, "build"), { recursive: true });
    name = `mbc-systemd-${process.pid}`;
    await podman.runAsync(["run", "-d", "--name", name, "--systemd=always", "-v", "/usr:/usr:ro", "--rootfs", root, systemdBinary]);
    // Booted: "running", or "degraded" with the failed units listed below.
    let state = "";
    await waitUntil(
      async () => {
        state = (await exec(["sh", "-c", "systemctl is-system-running || true"])).trim();
        return state === "running" || state === "degraded";
      },
      "systemd to boot",
      120_000,
      500,
    );
    const failed = await exec(["systemctl", "--failed", "--no-legend", "--plain"]);
    expect(failed.trim(), "units that failed at boot").toBe("");
  }, 180_000);

  afterAll(async () => {
    if (podman) {
      await podman.runAsync(["rm", "-f", "-t", "5", name]).catch(() => undefined);
      removeDir(podman.dir);
    }
    if (specDir) removeDir(specDir);
  }, 60_000);

  it("install.sh installs and starts the target: every unit active", async () => {
    const out = await exec(["sh", "/build/install.sh"], 120_000);
    expect(out).toContain("started");
    await waitUntil(async () => (await Promise.all(units.map((u) => show(u, "ActiveState")))).every((s) => s === "active"), "every unit active", 60_000, 500);
    expect(await show(`${prefix}.target`, "ActiveState")).toBe("active");
    // The hardening is in force, not merely written: the process runs as the system user.
    expect(await show(`${prefix}-data-processing@0.service`, "User")).toBe("mbc");
    const pid = await show(`${prefix}-data-processing@0.service`, "MainPID");
    expect(await exec(["stat", "-c", "%U", `/proc/${pid}`])).toMatch(/^mbc\s*$/);
  }, 180_000);

  it("carries records to the sink exactly once", async () => {
    await deliver({ post, sinkIds, logs }, 0, 10);
  }, 240_000);

  it("systemd restarts a kill -9ed instance and nothing is lost", async () => {
    const unit = `${prefix}-data-processing@0.service`;
    const pid = await show(unit, "MainPID");
    expect(Number(await show(unit, "NRestarts"))).toBe(0);
    await exec(["sh", "-c", `kill -9 ${pid}`]);
    await waitUntil(
      async () => Number(await show(unit, "NRestarts")) >= 1 && (await show(unit, "ActiveState")) === "active" && (await show(unit, "MainPID")) !== pid,
      "systemd to restart the instance",
      60_000,
      250,
    );
    await deliver({ post, sinkIds, logs }, 10, 20);
  }, 300_000);

  it("install.sh --only runs only the selected roles here: the others stop; without --only they all run again", async () => {
    const out = await exec(["sh", "/build/install.sh", "--only", "registry,source/input,service/result-storage"], 120_000);
    expect(out).toContain("started");
    const selected = [`${prefix}-registry.service`, `${prefix}-source-input.service`, `${prefix}-result-storage@0.service`];
    const others = [`${prefix}-data-processing@0.service`, `${prefix}-data-processing@1.service`];
    await waitUntil(
      async () =>
        (await Promise.all(selected.map((u) => show(u, "ActiveState")))).every((s) => s === "active") &&
        (await Promise.all(others.map((u) => show(u, "ActiveState")))).every((s) => s === "inactive"),
      "the selected units active, the others stopped",
      60_000,
      500,
    );
    expect((await show(`${prefix}.target`, "Wants")).split(" ").sort()).toEqual([...selected].sort());
    await exec(["sh", "/build/install.sh"], 120_000);
    await waitUntil(
      async () => (await Promise.all(units.map((u) => show(u, "ActiveState")))).every((s) => s === "active"),
      "every unit active again",
      60_000,
      500,
    );
  }, 300_000);

  it("uninstall.sh stops and removes the units and keeps the data", async () => {
    await exec(["sh", "/build/uninstall.sh"], 120_000);
    const left = await exec(["systemctl", "list-units", "--all", "--no-legend", "--plain", `${prefix}*`]);
    expect(left.trim()).toBe("");
    for (const u of [...units.filter((x) => !x.includes("@")), `${prefix}.target`]) {
      expect(await exec(["sh", "-c", `test -e /etc/systemd/system/${u} && echo present || echo gone`])).toBe("gone\n");
    }
    expect((await sinkIds()).length).toBe(2000);
  }, 120_000);
});
