/**
 * system.json: what `mbc build` writes beside mbc-runtime.mjs for the runtime to read — the
 * contract between the build and the runtime, whatever the target.
 */
import type { Model } from "./types.js";

export interface SystemFile {
  mbc: 1;
  /** The normalised model (checkpoint.dir, sink paths etc. still relative to the spec's folder). */
  model: Model;
  /** Handler module of each service with a module handler, relative to system.json's folder (e.g. "handlers/process.mjs"). */
  handlers: Record<string, string>;
}
