/**
 * Escaping for the files the systemd target writes. Every value that comes from the spec (or
 * from the command line, like the spec's file name in headers) reaches a unit file, an
 * environment file or a shell script through one of these functions, each written for the rules
 * of the one place it goes:
 *
 * - unit files, systemd.syntax(7): one `Key=value` a line; a line that ends in an odd number of
 *   backslashes continues on the next one; `%` starts a specifier almost everywhere;
 * - command lines, systemd.service(5) "Command lines": words are unquoted and C-unescaped, then
 *   specifiers expand (`%%` is `%`), then environment variables (`$$` is `$`);
 * - environment files, systemd.exec(5) `EnvironmentFile=`: shell-like, a double-quoted value keeps
 *   everything but `"`, `\`, `` ` `` and `$`, which take a backslash;
 * - shell scripts: POSIX single quotes.
 *
 * A value that cannot be written safely (a NUL, a path with `..`) is refused with an
 * UnsafeValueError, never silently changed: only free text (Description=, comments) is tidied.
 */

export class UnsafeValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafeValueError";
  }
}

/** A value already escaped for a unit file. Only the functions below make one. */
export type UnitValue = string & { readonly __unitValue: unique symbol };

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what these look for
const CONTROL = /[\u0000-\u001f\u007f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what these look for
const CONTROLS = /[\u0000-\u001f\u007f]/g;

const unit = (s: string) => s as UnitValue;

/** A line ending in an odd number of backslashes continues on the next line (unit and environment files). */
function dropTrailingBackslashes(s: string): string {
  return s.replace(/\\+$/, "");
}

/**
 * Free text for a unit file (Description=): systemd does not unquote it, so control characters
 * (a newline would start a new key) become spaces, `%` is doubled, and a trailing backslash, which
 * would swallow the next line, is dropped.
 */
export function unitText(s: string): UnitValue {
  return unit(unitTextValue(s).replace(/%/g, "%%"));
}

/** What unitText's value reads as once systemd has parsed it (for tests and docs). */
export function unitTextValue(s: string): string {
  return s
    .replace(CONTROLS, " ")
    .trim()
    .replace(/[\s\\]+$/, "");
}

/** Text of our own (`yes`, `AF_INET AF_INET6`, `%i` where a specifier is meant): checked, not changed. */
export function unitLiteral(s: string): UnitValue {
  if (CONTROL.test(s) || /\\$/.test(s) || s !== s.trim()) throw new UnsafeValueError(`not a unit-file literal: ${JSON.stringify(s)}`);
  return unit(s);
}

/** A unit name, user or group name: a fixed alphabet, nothing to escape (checked all the same). */
export function unitName(s: string): UnitValue {
  if (!/^[A-Za-z0-9_][A-Za-z0-9@_.:-]*$/.test(s)) throw new UnsafeValueError(`not a safe unit, user or group name: ${JSON.stringify(s)}`);
  return unit(s);
}

/**
 * One path as a whole value of a setting that is not unquoted (EnvironmentFile=): only `%` is
 * special. Leading and trailing spaces would be trimmed, so the path must be absolute and
 * checked by safePath.
 */
export function unitPath(path: string): UnitValue {
  if (!path.startsWith("/") || CONTROL.test(path) || /\\$/.test(path) || path !== path.trim())
    throw new UnsafeValueError(`not a safe path: ${JSON.stringify(path)}`);
  return unit(path.replace(/%/g, "%%"));
}

const PLAIN_WORD = /^[A-Za-z0-9/_.,:+=@-]+$/;

function quoted(s: string, dollar: boolean): string {
  if (s.includes("\u0000")) throw new UnsafeValueError(`a NUL cannot be written: ${JSON.stringify(s)}`);
  let body = s.replace(/%/g, "%%");
  if (dollar) body = body.replace(/\$/g, "$$$$");
  if (PLAIN_WORD.test(s)) return body;
  // Inside double quotes systemd applies C escapes: control characters become \xNN.
  body = body.replace(/[\\"]/g, "\\$&").replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return `"${body}"`;
}

/** A specifier that is meant (the instance `%i`), as one word of a command line. */
export interface Specifier {
  specifier: "%i";
}
export const INSTANCE: Specifier = { specifier: "%i" };

/**
 * A command line (ExecStart=): each word quoted when it is not plain, `\` and `"` escaped, `%` →
 * `%%`, control characters as C escapes; `$` → `$$` in the arguments, where systemd substitutes
 * variables, but not in the executable, where it does not. systemd refuses an executable whose
 * name holds a quote, a backslash or a control character ("Executable name contains special
 * characters"), so such a path is refused here.
 */
export function execLine(words: readonly (string | Specifier)[]): UnitValue {
  const [first, ...args] = words;
  if (typeof first !== "string" || !first.startsWith("/"))
    throw new UnsafeValueError(`a command line starts with an absolute path, not ${JSON.stringify(first)}`);
  if (/["'\\]/.test(first) || CONTROL.test(first))
    throw new UnsafeValueError(`systemd cannot start an executable whose path holds a quote, a backslash or a control character: ${JSON.stringify(first)}`);
  return unit([quoted(first, false), ...args.map((w) => (typeof w === "string" ? quoted(w, true) : w.specifier))].join(" "));
}

/** A value followed by the instance specifier `%i`: what a template unit means by it. */
export function withInstance(v: UnitValue, separator: "" | " "): UnitValue {
  return unit(`${v}${separator}%i`);
}

/** A space-separated list that systemd unquotes (ReadWritePaths=): each item quoted as needed, `%` doubled. */
export function unitList(items: readonly string[]): UnitValue {
  return unit(items.map((i) => quoted(i, false)).join(" "));
}

/** A `#` comment line: control characters become spaces, and no trailing backslash (environment files continue comments). */
export function comment(s: string): string {
  return `# ${dropTrailingBackslashes(s.replace(CONTROLS, " ")).trimEnd()}`.trimEnd();
}

/** `KEY="value"` for an environment file: the value exactly, whatever it holds (a NUL cannot be passed to a process). */
export function envAssignment(key: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new UnsafeValueError(`not an environment variable name: ${JSON.stringify(key)}`);
  if (value.includes("\u0000")) throw new UnsafeValueError(`the value of ${key} holds a NUL, which no environment can carry`);
  return `${key}="${value.replace(/["\\`$]/g, "\\$&")}"`;
}

/** A word for a POSIX shell: single-quoted, `'` as `'\''`. */
export function shellWord(s: string): string {
  if (s.includes("\u0000")) throw new UnsafeValueError(`a NUL cannot be written: ${JSON.stringify(s)}`);
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/**
 * An absolute path that every file may hold: no control characters, no empty, `.` or `..`
 * segment, not `/` itself; one trailing slash is dropped. Spaces, quotes, `%`, `$` and the like
 * are fine: each file escapes them.
 */
export function safePath(what: string, path: string): string {
  const p = path.length > 1 ? path.replace(/\/$/, "") : path;
  const why = !p.startsWith("/")
    ? "is not absolute"
    : CONTROL.test(p)
      ? "holds a control character"
      : p === "/"
        ? "is the root folder"
        : p
              .slice(1)
              .split("/")
              .some((seg) => seg === "" || seg === "." || seg === "..")
          ? "has an empty, . or .. segment"
          : p !== p.trim() || /\\$/.test(p)
            ? "starts or ends with a space or a backslash"
            : null;
  if (why !== null) throw new UnsafeValueError(`${what} ${JSON.stringify(path)} ${why}`);
  return p;
}
