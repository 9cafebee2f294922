/**
 * The compose target's healthchecks work against the real runtime: each process's check passes
 * once it is ready to serve (registered, not merely alive) and fails once it stopped.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { build, writeOut } from "../helpers/compose.js";
import { bundleEntry, cleanupAll, freePorts, killAll, repoRoot, spawnRuntime, waitUntil } from "../helpers/runtime.js";

describe("the healthchecks work against the real runtime", () => {
  afterAll(async () => {
    await killAll();
    cleanupAll();
  });

  it("a ready process passes, an alive but unregistered one and a stopped one fail, and a source without a port answers on MBC_PORT", async () => {
    const [registryPort, sinkPort, tickPort] = [await freePorts(1), await freePorts(1), await freePorts(1)];
    const spec = `
mbc: 1
name: health
registry: { port: ${registryPort} }
sources:
  tick: { type: generator, rate: 5, to: sink }
services:
  sink: { handler: builtin:log, port: ${sinkPort} }
`;
    const bundle = await bundleEntry({ file: join(repoRoot, "src", "runtime", "main.ts") }, "mbc-runtime");
    const built = build(spec, {}, { runtime: readFileSync(bundle.file) });
    const dir = writeOut(built);
    const runtime = join(dir, "runtime", "mbc-runtime.mjs");
    // Inside its container the source listens on MBC_PORT; on this host, on a free port instead,
    // and its check is pointed there.
    const tickEnv = built.compose.services.tick?.environment as Record<string, string>;
    const containerPort = `127.0.0.1:${tickEnv.MBC_PORT}/`;
    const check = (service: string) => {
      const test = (built.compose.services[service]?.healthcheck as { test: string[] } | undefined)?.test ?? [];
      expect(test.slice(0, 3)).toEqual(["CMD", "node", "-e"]);
      // Compose would unescape $$; these scripts hold none.
      expect(test[3]).not.toContain("$");
      let script = test[3] as string;
      if (service === "tick") {
        expect(script).toContain(containerPort);
        script = script.replace(containerPort, `127.0.0.1:${tickPort}/`);
      }
      return spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 10_000 }).status;
    };
    const env = (name: string) => ({
      MBC_REGISTRY_URL: `http://127.0.0.1:${registryPort}`,
      MBC_BIND: "127.0.0.1",
      MBC_ADVERTISE_HOST: "127.0.0.1",
      MBC_DATA_DIR: join(dir, "data", name),
      MBC_STATE_DIR: join(dir, "state"),
    });
    // The sink first, with no registry: it is alive, but nobody can find it, and depends_on must
    // not start what sends to it.
    const sink = spawnRuntime(runtime, ["--role", "service", "--name", "sink", "--instance", "0"], { env: env("sink") });
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${sinkPort}/healthz`).catch(() => null))?.status === 200, "the sink to be alive", 15_000, 200);
    expect(check("sink-0")).toBe(1);
    const registry = spawnRuntime(runtime, ["--role", "registry"], { env: env("registry") });
    await waitUntil(() => check("registry") === 0, "the registry's healthcheck to pass", 15_000, 200);
    await waitUntil(() => check("sink-0") === 0, "the sink's healthcheck to pass once it registered", 15_000, 200);
    const source = spawnRuntime(runtime, ["--role", "source", "--name", "tick"], { env: { ...env("tick"), MBC_PORT: String(tickPort) } });
    await waitUntil(() => check("tick") === 0, "the source's healthcheck to pass", 15_000, 200);
    for (const child of [source, sink]) {
      child.kill("SIGTERM");
      await child.waitForExit();
    }
    expect(check("sink-0")).toBe(1);
    registry.kill("SIGTERM");
    await registry.waitForExit();
    expect(check("registry")).toBe(1);
    bundle.cleanup();
  }, 60_000);
});
