// Checks CHANGELOG.md, which has one section a release (Keep a Changelog):
//
//   ## [Unreleased]            first: what the next release will bring, maybe nothing yet
//   ## [1.2.0] - 2027-03-01    then every release, newest first, each with its entries
//
// and the version in package.json is not older than the newest release it names.
//
//   node scripts/check-changelog.mjs             the shape (test/unit/changelog.test.ts runs it)
//   node scripts/check-changelog.mjs --release   also: package.json's version has its section
//
// `--release` is npm's prepublishOnly: a version cannot be published without its notes. Under
// `npm publish --dry-run`, a rehearsal that may come before the notes are written, that one
// problem is reported and does not fail.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const VERSION = String.raw`(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?`;
const RELEASE_HEADING = new RegExp(String.raw`^## \[${VERSION}\] - (\d{4}-\d{2}-\d{2})$`);

/** -1, 0 or 1 as semantic version a is lower than, equal to or higher than b (both from VERSION's groups). */
function compareVersions(a, b) {
  for (let k = 0; k < 3; k++) if (a.numbers[k] !== b.numbers[k]) return a.numbers[k] < b.numbers[k] ? -1 : 1;
  if (a.pre === b.pre) return 0;
  // A pre-release is lower than its release; pre-releases compare as text, which is enough here.
  if (a.pre === undefined) return 1;
  if (b.pre === undefined) return -1;
  return a.pre < b.pre ? -1 : 1;
}

function parseVersion(text) {
  const m = new RegExp(`^${VERSION}$`).exec(text);
  return m ? { text, numbers: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] } : null;
}

function validDate(text) {
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text;
}

/**
 * What is wrong with a changelog `text` for the package at `version`: one sentence a problem, with
 * its line where it has one; empty when nothing is.
 */
export function changelogProblems(text, version, { release = false } = {}) {
  const problems = [];
  const lines = text.split("\n");
  const sections = [];
  lines.forEach((line, k) => {
    if (line.startsWith("## ")) sections.push({ heading: line.trimEnd(), line: k + 1, entries: 0 });
    else if (sections.length > 0 && /^\s*- \S/.test(line)) sections[sections.length - 1].entries++;
  });
  const current = parseVersion(version);
  if (current === null) problems.push(`package.json's version "${version}" is not a semantic version`);
  if (sections[0]?.heading !== "## [Unreleased]") problems.push("the first section is not ## [Unreleased]");
  const releases = [];
  for (const s of sections) {
    if (s.heading === "## [Unreleased]") {
      if (s !== sections[0]) problems.push(`line ${s.line}: a second ## [Unreleased]`);
      continue;
    }
    const m = RELEASE_HEADING.exec(s.heading);
    if (!m) {
      problems.push(`line ${s.line}: "${s.heading}" is neither ## [Unreleased] nor ## [X.Y.Z] - YYYY-MM-DD`);
      continue;
    }
    const v = parseVersion(s.heading.slice(4, s.heading.indexOf("]")));
    const date = m[5];
    if (!validDate(date)) problems.push(`line ${s.line}: ${date} is not a date`);
    if (s.entries === 0) problems.push(`line ${s.line}: release ${v.text} lists no change`);
    const before = releases[releases.length - 1];
    if (before !== undefined) {
      if (compareVersions(v, before.version) >= 0) problems.push(`line ${s.line}: ${v.text} comes after ${before.version.text}: newest first`);
      else if (date > before.date) problems.push(`line ${s.line}: ${v.text} is dated ${date}, after ${before.version.text} (${before.date})`);
    }
    releases.push({ version: v, date, line: s.line });
  }
  if (current !== null) {
    const newest = releases[0];
    if (newest !== undefined && compareVersions(current, newest.version) < 0)
      problems.push(`package.json's version ${version} is older than the newest release in the changelog, ${newest.version.text}`);
    if (release && !releases.some((r) => compareVersions(r.version, current) === 0))
      problems.push(`no section ## [${version}] - YYYY-MM-DD: move the entries of ## [Unreleased] under it before publishing`);
  }
  return problems;
}

/**
 * The command: the exit code (0 fine, 1 problems, 2 usage) and the lines for stderr, for the
 * CHANGELOG.md and package.json in `root`.
 */
export function checkChangelog(args, env, root) {
  const unknown = args.filter((a) => a !== "--release");
  if (unknown.length > 0) return { code: 2, lines: [`check-changelog: unknown argument ${unknown[0]}`, "usage: node scripts/check-changelog.mjs [--release]"] };
  const release = args.includes("--release");
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const text = readFileSync(join(root, "CHANGELOG.md"), "utf8");
  const problems = changelogProblems(text, version, { release });
  const lines = problems.map((p) => `CHANGELOG.md: ${p}`);
  // A dry run of npm publish rehearses the release: the missing section is said, not fatal.
  const dryRun = release && env.npm_config_dry_run === "true";
  const fatal = dryRun ? changelogProblems(text, version) : problems;
  if (dryRun && problems.length > fatal.length) lines.push("CHANGELOG.md: (a dry run: npm publish would stop here)");
  return { code: fatal.length > 0 ? 1 : 0, lines };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { code, lines } = checkChangelog(process.argv.slice(2), process.env, join(dirname(fileURLToPath(import.meta.url)), ".."));
  for (const line of lines) process.stderr.write(`${line}\n`);
  process.exitCode = code;
}
