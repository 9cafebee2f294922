/**
 * The package as npm publishes it, for `npm run bench -- --only=package` and for the package's
 * test (test/tools/package.test.ts): `npm pack` of the repository as `npm run build` left it, into
 * a folder, and what npm says of the tarball.
 *
 * Lifecycle scripts are off (`--ignore-scripts`): `prepare` would build dist/ again, in the middle
 * of tests that run it. npm runs with a cache and a user config of its own in the given folder, so
 * that neither the user's ~/.npm nor their ~/.npmrc changes what is packed or installed.
 *
 * PACKAGE_BUDGET is the test's limit and the bench's target: about a third above the size of
 * 0.1.0 (750 kB), so that the growth of a release passes and an accident (a fixture folder, source
 * maps, a dependency bundled twice) does not.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export const PACKAGE_BUDGET = { tarballBytes: 1_000_000 };

/** npm: the one running this process when there is one (`npm test`, `npm run bench`), else `npm` on the PATH. */
function npmCommand() {
  const cli = process.env.npm_execpath;
  if (cli !== undefined && /npm-cli\.[cm]?js$/.test(cli)) return { command: process.execPath, prefix: [cli] };
  return { command: "npm", prefix: [] };
}

/**
 * The environment of an npm child: this one without the npm_* settings of a parent npm (which
 * would carry its command's flags over), with a cache and an empty user config in `home`.
 */
export function npmEnv(home, extra = {}) {
  mkdirSync(home, { recursive: true });
  const userconfig = join(home, "npmrc");
  writeFileSync(userconfig, "");
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^npm_/i.test(key) && key !== "NODE_OPTIONS" && key !== "INIT_CWD") env[key] = value;
  }
  return {
    ...env,
    npm_config_cache: join(home, "cache"),
    npm_config_userconfig: userconfig,
    npm_config_update_notifier: "false",
    npm_config_fund: "false",
    npm_config_audit: "false",
    ...extra,
  };
}

/** Runs npm; `status` null means it was killed. Throws when npm cannot be started at all. */
export function runNpm(args, { cwd, env, timeoutMs = 300_000 }) {
  const { command, prefix } = npmCommand();
  const r = spawnSync(command, [...prefix, ...args], { cwd, env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs });
  if (r.error) throw new Error(`cannot run npm ${args[0]}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The npm version, or null with the reason it cannot be run. */
export function npmVersion() {
  try {
    const r = runNpm(["--version"], { cwd: root, env: { ...process.env }, timeoutMs: 60_000 });
    return r.status === 0 ? { version: r.stdout.trim(), reason: null } : { version: null, reason: `npm --version exited ${r.status}: ${r.stderr.trim()}` };
  } catch (err) {
    return { version: null, reason: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Packs the repository into `dest`: the tarball's path, name, version, sizes in bytes (the
 * tarball's, and unpacked) and files with their sizes, as `npm pack --json` reports them.
 */
export function packPackage(dest) {
  mkdirSync(dest, { recursive: true });
  const r = runNpm(["pack", "--ignore-scripts", "--json", "--pack-destination", dest], { cwd: root, env: npmEnv(join(dest, ".npm")) });
  if (r.status !== 0) throw new Error(`npm pack exited ${r.status}:\n${r.stderr}`);
  const [info] = JSON.parse(r.stdout);
  return {
    file: join(dest, info.filename),
    name: info.name,
    version: info.version,
    size: info.size,
    unpackedSize: info.unpackedSize,
    files: info.files.map((f) => ({ path: f.path, size: f.size })).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  };
}

/** What a package file is, for the bench's breakdown. */
export function fileKind(path) {
  if (path.startsWith("dist/types/")) return "API types (dist/types)";
  if (path.startsWith("dist/runtime/")) return "runtime bundle";
  if (path.startsWith("dist/") && path.endsWith(".cache")) return "V8 code caches of the CLI";
  if (path === "dist/index.mjs") return "API bundle";
  if (path.startsWith("dist/")) return "CLI bundle";
  if (path.startsWith("generators/")) return "templates";
  if (path.startsWith("schema/")) return "JSON Schema";
  return "package.json, bin, README, CHANGELOG";
}
