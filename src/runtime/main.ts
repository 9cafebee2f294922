/**
 * The entry of mbc-runtime.mjs: `node mbc-runtime.mjs` runs the supervisor; `--role registry|
 * source|service --name NAME [--instance K]` runs one process. See docs/runtime.md.
 */
import { fileURLToPath } from "node:url";
import { runMain } from "./entry.js";
import { serviceRole } from "./service/index.js";
import { createSourceRole } from "./source/index.js";

await runMain({
  argv: process.argv.slice(2),
  vars: process.env,
  entry: fileURLToPath(import.meta.url),
  roles: { source: createSourceRole, service: serviceRole },
});
