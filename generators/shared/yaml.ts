/**
 * YAML for Compose files, safe whatever the spec holds.
 *
 * The document is built as data and serialised by the `yaml` package, with one change: every
 * string value is a double-quoted scalar written as JSON (plus escapes for the characters that
 * YAML 1.1 reads as line breaks or refuses raw: U+0085, U+2028, U+2029, C1 controls, U+FEFF,
 * U+FFFE, U+FFFF). docker-compose 1.x reads files as YAML 1.1 (PyYAML), Compose v2 as YAML 1.2;
 * a JSON string means the same to both, so no value can end its scalar early, start a key or
 * change type. Keys are plain only when they are simple words that no YAML 1.1 reader takes for
 * a boolean or null (`on`, `no`, `null`…); otherwise they are quoted the same way.
 *
 * Compose interpolates `$` in every value: `escapeDollars` turns each into `$$` so that a value
 * reaches the container exactly as written.
 */
import { Document, isScalar, visit } from "yaml";

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_./-]*$/;
/** Words that YAML 1.1 resolves to a boolean or null when plain (PyYAML's set, plus y/n). */
const RESERVED_WORD = /^(?:y|n|yes|no|true|false|on|off|null)$/i;
/** Characters JSON.stringify leaves raw that YAML 1.1 folds or rejects. */
const UNSAFE_RAW = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;

/** A string as a double-quoted YAML scalar that YAML 1.1 and 1.2 read back exactly. */
export function quoteYamlString(value: string): string {
  return JSON.stringify(value).replace(UNSAFE_RAW, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

const safeString = {
  identify: (value: unknown) => typeof value === "string",
  default: true,
  tag: "tag:yaml.org,2002:str",
  resolve: (source: string) => source,
  stringify(item: { value: unknown }, ctx: { implicitKey?: boolean }): string {
    const text = String(item.value);
    if (ctx.implicitKey && PLAIN_KEY.test(text) && !RESERVED_WORD.test(text)) return text;
    return quoteYamlString(text);
  },
};

/** Serialises plain data (objects, arrays, strings, numbers, booleans) as block YAML; lists of scalars on one line. */
export function toYaml(data: unknown): string {
  // biome-ignore lint/suspicious/noExplicitAny: the yaml package's tag type is wider than this one string tag needs
  const doc = new Document(data, { customTags: (tags) => [safeString as any, ...tags] });
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((item) => isScalar(item))) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** Every `$` in every string value (not keys) written as `$$`, so Compose does not interpolate it. */
export function escapeDollars<T>(data: T): T {
  if (typeof data === "string") return data.replace(/\$/g, "$$$$") as T;
  if (Array.isArray(data)) return data.map((v) => escapeDollars(v)) as T;
  if (typeof data === "object" && data !== null) {
    return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, escapeDollars(v)])) as T;
  }
  return data;
}

/** Text for a `#` comment line: anything that would end the line or that YAML 1.1 refuses is shown escaped. */
export function commentText(text: string): string {
  const unsafe = (code: number) =>
    code < 0x20 ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x2028 ||
    code === 0x2029 ||
    (code >= 0xd800 && code <= 0xdfff) ||
    code === 0xfeff ||
    code >= 0xfffe;
  let out = "";
  // By code point: a surrogate pair stays one character, a lone surrogate is escaped.
  for (const c of text) {
    const code = c.codePointAt(0) as number;
    out += unsafe(code) && code <= 0xffff ? `\\u${code.toString(16).padStart(4, "0")}` : c;
  }
  return out;
}
