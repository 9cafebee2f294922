/**
 * The compose target: every generated compose.yaml is accepted by docker-compose (1.29, `config
 * -q`, no engine needed) and by the official Compose JSON Schema under ajv; hostile names and
 * values cannot add a key, a service or a path, and every value reaches Compose exactly; the
 * healthchecks work against the real runtime. Golden files are in test/build.test.ts.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { build, type ComposeFile, cases, hostileFiles, hostileSpec, undoDollars, writeOut } from "../helpers/compose.js";
import { cleanupAll } from "../helpers/runtime.js";
import { assertTool, tool } from "../helpers/tools.js";

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------

const composeTool = tool("docker-compose", () => {
  const r = spawnSync("docker-compose", ["version", "--short"], { encoding: "utf8" });
  if (r.error) return `docker-compose is not installed (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
  return r.status === 0 ? null : `docker-compose version failed: ${r.stderr.trim()}`;
});

describe.skipIf(composeTool.skip)("docker-compose config accepts every generated file", () => {
  beforeAll(() => assertTool(composeTool));
  afterAll(() => cleanupAll());

  const config = (dir: string, args: string[]) =>
    spawnSync("docker-compose", ["-f", "compose.yaml", "config", ...args], { cwd: dir, encoding: "utf8", env: { ...process.env, HOME: "/nonexistent-home" } });

  for (const c of cases) {
    it(c.name, () => {
      const dir = writeOut(build(c.spec, c.files, { pastConstraints: c.spec === hostileSpec }));
      const r = config(dir, ["-q"]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    });
  }

  it("and reads each hostile value back exactly", () => {
    const built = build(hostileSpec, hostileFiles, { pastConstraints: true });
    const r = config(writeOut(built), []);
    expect(r.status, r.stderr).toBe(0);
    // docker-compose prints `$` as `$$` again; a YAML 1.1 reader turns U+0085, U+2028 and U+2029 of
    // its output into line breaks, so that one value is compared above, not here.
    const out = parse(r.stdout, { version: "1.1" }) as ComposeFile;
    const env = out.services["proc-1"]?.environment as Record<string, string>;
    const proc = built.model.services.find((s) => s.name === "proc");
    for (const [k, v] of Object.entries(proc?.env ?? {})) {
      if (k.startsWith("MBC_") || k === "unicode") continue;
      expect(undoDollars(env[k]), k).toBe(v);
    }
    expect(Object.keys(out.services).sort()).toEqual(Object.keys(built.compose.services).sort());
  });

  it("and reads COMPOSE_PROJECT_NAME from .env", () => {
    const dir = writeOut(build(hostileSpec, hostileFiles, { pastConstraints: true }));
    // Compose interpolates from the project folder's .env: a probe file beside ours shows what it read.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose's interpolation syntax, on purpose
    writeFileSync(join(dir, "probe.yaml"), 'services:\n  probe:\n    image: "x"\n    labels: { project: "${COMPOSE_PROJECT_NAME}" }\n');
    const { COMPOSE_PROJECT_NAME: _, ...env } = process.env;
    const r = spawnSync("docker-compose", ["-f", "probe.yaml", "config"], { cwd: dir, encoding: "utf8", env });
    expect(r.status, r.stderr).toBe(0);
    expect((parse(r.stdout) as ComposeFile).services.probe?.labels).toEqual({ project: "shop" });
  });
});
