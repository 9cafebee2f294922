/**
 * system.json: what `mbc build` writes beside mbc-runtime.mjs for the runtime to read — the
 * contract between the build and the runtime, whatever the target. Its schema is
 * schema/system.schema.json; the runtime checks a file against it (src/runtime/config/system.ts).
 */
import type { SystemFile } from "../generated/system-types.js";
import type { Model, SourceModel } from "./types.js";

export type { SystemFile };

/**
 * The fields of a source in system.json v1, in its order. v1 lists all of them on every source,
 * null (`record`: empty) where the source's type has none; the runtime ignores those (the schema
 * marks them deprecated), but the bytes of system.json stay as they were.
 */
const V1_SOURCE_FIELDS = ["name", "path", "type", "port", "location", "ratePerSec", "count", "record", "batch", "to"] as const;

/** A source as system.json v1 writes it: its own fields, and the v1 fields of other types. */
function v1Source(source: SourceModel): Record<string, unknown> {
  const own: Record<string, unknown> = { ...source };
  const out: Record<string, unknown> = {};
  for (const field of V1_SOURCE_FIELDS) out[field] = field in own ? own[field] : field === "record" ? {} : null;
  // A field of a later kind of source goes after v1's.
  for (const [field, value] of Object.entries(own)) if (!(field in out)) out[field] = value;
  return out;
}

/** The text of system.json for `model` and its handler modules (service → path under the runtime folder). */
export function systemFileText(model: Model, handlers: Record<string, string>): string {
  const system = { mbc: 1, model: { ...model, sources: model.sources.map(v1Source) }, handlers } satisfies Record<keyof SystemFile, unknown>;
  return `${JSON.stringify(system, null, 2)}\n`;
}
