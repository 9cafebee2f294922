// Builds what bin/mbc runs: one bundled ESM file for the CLI and one for the API, plus the
// API's type declarations. Bundling keeps start-up fast (one file, nothing to resolve) and
// leaves mbc with no run-time dependencies.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
rmSync(join(root, "dist"), { recursive: true, force: true });

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  legalComments: "none",
  define: { __MBC_VERSION__: JSON.stringify(pkg.version) },
  // Bundled CommonJS packages may require() Node's built-ins: give the ESM bundle a require.
  banner: { js: 'import { createRequire as __mbcCreateRequire } from "node:module"; const require = __mbcCreateRequire(import.meta.url);' },
  logLevel: "warning",
};
await build({ ...common, entryPoints: [join(root, "src/main.ts")], outfile: join(root, "dist/cli.mjs"), minifySyntax: true, minifyWhitespace: true });
await build({ ...common, entryPoints: [join(root, "src/index.ts")], outfile: join(root, "dist/index.mjs") });

execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
