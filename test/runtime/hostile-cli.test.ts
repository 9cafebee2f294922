/**
 * The hostile suite, end to end through the built CLI: symbolic links out of the spec's folder,
 * terminal escapes on stderr, output folders that a build must not hurt (the user's files, a
 * target replaced by a file or a link, an immutable or append-only entry, a folder this user
 * cannot write), and documents that nest without end.
 *
 * Immutable and append-only flags need root and chattr (Debian's e2fsprogs) on a file system
 * that has them; a folder the user cannot write needs a user for whom permissions apply (as root,
 * the CLI runs as nobody from a copy of the package). Each is probed, and skipped with a printed
 * reason when missing; CI (MBC_REQUIRE_TOOLS=1) requires them.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, repoRoot, runMbc, STACK_LINE } from "../helpers/cli.js";
import { snapshot } from "../helpers/snapshot.js";
import { assertTool, tool } from "../helpers/tools.js";

const ESC = "\u001b";
const example = join(repoRoot, "examples", "01-design-document");
const isRoot = process.getuid?.() === 0;

beforeAll(() => assertBuilt());

const temps: string[] = [];
function tempDir(base = tmpdir()): string {
  const dir = realpathSync(mkdtempSync(join(base, "mbc-hostile-")));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) {
    // Flags a failed test may have left behind would keep the folder.
    if (chattr.available) spawnSync("chattr", ["-R", "-i", "-a", dir], { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A copy of the example: the spec, its handler, and the project folder it sits in. */
function project(base?: string): { dir: string; spec: string; out: string } {
  const dir = tempDir(base);
  cpSync(example, dir, { recursive: true });
  return { dir, spec: join(dir, "microbatch.yaml"), out: join(dir, "build") };
}

/** Control characters other than line breaks and mbc's own colours (SGR sequences). */
function rawControls(text: string): string[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  return [...text.replace(/\u001b\[[0-9;]*m/g, "").matchAll(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g)].map((m) => m[0]);
}

/** The folders a build must never leave behind. */
const strays = (lines: string[]) => lines.filter((l) => /\.mbc-(new|old)-/.test(l));

describe("a handler that is a symbolic link out of the spec's folder", () => {
  it.each([
    ["the handler itself", (dir: string) => symlinkSync("/etc/passwd", join(dir, "handlers", "x.mjs")), "./handlers/x.mjs"],
    ["a folder on its path", (dir: string) => symlinkSync("/etc", join(dir, "hd")), "./hd/passwd"],
  ])("(%s) fails validation, and build copies nothing", (_, link, handler) => {
    const p = project();
    link(p.dir);
    writeFileSync(p.spec, readFileSync(p.spec, "utf8").replace("./handlers/process.mjs", handler));
    const validated = runMbc(["validate", "--format", "json", p.spec]);
    expect(validated.status).toBe(1);
    expect((JSON.parse(validated.stdout) as { diagnostics: { code: string }[] }).diagnostics.map((d) => d.code)).toContain("handler-outside");
    const built = runMbc(["build", p.spec, "--out", p.out]);
    expect(built.status).toBe(1);
    expect(built.stderr).toContain("handler-outside");
    expect(snapshot(p.out)).toEqual([]);
  });
});

describe("stderr shows control characters escaped", () => {
  it("in the diagnostics of build, with colours on", () => {
    const p = project();
    writeFileSync(p.spec, `${readFileSync(p.spec, "utf8")}\nbogus: 1 # ${ESC}]0;owned\u0007${ESC}[2J${ESC}]52;c;ZXZpbA==\u0007\n`);
    const r = runMbc(["build", p.spec, "--out", p.out], { env: { FORCE_COLOR: "1" } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("unknown-key");
    expect(r.stderr).toContain("\\e]0;owned\\u0007\\e[2J");
    expect(rawControls(r.stderr)).toEqual([]);
  });

  it("in a file name that does not exist, and in a bad flag", () => {
    const missing = runMbc(["validate", `no${ESC}[2Jsuch\n::error::forged.yaml`]);
    expect(missing.status).toBe(2);
    expect(rawControls(missing.stderr)).toEqual([]);
    expect(missing.stderr.split("\n").filter((l) => l.startsWith("::error"))).toEqual([]);
    const flag = runMbc(["validate", `--bo${ESC}]0;x\u0007gus`]);
    expect(flag.status).toBe(2);
    expect(rawControls(flag.stderr)).toEqual([]);
  });
});

describe("a rebuild keeps the user's files", () => {
  it("in generated folders, beside a spec change", () => {
    const p = project();
    expect(runMbc(["build", p.spec, "--out", p.out]).status).toBe(0);
    const mine = {
      "node/handlers/my-helper.mjs": "export const x = 1;\n",
      "systemd/env/services/secrets.env": "TOKEN=1\n",
      "systemd/units/mbc-design-example-registry.service.d/override.conf": "[Service]\n",
      "compose/runtime/my-data.txt": "data\n",
    };
    for (const [rel, text] of Object.entries(mine)) {
      mkdirSync(join(p.out, rel, ".."), { recursive: true });
      writeFileSync(join(p.out, rel), text);
    }
    writeFileSync(p.spec, readFileSync(p.spec, "utf8").replace("capacity: 2000/s", "capacity: 2200/s"));
    const r = runMbc(["build", p.spec, "--out", p.out]);
    expect(r.status, r.stderr).toBe(0);
    for (const [rel, text] of Object.entries(mine)) expect(readFileSync(join(p.out, rel), "utf8")).toBe(text);
    expect(strays(snapshot(p.out))).toEqual([]);
  });
});

/**
 * Builds the example once, lets `arrange` damage the output, then runs build --check and build:
 * both must exit 2 (for `status`), name `names`, and leave the output byte for byte as it was.
 */
function expectUntouched(p: { spec: string; out: string }, names: RegExp, run = (args: string[]) => runMbc(args)): void {
  const before = snapshot(p.out);
  for (const args of [
    ["build", p.spec, "--out", p.out, "--check"],
    ["build", p.spec, "--out", p.out],
  ]) {
    const r = run(args);
    expect(r.status, `${args.join(" ")}\n${r.stderr}`).toBe(2);
    expect(r.stderr).toMatch(names);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(snapshot(p.out), args.join(" ")).toEqual(before);
  }
}

describe("a build that cannot write everything writes nothing", () => {
  const changed = (p: { spec: string }) => writeFileSync(p.spec, readFileSync(p.spec, "utf8").replace("capacity: 2000/s", "capacity: 2200/s"));

  it("into a folder without a manifest that holds a README.md and a tool of the user's", () => {
    const p = project();
    mkdirSync(join(p.out, "node", "handlers"), { recursive: true });
    writeFileSync(join(p.out, "node", "README.md"), "mine\n");
    writeFileSync(join(p.out, "node", "handlers", "tool.sh"), "#!/bin/sh\n");
    expectUntouched(p, /node\/README\.md holds a file mbc did not write/);
  });

  it("when a target folder was replaced by a file", () => {
    const p = project();
    expect(runMbc(["build", p.spec, "--out", p.out]).status).toBe(0);
    rmSync(join(p.out, "systemd"), { recursive: true });
    writeFileSync(join(p.out, "systemd"), "a file\n");
    changed(p);
    expectUntouched(p, /build\/systemd is a file/);
  });

  it("when a target folder is a symbolic link", () => {
    const p = project();
    expect(runMbc(["build", p.spec, "--out", p.out]).status).toBe(0);
    renameSync(join(p.out, "node"), join(p.out, "..", "node-elsewhere"));
    symlinkSync(join(p.out, "..", "node-elsewhere"), join(p.out, "node"));
    changed(p);
    expectUntouched(p, /build\/node is a symbolic link/);
  });
});

/** chattr works here: root, the tool, and a file system with the flags (probed in a temporary folder, then beside the repo). */
let flagBase = tmpdir();
const chattr = tool("chattr", () => {
  if (!isRoot) return "immutable and append-only flags need root";
  const which = spawnSync("chattr", ["-V"], { encoding: "utf8" });
  if (which.error) return "chattr is not installed (Debian package e2fsprogs)";
  const problems: string[] = [];
  for (const base of [tmpdir(), repoRoot]) {
    const dir = mkdtempSync(join(base, ".mbc-chattr-probe-"));
    const file = join(dir, "f");
    writeFileSync(file, "x");
    const set = spawnSync("chattr", ["+i", file], { encoding: "utf8" });
    let works = false;
    if (set.status === 0) {
      try {
        writeFileSync(file, "y");
      } catch {
        works = true;
      }
      spawnSync("chattr", ["-i", file]);
    }
    rmSync(dir, { recursive: true, force: true });
    if (works) {
      flagBase = base;
      return null;
    }
    problems.push(`${base}: ${set.stderr.trim() || "the flag does not stop a write"}`);
  }
  return `the file system has no immutable flag (${problems.join("; ")})`;
});

describe.skipIf(chattr.skip)("flags the file system enforces (chattr)", () => {
  beforeAll(() => assertTool(chattr));
  const run = (...args: string[]) => expect(spawnSync("chattr", args, { encoding: "utf8" }).status).toBe(0);

  it("an immutable target folder: refused before anything is written", () => {
    const p = project(flagBase);
    expect(runMbc(["build", p.spec, "--out", p.out]).status).toBe(0);
    writeFileSync(p.spec, readFileSync(p.spec, "utf8").replace("capacity: 2000/s", "capacity: 2200/s"));
    run("+i", join(p.out, "systemd"));
    try {
      expectUntouched(p, /build\/systemd cannot be changed \(EPERM\): it is immutable/);
    } finally {
      run("-i", join(p.out, "systemd"));
    }
  });

  it("an immutable generated file: refused before anything is written", () => {
    const p = project(flagBase);
    expect(runMbc(["build", p.spec, "--out", p.out]).status).toBe(0);
    writeFileSync(p.spec, readFileSync(p.spec, "utf8").replace("capacity: 2000/s", "capacity: 2200/s"));
    run("+i", join(p.out, "node", "README.md"));
    try {
      expectUntouched(p, /build\/node\/README\.md cannot be changed/);
    } finally {
      run("-i", join(p.out, "node", "README.md"));
    }
  });

  it("an append-only file of the user's in the last target: the targets already swapped are put back", () => {
    const p = project(flagBase);
    expect(runMbc(["build", p.spec, "--out", p.out]).status).toBe(0);
    writeFileSync(p.spec, readFileSync(p.spec, "utf8").replace("capacity: 2000/s", "capacity: 2200/s"));
    const kept = join(p.out, "systemd", "kept.log");
    writeFileSync(kept, "mine\n");
    // Append-only passes every check (it may be written), but cannot be moved: the swap fails.
    run("+a", kept);
    try {
      const before = snapshot(p.out);
      const r = runMbc(["build", p.spec, "--out", p.out]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/cannot move .*kept\.log into the new output: EPERM/);
      expect(r.stderr).toContain("nothing was changed");
      expect(snapshot(p.out)).toEqual(before);
      expect(strays(snapshot(p.dir))).toEqual([]);
    } finally {
      run("-a", kept);
    }
  });
});

/**
 * A user for whom permissions apply: this one, or, as root, nobody, running a copy of the package
 * that nobody can read (the checkout may sit in a folder only root may enter).
 */
const NOBODY = 65534;
let asUser: ((args: string[]) => { status: number | null; stdout: string; stderr: string }) | null = null;
const unprivileged = tool("an unprivileged user", () => {
  if (!isRoot) {
    asUser = (args) => runMbc(args);
    return null;
  }
  const pkg = realpathSync(mkdtempSync(join(tmpdir(), "mbc-package-")));
  temps.push(pkg);
  for (const part of ["bin", "dist", "schema", "package.json"]) cpSync(join(repoRoot, part), join(pkg, part), { recursive: true });
  for (const target of ["compose", "kubernetes", "node", "systemd"])
    cpSync(join(repoRoot, "generators", target, "templates"), join(pkg, "generators", target, "templates"), { recursive: true });
  chmodSync(pkg, 0o755);
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [join(pkg, "bin", "mbc"), ...args], {
      uid: NOBODY,
      gid: NOBODY,
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "" },
    });
    return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? (r.error ? String(r.error) : "") };
  };
  const probe = run(["--version"]);
  if (probe.status !== 0) return `cannot run mbc as nobody (uid ${NOBODY}): ${probe.stderr.trim()}`;
  asUser = run;
  return null;
});

describe.skipIf(unprivileged.skip)("a target folder this user cannot write", () => {
  beforeAll(() => assertTool(unprivileged));

  it("is refused before anything is written, and named", () => {
    const p = project();
    if (isRoot) {
      chmodSync(p.dir, 0o755);
      for (const f of [p.dir, p.spec, join(p.dir, "handlers"), join(p.dir, "handlers", "process.mjs")]) chownSync(f, NOBODY, NOBODY);
    }
    const run = asUser as NonNullable<typeof asUser>;
    expect(run(["build", p.spec, "--out", p.out]).status).toBe(0);
    writeFileSync(p.spec, readFileSync(p.spec, "utf8").replace("capacity: 2000/s", "capacity: 2200/s"));
    chmodSync(join(p.out, "systemd"), 0o555);
    try {
      expectUntouched(p, /build\/systemd cannot be changed \(EACCES\)/, run);
    } finally {
      chmodSync(join(p.out, "systemd"), 0o755);
    }
  });
});

describe("documents that nest without end", () => {
  it("100,000 levels deep: one yaml-syntax error, no JavaScript message", () => {
    const dir = tempDir();
    const file = join(dir, "deep.yaml");
    writeFileSync(file, `mbc: 1\nname: deep\nx-deep: ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`);
    const r = runMbc(["validate", "--format", "json", file]);
    expect(r.status).toBe(1);
    expect((JSON.parse(r.stdout) as { diagnostics: { code: string }[] }).diagnostics.map((d) => d.code)).toEqual(["yaml-syntax"]);
    expect(r.stdout + r.stderr).not.toMatch(/Maximum call stack|RangeError/);
  });

  it("an alias inside its own anchor: build says so, and does not fail on a circular structure", () => {
    const p = project();
    writeFileSync(
      p.spec,
      readFileSync(p.spec, "utf8")
        .replace("  result-storage:\n", "  result-storage: &store\n")
        .replace("      path: ./data/results.jsonl", "      path: ./data/results.jsonl\n      again: *store"),
    );
    const r = runMbc(["build", p.spec, "--out", p.out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("yaml-syntax");
    expect(r.stderr).not.toMatch(/circular structure|TypeError/);
  });
});
