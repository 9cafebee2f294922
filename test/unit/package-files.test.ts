/**
 * src/package-files.ts: the files commands read from mbc's own package are where PACKAGE_FILES
 * says, and one that cannot be read is an error naming the package and the file (exit 2 through
 * UsageError), never a bare ENOENT. test/tools/package.test.ts checks the same of the installed
 * tarball.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { generators } from "../../src/build/generators.js";
import { TARGET_IDS } from "../../src/build/targets.js";
import { PACKAGE_FILES, PACKAGE_NAME, PackageFileError, packageFilePath, packageRoot, readPackageFile, readPackageText } from "../../src/package-files.js";
import { UsageError } from "../../src/usage-error.js";

const repo = join(import.meta.dirname, "..", "..");
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

describe("package files", () => {
  it("are found from the sources as from the bundle: the package root is the repository", () => {
    expect(packageRoot).toBe(join(repo));
    expect(packageFilePath(PACKAGE_FILES.schema)).toBe(join(repo, "schema", "mbc.schema.json"));
    expect(readPackageText(PACKAGE_FILES.schema)).toBe(readFileSync(join(repo, "schema", "mbc.schema.json"), "utf8"));
  });

  it("hold every template a generator renders, and no template none renders", () => {
    for (const id of TARGET_IDS) {
      const declared = [...generators[id].templates].sort();
      expect(readdirSync(join(repo, "generators", id, "templates")).sort(), id).toEqual(declared);
      for (const name of declared) expect(readPackageText(PACKAGE_FILES.template(id, name)).length, name).toBeGreaterThan(0);
    }
  });

  it("missing: an error that names the package, its folder and the file", () => {
    const root = mkdtempSync(join(tmpdir(), "mbc-package-files-"));
    temps.push(root);
    const file = PACKAGE_FILES.template("node", "README.md.hbs");
    let caught: unknown;
    try {
      readPackageFile(file, root);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PackageFileError);
    expect(caught).toBeInstanceOf(UsageError);
    const err = caught as PackageFileError;
    expect(err.code).toBe("ENOENT");
    expect(err.file).toBe(file);
    expect(err.message).toContain(`${PACKAGE_NAME} package`);
    expect(err.message).toContain(file);
    expect(err.message).toContain(root);
    expect(err.hint).toContain("npm install");
  });

  it("unreadable (a folder where the file should be): the same error, with the reason", () => {
    const root = mkdtempSync(join(tmpdir(), "mbc-package-files-"));
    temps.push(root);
    mkdirSync(packageFilePath(PACKAGE_FILES.runtime, root), { recursive: true });
    expect(() => readPackageFile(PACKAGE_FILES.runtime, root)).toThrow(PackageFileError);
    try {
      readPackageFile(PACKAGE_FILES.runtime, root);
    } catch (err) {
      expect((err as PackageFileError).code).toBe("EISDIR");
      expect((err as Error).message).toContain(PACKAGE_FILES.runtime);
    }
  });
});
