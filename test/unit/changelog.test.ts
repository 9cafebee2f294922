/**
 * CHANGELOG.md has a section a release (scripts/check-changelog.mjs), and npm publish (its
 * prepublishOnly) refuses a version without one, except as a dry run.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { changelogProblems, checkChangelog } from "../../scripts/check-changelog.mjs";

const root = join(import.meta.dirname, "..", "..");

const released = `# Changelog

## [Unreleased]

### Added
- Something new.

## [0.2.0] - 2027-02-01

### Fixed
- A fix.

## [0.1.0] - 2027-01-15

### Added
- The first release.
`;

describe("changelogProblems", () => {
  it("finds nothing wrong with the repository's CHANGELOG.md for package.json's version", () => {
    const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
    expect(changelogProblems(readFileSync(join(root, "CHANGELOG.md"), "utf8"), version)).toEqual([]);
  });

  it("takes an Unreleased section, then releases newest first, for a version released or still to come", () => {
    expect(changelogProblems(released, "0.2.0")).toEqual([]);
    expect(changelogProblems(released, "0.3.0")).toEqual([]);
    expect(changelogProblems(released, "0.2.0", { release: true })).toEqual([]);
  });

  it("wants a section for the version being published", () => {
    expect(changelogProblems(released, "0.3.0", { release: true })).toEqual([expect.stringContaining("## [0.3.0]")]);
  });

  it("refuses a version older than the newest release", () => {
    expect(changelogProblems(released, "0.1.5")).toEqual([expect.stringContaining("older than the newest release")]);
  });

  it("refuses a missing Unreleased section, bad headings and dates, empty releases and the wrong order", () => {
    expect(changelogProblems(released.replace("## [Unreleased]", "## Unreleased"), "0.2.0")).toHaveLength(2);
    expect(changelogProblems(released.replace("2027-02-01", "2027-02-30"), "0.2.0")).toEqual([expect.stringContaining("not a date")]);
    expect(changelogProblems(released.replace("- A fix.", ""), "0.2.0")).toEqual([expect.stringContaining("lists no change")]);
    const swapped = released.replace("[0.2.0] - 2027-02-01", "[0.0.9] - 2027-02-01");
    expect(changelogProblems(swapped, "0.2.0")).toEqual([expect.stringContaining("newest first")]);
    const backwards = released.replace("2027-01-15", "2027-03-01");
    expect(changelogProblems(backwards, "0.2.0")).toEqual([expect.stringContaining("is dated 2027-03-01")]);
    expect(changelogProblems(released, "two")).toEqual([expect.stringContaining("not a semantic version")]);
  });

  it("orders pre-releases before their release", () => {
    const pre = released.replace("## [0.2.0] - 2027-02-01", "## [0.2.0] - 2027-02-01\n\n- Final.\n\n## [0.2.0-rc.1] - 2027-01-20");
    expect(changelogProblems(pre, "0.2.0")).toEqual([]);
  });
});

describe("check-changelog.mjs --release (npm's prepublishOnly)", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  function project(version: string): string {
    const dir = mkdtempSync(join(tmpdir(), "mbc-changelog-"));
    dirs.push(dir);
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "x", version }));
    writeFileSync(join(dir, "CHANGELOG.md"), released);
    return dir;
  }

  it("fails a publish of a version without its section, and says so", () => {
    const r = checkChangelog(["--release"], {}, project("0.3.0"));
    expect(r.code).toBe(1);
    expect(r.lines.join("\n")).toContain("## [0.3.0]");
  });

  it("lets a dry run through, saying what a real publish would stop on", () => {
    const r = checkChangelog(["--release"], { npm_config_dry_run: "true" }, project("0.3.0"));
    expect(r.code).toBe(0);
    expect(r.lines.join("\n")).toContain("## [0.3.0]");
  });

  it("still fails a dry run on a changelog that is wrong in itself", () => {
    expect(checkChangelog(["--release"], { npm_config_dry_run: "true" }, project("0.1.0")).code).toBe(1);
  });

  it("passes a version with its section, and refuses unknown arguments", () => {
    expect(checkChangelog(["--release"], {}, project("0.2.0"))).toEqual({ code: 0, lines: [] });
    expect(checkChangelog(["--bogus"], {}, project("0.2.0")).code).toBe(2);
  });
});
