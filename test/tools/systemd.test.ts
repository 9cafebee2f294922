/**
 * The systemd target (goldens are in test/build.test.ts):
 *
 * - systemd itself accepts every unit: `systemd-analyze verify` prints nothing for every unit
 *   and an instance of each template (verify exits 0 on bad values and unknown keys, only
 *   warning, so any output fails), and `systemd-analyze security --offline` scores every service
 *   unit at an exposure ≤ 5.0;
 * - hostile text (`%`, `$`, quotes, backslashes, newlines, `..`) in every place a user writes it
 *   cannot add a key, a directive or a path: the files are parsed back, by our own reading of
 *   systemd's rules and by systemd's own parser (`systemd --test` dumps the units it loaded),
 *   and every key and value is what the spec said; what no file can hold is refused;
 * - install.sh and uninstall.sh pass `sh -n` and shellcheck, and run against an image root
 *   (`--root DIR`): user, runtime, data folder, units, enablement; both are idempotent, a
 *   re-install removes units a build no longer has, and uninstall keeps the data unless --purge;
 * - the layout works: each process started with its unit's command line and environment files
 *   (there is no systemd to start them here) runs the system, and a posted record reaches the
 *   sink below data/.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unitTextValue } from "../../generators/systemd/escape.js";
import { systemdLayout } from "../../generators/systemd/index.js";
import { writeTarget } from "../../src/build/write.js";
import { cleanupAll, freePorts, waitUntil } from "../helpers/runtime.js";
import {
  argv,
  type Built,
  build,
  exampleText,
  hostileDescription,
  hostileInstallDir,
  hostileNode,
  hostileSpecName,
  hostileText,
  lowPortsText,
  parseEnvFile,
  parseUnit,
  repo,
  specifiers,
  temp,
  values,
  words,
} from "../helpers/systemd.js";
import { assertTool, tool } from "../helpers/tools.js";

afterAll(cleanupAll);

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// systemd's own tools.
/** A root folder for systemd-analyze: the units where install.sh puts them, stub targets, a stub node. */
function analyzeRoot(b: Built): string {
  const root = temp();
  const units = join(root, "etc", "systemd", "system");
  mkdirSync(units, { recursive: true });
  for (const a of b.artefacts.filter((x) => x.path.startsWith("units/"))) writeFileSync(join(units, a.path.slice("units/".length)), a.content);
  // An empty root has none of the units every service depends on by default: verify would say
  // "Unit sysinit.target not found". These stubs are the environment, not what is under test.
  const lib = join(root, "usr", "lib", "systemd", "system");
  mkdirSync(lib, { recursive: true });
  for (const t of ["sysinit.target", "basic.target", "shutdown.target", "multi-user.target"]) writeFileSync(join(lib, t), "[Unit]\nDescription=stub\n");
  // verify checks that ExecStart's binary exists and is executable.
  const node = join(root, b.model.targets.systemd.node);
  mkdirSync(join(node, ".."), { recursive: true });
  writeFileSync(node, "#!/bin/sh\n");
  chmodSync(node, 0o755);
  return root;
}

/** Every unit to check: each unit as written, and instance 0 … n−1 of each template. */
function unitsToCheck(b: Built): string[] {
  const L = systemdLayout(b.model);
  return [
    L.units.target,
    // The embedded registry's unit; a build with another backend has none.
    ...(b.artefacts.some((a) => a.path === `units/${L.units.registry}`) ? [L.units.registry] : []),
    ...b.model.sources.map((s) => L.units.source(s.name)),
    ...b.model.services
      .filter((s) => s.handler !== null)
      .flatMap((s) => [L.units.service(s.name), ...s.instances.map((i) => L.units.instance(s.name, i.index))]),
  ];
}

const cases = [
  { name: "the example", text: exampleText },
  { name: "resources, fan-out and low ports", text: lowPortsText },
  { name: "hostile values", text: hostileText, specName: hostileSpecName },
  { name: "the etcd registry: no registry unit", text: etcdText() },
];

/** The example with `registry.backend: etcd`: no registry unit, and install.sh without the registry role. */
function etcdText(): string {
  return `${exampleText.replace(/^registry:\n(?: {2}.*\n)*/m, "")}registry:\n  backend: etcd\n  endpoints: [http://127.0.0.1:2379]\n`;
}

const analyze = tool("systemd-analyze", () => {
  const r = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
  if (r.error) return `systemd-analyze is not installed (Debian: apt-get install systemd): ${(r.error as NodeJS.ErrnoException).code}`;
  return r.status === 0 ? null : `systemd-analyze --version failed: ${r.stderr}`;
});

/** What `systemd-analyze security` measured, by unit (for the docs and the report). */
const exposures: Record<string, number> = {};

describe.skipIf(analyze.skip)("systemd-analyze", () => {
  beforeAll(() => assertTool(analyze));
  afterAll(() => {
    if (Object.keys(exposures).length > 0) process.stderr.write(`systemd exposure: ${JSON.stringify(exposures)}\n`);
  });

  for (const c of cases) {
    it(`verify prints nothing for every unit and instance: ${c.name}`, () => {
      const b = build(c.text, { specName: c.specName });
      const root = analyzeRoot(b);
      for (const u of unitsToCheck(b)) {
        const r = spawnSync("systemd-analyze", ["verify", "--man=no", `--root=${root}`, u], { encoding: "utf8" });
        expect(`${r.stdout}${r.stderr}`, u).toBe("");
        expect(r.status, u).toBe(0);
      }
    });

    it(`security scores every service unit at an exposure ≤ 5.0: ${c.name}`, () => {
      const b = build(c.text, { specName: c.specName });
      const root = analyzeRoot(b);
      for (const u of unitsToCheck(b).filter((x) => x.endsWith(".service") && !x.endsWith("@.service"))) {
        const r = spawnSync("systemd-analyze", ["security", "--offline=yes", `--root=${root}`, "--no-pager", u], { encoding: "utf8" });
        expect(r.status, `${u}: ${r.stderr}`).toBe(0);
        const m = /Overall exposure level for (\S+): (\d+(?:\.\d+)?)/.exec(r.stdout);
        expect(m?.[1], u).toBe(u);
        const level = Number(m?.[2]);
        exposures[u] = level;
        expect(level, u).toBeLessThanOrEqual(5.0);
      }
    });
  }
});

// systemd's own unit parser: `systemd --test --system` loads the units and dumps what it read.
// It refuses to run as root, so as root it runs as nobody (setpriv, util-linux).
const SYSTEMD_BIN = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"].find((p) => existsSync(p)) ?? "/lib/systemd/systemd";
const asNobody: string[] = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
/** Runs a command, as nobody when we are root. */
function runAsNobody(args: string[], env?: NodeJS.ProcessEnv) {
  const [cmd, ...rest] = [...asNobody, ...args];
  return spawnSync(cmd as string, rest, { encoding: "utf8", ...(env ? { env } : {}) });
}
const systemdTest = tool("systemd --test", () => {
  if (!existsSync(SYSTEMD_BIN)) return `${SYSTEMD_BIN} is missing (Debian: apt-get install systemd)`;
  const r = runAsNobody([SYSTEMD_BIN, "--version"]);
  if (r.error) return `cannot run ${[...asNobody, SYSTEMD_BIN].join(" ")}: ${(r.error as NodeJS.ErrnoException).code}`;
  return r.status === 0 ? null : `${SYSTEMD_BIN} --version failed: ${r.stderr}`;
});

/** The dump of one unit: `Key: value` lines, and each ExecStart's command line. */
function dumpUnits(b: Built, start: string): Map<string, { props: [string, string][]; commands: string[] }> {
  const dir = temp();
  chmodSync(dir, 0o755);
  for (const a of b.artefacts.filter((x) => x.path.startsWith("units/"))) writeFileSync(join(dir, a.path.slice("units/".length)), a.content, { mode: 0o644 });
  for (const t of ["sysinit.target", "basic.target", "shutdown.target", "multi-user.target"])
    writeFileSync(join(dir, t), "[Unit]\nDescription=stub\n", { mode: 0o644 });
  const r = runAsNobody([SYSTEMD_BIN, "--test", "--system", `--unit=${start}`, "--no-pager", "--log-target=console", "--log-level=err"], {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: "/",
    SYSTEMD_UNIT_PATH: dir,
  });
  expect(r.status, r.stderr).toBe(0);
  const out = new Map<string, { props: [string, string][]; commands: string[] }>();
  let current: { props: [string, string][]; commands: string[] } | null = null;
  for (const line of r.stdout.split("\n")) {
    const head = /^\t-> Unit (.+):$/.exec(line);
    if (head) {
      current = { props: [], commands: [] };
      out.set(head[1] as string, current);
      continue;
    }
    if (!line.startsWith("\t\t") || current === null) continue;
    const cmdLine = /^\t\t\tCommand Line: (.*)$/.exec(line);
    if (cmdLine) current.commands.push(cmdLine[1] as string);
    const prop = /^\t\t([A-Za-z]+): (.*)$/.exec(line);
    if (prop) current.props.push([prop[1] as string, prop[2] as string]);
  }
  return out;
}

/** systemd prints a command line with each word that needs it in double quotes, `\` before `"`, `\`, `$` and `` ` ``. */
function dumpedWords(line: string): string[] {
  return words(line.replace(/\\([$`])/g, "$1"));
}

describe.skipIf(systemdTest.skip)("systemd's own parser reads the hostile units back exactly", () => {
  beforeAll(() => assertTool(systemdTest));

  it("Description, User, EnvironmentFile, ReadWritePaths and the command line", () => {
    const b = build(hostileText, { specName: hostileSpecName });
    const L = systemdLayout(b.model);
    const dump = dumpUnits(b, L.units.target);
    const prop = (unit: string, key: string) =>
      dump
        .get(unit)
        ?.props.filter(([k]) => k === key)
        .map(([, v]) => v);
    expect(prop(L.units.target, "Description")).toEqual([unitTextValue(`hostile: ${hostileDescription}`)]);
    const work = L.units.instance("work", 0);
    expect(dump.has(work)).toBe(true);
    expect(prop(work, "User")).toEqual(["mbc"]);
    expect(prop(work, "EnvironmentFile")).toEqual([`${hostileInstallDir}/env/common.env`, `${hostileInstallDir}/env/services/work.env`]);
    expect(prop(work, "ReadWritePaths")).toEqual([`${hostileInstallDir}/data`]);
    // Before environment substitution, which turns `$$` into `$` in the arguments (not in the executable).
    const [line] = dump.get(work)?.commands ?? [];
    expect(dumpedWords(line as string).map((w, i) => (i === 0 ? w : w.replace(/\$\$/g, "$")))).toEqual([
      hostileNode,
      `${hostileInstallDir}/runtime/mbc-runtime.mjs`,
      "--role",
      "service",
      "--name",
      "work",
      "--instance",
      "0",
    ]);
    // Nothing else was made a directive: the keys systemd lists for the target are its own.
    expect(prop(L.units.target, "WantedBy")).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// install.sh and uninstall.sh.

const shellcheck = tool("shellcheck", () => {
  const r = spawnSync("shellcheck", ["--version"], { encoding: "utf8" });
  if (r.error) return `shellcheck is not installed (Debian: apt-get install shellcheck): ${(r.error as NodeJS.ErrnoException).code}`;
  return r.status === 0 ? null : `shellcheck --version failed: ${r.stderr}`;
});

describe("install.sh and uninstall.sh are sound shell", () => {
  for (const c of cases) {
    it(`sh -n: ${c.name}`, () => {
      const dir = temp();
      const b = build(c.text, { specName: c.specName });
      for (const f of ["install.sh", "uninstall.sh"]) {
        writeFileSync(join(dir, f), b.file(f));
        const r = spawnSync("sh", ["-n", join(dir, f)], { encoding: "utf8" });
        expect(r.stderr, f).toBe("");
        expect(r.status, f).toBe(0);
      }
    });
  }
});

describe.skipIf(shellcheck.skip)("shellcheck", () => {
  beforeAll(() => assertTool(shellcheck));
  for (const c of cases) {
    it(`finds nothing: ${c.name}`, () => {
      const dir = temp();
      const b = build(c.text, { specName: c.specName });
      for (const f of ["install.sh", "uninstall.sh"]) writeFileSync(join(dir, f), b.file(f));
      const r = spawnSync("shellcheck", ["--shell=sh", "--severity=style", join(dir, "install.sh"), join(dir, "uninstall.sh")], { encoding: "utf8" });
      expect(r.stdout).toBe("");
      expect(r.status).toBe(0);
    });
  }
});

const installTools = tool("systemd-sysusers and systemctl", () => {
  for (const cmd of ["systemd-sysusers", "systemctl"]) {
    const r = spawnSync(cmd, ["--version"], { encoding: "utf8" });
    if (r.error || r.status !== 0) return `${cmd} is not available (Debian: apt-get install systemd)`;
  }
  return null;
});

function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      const rel = relative(dir, p);
      if (st.isSymbolicLink()) out.push(`${rel} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${rel}/ ${(st.mode & 0o777).toString(8)}`);
        walk(p);
      } else out.push(`${rel} ${(st.mode & 0o777).toString(8)}`);
    }
  };
  walk(dir);
  return out;
}

describe.skipIf(installTools.skip)("install.sh and uninstall.sh, into an image root", () => {
  beforeAll(() => assertTool(installTools));
  const isRoot = process.getuid?.() === 0;

  const run = (script: string, args: string[]) => spawnSync("sh", [script, ...args], { encoding: "utf8" });

  for (const c of [cases[0], cases[2]] as { name: string; text: string; specName?: string }[]) {
    it(`installs, re-installs, uninstalls and purges: ${c.name}`, () => {
      const b = build(c.text, { specName: c.specName });
      const L = systemdLayout(b.model);
      const out = join(temp(), "systemd");
      writeTarget(out, b.artefacts);
      const image = temp();
      const dest = join(image, L.installDir);

      const first = run(join(out, "install.sh"), ["--root", image]);
      expect(first.status, first.stderr).toBe(0);
      // The user and group, from sysusers.d.
      const passwd = readFileSync(join(image, "etc", "passwd"), "utf8");
      const user = passwd
        .split("\n")
        .find((l) => l.startsWith(`${L.user}:`))
        ?.split(":");
      expect(user?.[6]).toMatch(/nologin$/);
      expect(readFileSync(join(image, "etc", "group"), "utf8")).toMatch(new RegExp(`^${L.user}:`, "m"));
      expect(existsSync(join(image, "etc", "sysusers.d", `${L.prefix}.conf`))).toBe(true);
      // The runtime, the environment files (root's only) and the data folder (the user's).
      expect(readFileSync(join(dest, "runtime", "system.json"), "utf8")).toBe(b.file("runtime/system.json"));
      expect(statSync(join(dest, "env")).mode & 0o777).toBe(0o700);
      expect(statSync(join(dest, "env", "common.env")).mode & 0o777).toBe(0o600);
      expect(parseEnvFile(readFileSync(join(dest, "env", "common.env"), "utf8")).MBC_DATA_DIR).toBe(L.dataDir);
      expect(statSync(join(dest, "data")).mode & 0o777).toBe(0o700);
      if (isRoot) expect(statSync(join(dest, "data")).uid).toBe(Number(user?.[2]));
      // The units, and the target enabled.
      const unitDir = join(image, "etc", "systemd", "system");
      for (const a of b.artefacts.filter((x) => x.path.startsWith("units/"))) {
        const installed = join(unitDir, a.path.slice("units/".length));
        expect(readFileSync(installed, "utf8"), a.path).toBe(a.content);
        expect(statSync(installed).mode & 0o777).toBe(0o644);
      }
      expect(readlinkSync(join(unitDir, "multi-user.target.wants", L.units.target))).toBe(`/etc/systemd/system/${L.units.target}`);

      // Idempotent: a second run changes nothing.
      const before = tree(image);
      const again = run(join(out, "install.sh"), ["--root", image]);
      expect(again.status, again.stderr).toBe(0);
      expect(tree(image)).toEqual(before);

      // What the runtime wrote stays through a re-install; uninstall keeps it, and is idempotent.
      mkdirSync(join(dest, "data", "state"), { recursive: true });
      writeFileSync(join(dest, "data", "state", "commit.log"), "batch-1\n");
      const un = run(join(out, "uninstall.sh"), ["--root", image]);
      expect(un.status, un.stderr).toBe(0);
      expect(readdirSync(unitDir).filter((f) => f.startsWith(L.prefix))).toEqual([]);
      expect(existsSync(join(unitDir, "multi-user.target.wants", L.units.target))).toBe(false);
      expect(existsSync(join(image, "etc", "sysusers.d", `${L.prefix}.conf`))).toBe(false);
      expect(readdirSync(dest)).toEqual(["data"]);
      expect(readFileSync(join(dest, "data", "state", "commit.log"), "utf8")).toBe("batch-1\n");
      const unAgain = run(join(out, "uninstall.sh"), ["--root", image]);
      expect(unAgain.status, unAgain.stderr).toBe(0);
      const purge = run(join(out, "uninstall.sh"), ["--root", image, "--purge"]);
      expect(purge.status, purge.stderr).toBe(0);
      expect(existsSync(dest)).toBe(false);
    });
  }

  it("--only ROLE[,ROLE…]: every unit installed, the target wants only the selected ones, no unit pulls in the registry unless selected", () => {
    const b = build(exampleText);
    const L = systemdLayout(b.model);
    const out = join(temp(), "systemd");
    writeTarget(out, b.artefacts);
    const unitDir = (image: string) => join(image, "etc", "systemd", "system");
    const wants = (file: string) => (readFileSync(file, "utf8").match(/^Wants=(.*)$/m)?.[1] ?? "").split(" ").filter(Boolean);

    const image = temp();
    const r = run(join(out, "install.sh"), ["--root", image, "--only", "source/input,service/data-processing@1", "--only=service/result-storage"]);
    expect(r.status, r.stderr).toBe(0);
    for (const a of b.artefacts.filter((x) => x.path.startsWith("units/"))) expect(existsSync(join(unitDir(image), a.path.slice(6))), a.path).toBe(true);
    expect(wants(join(unitDir(image), L.units.target))).toEqual([
      L.units.source("input"),
      L.units.instance("data-processing", 1),
      L.units.instance("result-storage", 0),
    ]);
    // The registry runs on another host: no unit here starts it.
    for (const unit of [L.units.source("input"), L.units.service("data-processing"), L.units.service("result-storage")])
      expect(wants(join(unitDir(image), unit)), unit).not.toContain(L.units.registry);
    expect(readlinkSync(join(unitDir(image), "multi-user.target.wants", L.units.target))).toBe(`/etc/systemd/system/${L.units.target}`);

    // With the registry selected, the units keep wanting it; service/NAME is every instance.
    const withRegistry = temp();
    expect(run(join(out, "install.sh"), ["--root", withRegistry, "--only", "registry,service/data-processing"]).status).toBe(0);
    expect(wants(join(unitDir(withRegistry), L.units.target))).toEqual([
      L.units.registry,
      L.units.instance("data-processing", 0),
      L.units.instance("data-processing", 1),
    ]);
    expect(wants(join(unitDir(withRegistry), L.units.service("data-processing")))).toContain(L.units.registry);

    // Without --only, as before: the units are the build's own bytes, the target wants every unit.
    const all = temp();
    expect(run(join(out, "install.sh"), ["--root", all]).status).toBe(0);
    expect(readFileSync(join(unitDir(all), L.units.target), "utf8")).toBe(b.file(`units/${L.units.target}`));

    // A role the build does not have, or none at all, is refused before anything is installed.
    for (const bad of [["--only", "service/data-processing@2"], ["--only", "source/nope"], ["--only", ","], ["--only", "*"], ["--only"]]) {
      const fresh = temp();
      const refused = run(join(out, "install.sh"), ["--root", fresh, ...bad]);
      expect(refused.status, bad.join(" ")).toBe(2);
      expect(refused.stderr).toMatch(/^install\.sh: --only/);
      expect(readdirSync(fresh)).toEqual([]);
    }
  });

  it("--only with the etcd registry: there is no registry role", () => {
    const b = build(etcdText());
    expect(b.model.registry.backend).toBe("etcd");
    const out = join(temp(), "systemd");
    writeTarget(out, b.artefacts);
    const refused = run(join(out, "install.sh"), ["--root", temp(), "--only", "registry"]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain("this build has no role registry");
    expect(run(join(out, "install.sh"), ["--root", temp(), "--only", "source/input"]).status).toBe(0);
  });

  it("a re-install removes the units a build no longer has", () => {
    const b = build(exampleText);
    const L = systemdLayout(b.model);
    const image = temp();
    const out1 = join(temp(), "systemd");
    writeTarget(out1, b.artefacts);
    expect(run(join(out1, "install.sh"), ["--root", image]).status).toBe(0);
    const smaller = exampleText.replace(/ {4}to: result-storage\n/, "").replace(/ {2}result-storage:\n(?: {4}.*\n| {6}.*\n)+/, "");
    const b2 = build(smaller);
    expect(b2.model.services.map((s) => s.name)).toEqual(["data-processing"]);
    const out2 = join(temp(), "systemd");
    writeTarget(out2, b2.artefacts);
    const r = run(join(out2, "install.sh"), ["--root", image]);
    expect(r.status, r.stderr).toBe(0);
    const unitDir = join(image, "etc", "systemd", "system");
    expect(existsSync(join(unitDir, L.units.service("result-storage")))).toBe(false);
    expect(existsSync(join(unitDir, L.units.service("data-processing")))).toBe(true);
    expect(
      readFileSync(join(image, L.installDir, "units.txt"), "utf8")
        .split("\n")
        .filter(Boolean)
        .sort(),
    ).toEqual(
      b2.artefacts
        .filter((a) => a.path.startsWith("units/"))
        .map((a) => a.path.slice(6))
        .sort(),
    );
    expect(existsSync(join(image, L.installDir, "env", "services", "result-storage.env"))).toBe(false);
  });

  it("refuses unknown arguments and --root without a folder", () => {
    const out = join(temp(), "systemd");
    writeTarget(out, build(exampleText).artefacts);
    for (const script of ["install.sh", "uninstall.sh"]) {
      expect(run(join(out, script), ["--bogus"]).status).toBe(2);
      expect(run(join(out, script), ["--root"]).status).toBe(2);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The units' command lines, run with their environment files, run the system.

const bundle = join(repo, "dist", "runtime", "mbc-runtime.mjs");
const runtimeBundle = tool("the bundled runtime", () => (existsSync(bundle) ? null : `${bundle} is missing (npm run build)`));

describe.skipIf(runtimeBundle.skip)("the installed layout runs", () => {
  beforeAll(() => assertTool(runtimeBundle));
  const children: ChildProcess[] = [];
  afterAll(async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((done) => {
            if (c.exitCode !== null || c.signalCode !== null) return done();
            c.once("exit", () => done());
            c.kill("SIGKILL");
          }),
      ),
    );
  });

  it("each process started as its unit says (ExecStart=, EnvironmentFile=) stores a posted record below data/", async () => {
    const [registry, source, services] = [await freePorts(1), await freePorts(1), await freePorts(3)];
    const installDir = join(temp(), "inst dir %h $x");
    const text = exampleText
      .replace("port: 7400", `port: ${registry}`)
      .replace("port: 8080", `port: ${source}`)
      .replace("  data-processing:\n", `  data-processing:\n    port: ${services}\n`)
      .concat(`targets:\n  systemd: { installDir: ${JSON.stringify(installDir)}, node: ${JSON.stringify(process.execPath)} }\n`);
    const b = build(text, { runtime: readFileSync(bundle) });
    const L = systemdLayout(b.model);
    // What install.sh does with runtime/ and env/ (its --root would put them below another root).
    const out = join(temp(), "systemd");
    writeTarget(out, b.artefacts);
    for (const part of ["runtime", "env"]) cpSync(join(out, part), join(installDir, part), { recursive: true });
    mkdirSync(join(installDir, "data"));

    const start = (unitName: string, instance: string) => {
      const u = parseUnit(b.file(`units/${unitName}`));
      const env: Record<string, string> = {};
      for (const f of values(u, "Service", "EnvironmentFile")) Object.assign(env, parseEnvFile(readFileSync(specifiers(f, instance), "utf8")));
      const [exe, ...args] = argv(values(u, "Service", "ExecStart")[0] as string, instance) as [string, ...string[]];
      const child = spawn(exe, args, { env, stdio: ["ignore", "ignore", "pipe"] });
      children.push(child);
    };
    // In the order systemd starts them: the registry, then each stage after its downstream.
    start(L.units.registry, "");
    start(L.units.service("result-storage"), "0");
    start(L.units.service("data-processing"), "0");
    start(L.units.service("data-processing"), "1");
    start(L.units.source("input"), "");
    const post = () =>
      fetch(`http://127.0.0.1:${source}/records`, { method: "POST", body: '{"n":1}\n{"n":2}\n', signal: AbortSignal.timeout(2000) })
        .then((r) => r.status === 202)
        .catch(() => false);
    await waitUntil(post, "the source accepts records", 15_000, 200);
    const sink = join(L.dataDir, "data", "results.jsonl");
    await waitUntil(() => existsSync(sink) && readFileSync(sink, "utf8").split("\n").filter(Boolean).length >= 2, "the sink stores them", 15_000, 100);
    expect(existsSync(join(L.stateDir, "sources", "input"))).toBe(true);
  }, 40_000);
});
