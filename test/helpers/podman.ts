/**
 * Real runs of the generated artefacts under rootful Podman, with no Docker engine and no
 * systemd as PID 1 on the host:
 *
 * - every podman call reads a containers.conf of our own (CONTAINERS_CONF): the runc runtime,
 *   cgroupfs, file events and raised ulimits, so nothing of the machine's configuration is
 *   changed and the runs behave the same everywhere;
 * - the image is made with `podman import` from a root folder holding this machine's node binary
 *   and the libraries `ldd` names: nothing is pulled from a registry;
 * - `docker-compose` talks to `podman system service` through DOCKER_HOST.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, realpathSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { tempDir, waitUntil } from "./runtime.js";
import { type Tool, tool } from "./tools.js";

const execFileAsync = promisify(execFile);

/** The configuration every podman call of the tests reads. */
export const CONTAINERS_CONF_TEXT = `[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`;

/** Where podman looks for the container init binary (`init: true`). */
export const PODMAN_INIT = "/usr/libexec/podman/catatonit";

export interface Podman {
  /** The folder holding containers.conf, the service socket and anything else of the run. */
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Runs podman, throws with its output on a non-zero exit. */
  run(args: readonly string[], timeoutMs?: number): string;
  /** The same, without blocking the event loop. */
  runAsync(args: readonly string[], timeoutMs?: number): Promise<string>;
}

/**
 * Probe: rootful podman with runc, the commands named in `also`, and whatever `extra` checks
 * (null when fine, else why not).
 */
export function podmanTool(name: string, also: readonly string[], extra: () => string | null = () => null): Tool {
  return tool(name, () => {
    if (process.platform !== "linux") return "podman runs containers on Linux only";
    if (process.getuid?.() !== 0) return "the podman runs need root (rootful podman)";
    for (const command of ["podman", ...also]) {
      const found = spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" });
      if (found.status !== 0) return `${command} is not installed (Debian: apt-get install podman runc docker-compose)`;
    }
    const runc = spawnSync("sh", ["-c", "command -v runc"], { encoding: "utf8" });
    if (runc.status !== 0) return "runc is not installed (Debian: apt-get install runc)";
    // Compose's `init: true` runs podman's container init, which the Docker-compatible API
    // looks for at podman's default path only (containers.conf's init_path is not read there).
    // Debian's podman recommends catatonit | tini | dumb-init, so it is often missing.
    if (!existsSync(PODMAN_INIT)) return `${PODMAN_INIT} is missing (Debian: apt-get install catatonit)`;
    return extra();
  });
}

export function makePodman(): Podman {
  const dir = tempDir("mbc-podman-");
  const conf = join(dir, "containers.conf");
  writeFileSync(conf, CONTAINERS_CONF_TEXT);
  const env = { ...process.env, CONTAINERS_CONF: conf };
  const fail = (args: readonly string[], status: unknown, out: string, err: string) =>
    new Error(`podman ${args.join(" ")} failed (${String(status)}):\n${out}\n${err}`);
  return {
    dir,
    env,
    run(args, timeoutMs = 120_000) {
      const r = spawnSync("podman", args, { env, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
      if (r.status !== 0) throw fail(args, r.status ?? r.signal ?? r.error, r.stdout ?? "", r.stderr ?? "");
      return r.stdout;
    },
    async runAsync(args, timeoutMs = 120_000) {
      try {
        const { stdout } = await execFileAsync("podman", [...args], { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
        return stdout;
      } catch (err) {
        const e = err as { code?: unknown; stdout?: string; stderr?: string };
        throw fail(args, e.code, e.stdout ?? "", e.stderr ?? String(err));
      }
    },
  };
}

/** The shared libraries a binary loads, as `ldd` lists them (absolute paths). */
function sharedLibraries(binary: string): string[] {
  const r = spawnSync("ldd", [binary], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ldd ${binary} failed: ${r.stderr}`);
  const libs: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/**
 * An image holding only /usr/bin/node (this machine's node) and its libraries, imported once and
 * tagged by node's version; returns its name.
 */
export function nodeImage(podman: Podman): string {
  const name = `localhost/mbc-test-node:${process.version.slice(1)}`;
  const exists = spawnSync("podman", ["image", "exists", name], { env: podman.env });
  if (exists.status === 0) return name;
  const root = join(podman.dir, "image-root");
  const node = realpathSync(process.execPath);
  for (const d of ["usr/bin", "tmp", "etc"]) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(node, join(root, "usr/bin/node"));
  for (const lib of sharedLibraries(node)) {
    const target = join(root, lib);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(realpathSync(lib), target);
  }
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
  const tar = spawnSync("tar", ["-C", root, "-c", "."], { maxBuffer: 1024 * 1024 * 1024 });
  if (tar.status !== 0) throw new Error(`tar failed: ${String(tar.stderr)}`);
  const imp = spawnSync("podman", ["import", "--change", "ENV=PATH=/usr/bin", "-", name], {
    env: podman.env,
    input: tar.stdout,
    encoding: "utf8",
    maxBuffer: 16 * 1024 * 1024,
  });
  if (imp.status !== 0) throw new Error(`podman import failed: ${imp.stderr}`);
  return name;
}

export interface PodmanService {
  socket: string;
  dockerHost: string;
  stop(): Promise<void>;
}

/** `podman system service` on a socket of the run's folder, answering `/_ping`. */
export async function startService(podman: Podman): Promise<PodmanService> {
  const socket = join(podman.dir, "podman.sock");
  const child = spawn("podman", ["system", "service", "--time=0", `unix://${socket}`], { env: podman.env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => {
    stderr += b.toString("utf8");
  });
  const ping = () =>
    new Promise<boolean>((resolve) => {
      const req = request({ socketPath: socket, path: "/_ping", timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on("error", () => resolve(false));
      req.end();
    });
  try {
    await waitUntil(async () => existsSync(socket) && (await ping()), "podman system service to answer", 30_000, 200);
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }
  return {
    socket,
    dockerHost: `unix://${socket}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 5000).unref();
      }),
  };
}
