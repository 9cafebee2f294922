// The schema's own keywords for the bounds of the contract's value types: a duration, a size or
// a rate is a string (`24h`, `512Mi`, `4000/s`) or a number, so JSON Schema's `maximum` cannot
// bound it. Each keyword names its bound in the value type's own form:
//
//   "maxDuration": "24h"   "minDuration": "1ms"
//   "maxSize": "1024Gi"       "minSize": "64Mi"
//   "maxRate": "10000000/s" "minRate": "1/h"
//
// The bound is parsed here, once; the value is parsed by a small function that the standalone
// validator carries (its source is emitted into the generated code). A value that does not
// parse passes these keywords: its pattern or type already fails. The parsers are the same
// arithmetic as src/model/units.ts, which test/unit/schema-bounds.test.ts checks.
import { _, _Code, str } from "ajv/dist/compile/codegen/code.js";

function durationMs(value) {
  const m = /^(?=[0-9])(?:([0-9]+(?:\.[0-9]+)?)h)?(?:([0-9]+(?:\.[0-9]+)?)m(?!s))?(?:([0-9]+(?:\.[0-9]+)?)s)?(?:([0-9]+(?:\.[0-9]+)?)ms)?$/.exec(
    typeof value === "string" ? value : "",
  );
  if (!m) return Number.NaN;
  return Math.round((Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 1000 + Number(m[4] ?? 0));
}

function sizeBytes(value) {
  if (typeof value === "number") return value;
  const m = /^([0-9]+(?:\.[0-9]+)?)(k|M|G|Ki|Mi|Gi)?$/.exec(typeof value === "string" ? value : "");
  if (!m) return Number.NaN;
  const unit = { k: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1048576, Gi: 1073741824 }[m[2]] ?? 1;
  return Math.round(Number(m[1]) * unit);
}

function ratePerSec(value) {
  if (typeof value === "number") return value;
  const m = /^([0-9]+(?:\.[0-9]+)?)\/(s|m|h)$/.exec(typeof value === "string" ? value : "");
  if (!m) return Number.NaN;
  return Number(m[1]) / { s: 1, m: 60, h: 3600 }[m[2]];
}

export const boundKeywords = [
  ["maxDuration", durationMs, ">"],
  ["minDuration", durationMs, "<"],
  ["maxSize", sizeBytes, ">"],
  ["minSize", sizeBytes, "<"],
  ["maxRate", ratePerSec, ">"],
  ["minRate", ratePerSec, "<"],
].map(([keyword, parse, op]) => ({
  keyword,
  schemaType: "string",
  error: { message: (cxt) => str`must be ${op === ">" ? "at most" : "at least"} ${cxt.schema}` },
  code(cxt) {
    const limit = parse(cxt.schema);
    if (!Number.isFinite(limit)) throw new Error(`${keyword}: ${JSON.stringify(cxt.schema)} is not a bound of its type`);
    const fn = cxt.gen.scopeValue("func", { ref: parse, code: new _Code(`(${parse.toString()})`) });
    // NaN compares false both ways: a value that does not parse is left to its pattern.
    cxt.fail(op === ">" ? _`${fn}(${cxt.data}) > ${limit}` : _`${fn}(${cxt.data}) < ${limit}`);
  },
}));

/** The parsers, for the test that holds them to src/model/units.ts. */
export const boundParsers = { durationMs, sizeBytes, ratePerSec };
