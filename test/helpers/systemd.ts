import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildArtefacts } from "../../src/build/index.js";
import type { Artefact, BuildInputs } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { validateText } from "../../src/validate/index.js";
import { allTemplates, buildInputs } from "./build.js";
import { tempDir } from "./runtime.js";

export const repo = resolve(import.meta.dirname, "..", "..");
export const example = join(repo, "examples", "01-design-document");

/** A fresh folder, removed by cleanupAll (from ./runtime.js) in the test file's afterAll. */
export function temp(): string {
  return tempDir("mbc-systemd-");
}

export const templates = allTemplates;

/** Build inputs for a spec's text, with its handlers read from the example's folder. */
export function inputsFor(text: string, model: Model, specName = "microbatch.yaml", runtime?: Uint8Array): BuildInputs {
  const handlerSources: Record<string, Uint8Array> = {};
  for (const s of model.services) if (s.handler?.kind === "module") handlerSources[s.handler.path] = readFileSync(join(example, s.handler.path));
  return buildInputs(text, { specName, handlerSources, ...(runtime === undefined ? {} : { runtime }) });
}

export interface Built {
  model: Model;
  artefacts: Artefact[];
  file(path: string): string;
}

export function modelOf(text: string): Model {
  const { model, diagnostics } = validateText("microbatch.yaml", text);
  if (!model) throw new Error(`spec has errors: ${JSON.stringify(diagnostics)}`);
  return model;
}

export function build(text: string, opts: { specName?: string; model?: Model; runtime?: Uint8Array } = {}): Built {
  const model = opts.model ?? modelOf(text);
  const artefacts = buildArtefacts(model, inputsFor(text, model, opts.specName, opts.runtime), ["systemd"]).get("systemd") as Artefact[];
  const byPath = new Map(artefacts.map((a) => [a.path, a]));
  return {
    model,
    artefacts,
    file(path) {
      const a = byPath.get(path);
      if (!a) throw new Error(`no ${path} in ${[...byPath.keys()].join(", ")}`);
      return typeof a.content === "string" ? a.content : Buffer.from(a.content).toString("utf8");
    },
  };
}

export const exampleText = readFileSync(join(example, "microbatch.yaml"), "utf8");

/** The example, plus a spec with resources, fan-out and low ports (a unit keeps CAP_NET_BIND_SERVICE). */
export const lowPortsText = `
mbc: 1
name: shop
defaults:
  resources: { cpus: 1.5, memory: 512Mi }
  retry: { maxRetries: 4, interval: 250ms, maxInterval: 2s }
registry: { port: 700 }
sources:
  web: { type: http, port: 80, to: enrich }
  replay: { type: file, path: ./in.jsonl, to: enrich }
services:
  enrich:
    handler: builtin:passthrough
    instances: 3
    port: 443
    resources: { cpus: 0.25 }
    to: [store, audit]
  store: { handler: builtin:jsonl-sink, config: { path: ./out/store.jsonl } }
  audit: { handler: builtin:log }
targets:
  systemd: { prefix: shop, user: shopper, installDir: /srv/shop, node: /usr/local/bin/node }
`;

// ---------------------------------------------------------------------------------------------
// Reading the files back, by the rules systemd documents.

export interface UnitFile {
  sections: { name: string; entries: [string, string][] }[];
}

/** systemd.syntax(7); strict: a continued line (which we never write) is an error. */
export function parseUnit(text: string): UnitFile {
  const out: UnitFile = { sections: [] };
  for (const line of text.split("\n")) {
    if (/^\s*$/.test(line) || /^\s*[#;]/.test(line)) continue;
    if (/(^|[^\\])(\\\\)*\\$/.test(line)) throw new Error(`a line continues: ${JSON.stringify(line)}`);
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section) {
      out.sections.push({ name: section[1] as string, entries: [] });
      continue;
    }
    const eq = line.indexOf("=");
    const current = out.sections.at(-1);
    if (eq < 0 || !current) throw new Error(`not a key=value line: ${JSON.stringify(line)}`);
    current.entries.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return out;
}

export function values(u: UnitFile, section: string, key: string): string[] {
  return u.sections.filter((s) => s.name === section).flatMap((s) => s.entries.filter(([k]) => k === key).map(([, v]) => v));
}

export function keys(u: UnitFile): string[] {
  return u.sections.flatMap((s) => s.entries.map(([k]) => `${s.name}.${k}`));
}

/** Specifier expansion: `%%` is `%`, `%i` the instance; any other specifier is a failure here. */
export function specifiers(s: string, instance: string | null): string {
  return s.replace(/%(.)/g, (_, c: string) => {
    if (c === "%") return "%";
    if (c === "i" && instance !== null) return instance;
    throw new Error(`unexpected specifier %${c} in ${JSON.stringify(s)}`);
  });
}

export const C_ESCAPES: Record<string, string> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\", '"': '"', "'": "'", s: " " };

/** Words as systemd splits a command line or a list: quotes, then C escapes (extract_first_word with UNQUOTE|CUNESCAPE). */
export function words(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (s[i] === " " || s[i] === "\t") i++;
    if (i >= s.length) break;
    let word = "";
    let quote: string | null = null;
    for (; i < s.length; i++) {
      const c = s[i] as string;
      if (quote === null && (c === " " || c === "\t")) break;
      if (quote === null && (c === '"' || c === "'") && word === "") {
        quote = c;
        continue;
      }
      if (c === quote) {
        quote = null;
        continue;
      }
      if (c === "\\") {
        const n = s[++i] as string;
        if (n === "x") {
          word += String.fromCharCode(Number.parseInt(s.slice(i + 1, i + 3), 16));
          i += 2;
        } else if (n in C_ESCAPES) word += C_ESCAPES[n];
        else throw new Error(`unknown escape \\${n} in ${JSON.stringify(s)}`);
        continue;
      }
      word += c;
    }
    if (quote !== null) throw new Error(`unterminated quote in ${JSON.stringify(s)}`);
    out.push(word);
  }
  return out;
}

/**
 * An ExecStart= line as the executable and the arguments the process gets: words, specifiers,
 * then, in the arguments only, `$$` → `$` (no other variable may appear).
 */
export function argv(line: string, instance: string): string[] {
  return words(line).map((w, i) =>
    i === 0
      ? specifiers(w, instance)
      : specifiers(w, instance).replace(/\$(\$|\{?[A-Za-z_])/g, (m, c: string) => {
          if (c === "$") return "$";
          throw new Error(`an environment variable is expanded in ${JSON.stringify(w)}: ${m}`);
        }),
  );
}

/** An environment file as systemd 252 reads it (src/basic/env-file.c, parse_env_file_internal). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  type State = "preKey" | "key" | "preValue" | "value" | "valueEscape" | "single" | "double" | "doubleEscape" | "comment" | "commentEscape";
  let state: State = "preKey";
  let key = "";
  let value = "";
  const emit = () => {
    out[key.trim()] = value;
    key = "";
    value = "";
  };
  for (const c of text) {
    const nl = c === "\n" || c === "\r";
    const ws = c === " " || c === "\t" || nl;
    switch (state) {
      case "preKey":
        if (c === "#" || c === ";") state = "comment";
        else if (!ws) {
          state = "key";
          key = c;
        }
        break;
      case "key":
        if (nl) {
          state = "preKey";
          key = "";
        } else if (c === "=") state = "preValue";
        else key += c;
        break;
      case "preValue":
        if (nl) {
          state = "preKey";
          emit();
        } else if (c === "'") state = "single";
        else if (c === '"') state = "double";
        else if (c === "\\") state = "valueEscape";
        else if (!ws) {
          state = "value";
          value += c;
        }
        break;
      case "value":
        if (nl) {
          state = "preKey";
          value = value.replace(/[ \t]+$/, "");
          emit();
        } else if (c === "\\") state = "valueEscape";
        else value += c;
        break;
      case "valueEscape":
        state = "value";
        if (!nl) value += c;
        break;
      case "single":
        if (c === "'") state = "preValue";
        else value += c;
        break;
      case "double":
        if (c === '"') state = "preValue";
        else if (c === "\\") state = "doubleEscape";
        else value += c;
        break;
      case "doubleEscape":
        state = "double";
        if ('"\\`$'.includes(c)) value += c;
        else if (c !== "\n") value += `\\${c}`;
        break;
      case "comment":
        if (c === "\\") state = "commentEscape";
        else if (nl) state = "preKey";
        break;
      case "commentEscape":
        state = "comment";
        break;
    }
  }
  if (state !== "preKey") throw new Error(`the file ends in state ${state}`);
  return out;
}
// ---------------------------------------------------------------------------------------------
// Hostile text.

export const NASTY = `%n %% %i $HOME \${PATH} $$ "dq" 'sq' \`id\` \\ \\\\ \\"`;
export const hostileEnv: Record<string, string> = {
  NASTY,
  LINES: "one\nExecStartPre=/bin/sh -c 'id'\n[Service]\nUser=root",
  TRAILING: "ends in a backslash \\",
  CONTINUED: "a \\\nB=injected",
  SPACES: "  lead and trail  ",
  EMPTY: "",
  CONTROL: "tab\there\rcr\u001bescape\u007fdel",
  UNICODE: "ünïcödé \u2028 \u0085",
};
export const yamlString = (s: string) => JSON.stringify(s);
export const hostileDescription = `evil ${NASTY}\nExecStartPre=/bin/sh -c "id"\n[Install]\nWantedBy=sysinit.target \\`;
export const hostileInstallDir = `/opt/my app/%h/$HOME/"q'\\x;y\`z\`/ünï`;
// systemd starts no executable whose path holds a quote or a backslash: those are refused below.
// biome-ignore lint/suspicious/noTemplateCurlyInString: a literal `${x}`, which systemd must not expand
export const hostileNode = "/opt/node %i/$bin/${x}/no;de";
export const hostileState = `state dir/%h/$X/"q'\\b/ö`;
// Inside the data folder (the only one the units may write: a path that leaves it is a
// target-constraint error), yet full of what unit files, environment files and shells treat specially.
export const hostileSink = `cron.d/x%h$y"'\n.jsonl`;
export const hostileText = `
mbc: 1
name: hostile
description: ${yamlString(hostileDescription)}
sources:
  in: { type: http, port: 8080, path: ${yamlString("/rec%h$x='..")}, to: work }
  file-in: { type: file, path: ${yamlString(`../../../etc/%h/$x"'\n.jsonl`)}, to: work }
services:
  work:
    handler: builtin:passthrough
    env:
${Object.entries(hostileEnv)
  .map(([k, v]) => `      ${k}: ${yamlString(v)}`)
  .join("\n")}
      NUMBER: 3
      BOOL: true
    config: { x-note: ${yamlString("%n\n[Service]\nUser=root")} }
    to: sink
  sink:
    handler: builtin:jsonl-sink
    config: { path: ${yamlString(hostileSink)} }
checkpoint: { dir: ${yamlString(hostileState)} }
targets:
  systemd: { installDir: ${yamlString(hostileInstallDir)}, node: ${yamlString(hostileNode)} }
`;
export const hostileSpecName = "evil\nExecStart=/bin/sh -c id #.yaml \\";
