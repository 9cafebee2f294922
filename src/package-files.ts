/**
 * The files of mbc's own package that commands read when they run: the JSON Schema (`schema`,
 * `init`), each generator's templates and the bundled runtime (`build`, `run`). Every such read
 * goes through here, so that the list below is the list of what the package must ship (the
 * package's test installs the packed tarball and runs every command from it), and so that a file
 * missing from an incomplete install, or from a clone not yet built, is one clear error naming
 * the package, its folder and the file, never a bare ENOENT.
 *
 * The package root is one folder up from this module, both where it is a source file (src/) and
 * where it is bundled (dist/).
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "./usage-error.js";
import { VERSION } from "./version.js";

/** The package's name: where it is installed (`node_modules/mbc`) and what a user reinstalls. */
export const PACKAGE_NAME = "mbc";

/** mbc's package folder. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Paths of the package files, relative to the package root, with "/" separators. */
export const PACKAGE_FILES = {
  /** The spec's JSON Schema; editors load it from here too (docs/editors.md). */
  schema: "schema/mbc.schema.json",
  /** The runtime every target starts, bundled by `npm run build`. */
  runtime: "dist/runtime/mbc-runtime.mjs",
  /** A template of a generator. */
  template: (target: string, name: string): string => `generators/${target}/templates/${name}`,
} as const;

/** A package file that cannot be read: the install is incomplete, or the clone is not built. */
export class PackageFileError extends UsageError {
  constructor(
    readonly file: string,
    readonly root: string,
    readonly code: string,
  ) {
    const where = `${root}${sep}`;
    super(
      code === "ENOENT" || code === "ENOTDIR"
        ? `the ${PACKAGE_NAME} package is incomplete: ${file} is missing from ${where}`
        : `cannot read ${file} of the ${PACKAGE_NAME} package in ${where} (${code})`,
      `reinstall it (npm install ${PACKAGE_NAME}@${VERSION}); in a clone of mbc's repository, run npm run build`,
    );
    this.name = "PackageFileError";
  }
}

/** The absolute path of a package file (`file` as in PACKAGE_FILES). */
export function packageFilePath(file: string, root: string = packageRoot): string {
  return join(root, ...file.split("/"));
}

/** Reads a package file's bytes; throws PackageFileError when it cannot. */
export function readPackageFile(file: string, root: string = packageRoot): Buffer {
  try {
    return readFileSync(packageFilePath(file, root));
  } catch (err) {
    throw new PackageFileError(file, root, (err as NodeJS.ErrnoException).code ?? String(err));
  }
}

/** Reads a package file as UTF-8 text; throws PackageFileError when it cannot. */
export function readPackageText(file: string, root: string = packageRoot): string {
  return readPackageFile(file, root).toString("utf8");
}
