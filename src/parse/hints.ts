/**
 * Better words for yaml's syntax errors, for the slips newcomers make most: a key indented too
 * little (yaml reports it as several errors on the lines after it, none about indentation), a
 * value with ": " in it, and a key without a space after its colon. Each is recognised from the
 * lines of the text around the error, not from the error's wording.
 */

/** A syntax error as yaml reports it. */
export interface YamlError {
  code: string;
  pos: [number, number];
  message: string;
}

export interface Explained {
  offset: number;
  message: string;
  hint: string;
}

interface Line {
  /** 1-based. */
  no: number;
  start: number;
  /** Column (0-based) of what the line holds after its indentation and any `- ` item marks. */
  col: number;
  /** The key of a `key: value` or `key:` line. */
  key: string | null;
  /** What follows the key's colon, without a trailing comment, trimmed. */
  value: string;
  /** What the line holds after its indentation and item marks, without a trailing comment. */
  body: string;
}

const KEY = /^([A-Za-z_$][\w$.-]*|"[^"\n]*"|'[^'\n]*')[ \t]*:(?=[ \t]|$)(.*)$/;

/** A comment starts at " #" outside quotes; good enough for the one line a hint looks at. */
function withoutComment(text: string): string {
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === "#" && (i === 0 || text[i - 1] === " " || text[i - 1] === "\t")) return text.slice(0, i).trimEnd();
  }
  return text.trimEnd();
}

/** The lines that hold something: not blank, not only a comment, not a document marker. */
function significantLines(text: string): Line[] {
  const out: Line[] = [];
  let start = 0;
  let no = 1;
  while (start <= text.length) {
    const end = text.indexOf("\n", start);
    const raw = text.slice(start, end === -1 ? text.length : end).replace(/\r$/, "");
    const item = /^[ ]*(?:-[ ]+)*/.exec(raw)?.[0] ?? "";
    const body = withoutComment(raw.slice(item.length));
    if (body !== "" && !/^(---|\.\.\.)(\s|$)/.test(raw)) {
      const m = KEY.exec(body);
      out.push({ no, start, col: item.length, key: m ? (m[1] as string) : null, value: m ? (m[2] as string).trim() : "", body });
    }
    if (end === -1) break;
    start = end + 1;
    no++;
  }
  return out;
}

const quoteKey = (key: string) => (key.startsWith('"') || key.startsWith("'") ? key : `"${key}"`);

/** A `key: value` line whose value ends there (not a block, nor a flow collection or a quoted text that goes on). */
function hasInlineValue(line: Line): boolean {
  if (line.key === null || line.value === "" || /^[|>]/.test(line.value) || /^[&!]\S*$/.test(line.value)) return false;
  const v = line.value;
  if (v.startsWith('"')) return /^"(?:[^"\\]|\\.)*"$/.test(v);
  if (v.startsWith("'")) return /^'(?:[^']|'')*'$/.test(v);
  if (v.startsWith("{")) return v.endsWith("}");
  if (v.startsWith("[")) return v.endsWith("]");
  return true;
}

interface Misindent {
  line: Line;
  /** The last line number of the block that follows it, whose errors are its consequences. */
  last: number;
  /** The line the key should line up with. */
  like: Line;
  around: boolean;
}

/**
 * Keys indented too little: a `key: value` line followed by keys indented more, where the line
 * before it either lines up with those keys or opens the mapping they belong to.
 */
function misindents(lines: readonly Line[]): Misindent[] {
  const out: Misindent[] = [];
  for (let i = 1; i + 1 < lines.length; i++) {
    const [p, k, n] = [lines[i - 1], lines[i], lines[i + 1]] as [Line, Line, Line];
    if (!hasInlineValue(k) || n.key === null || n.col <= k.col) continue;
    const around = p.col === n.col;
    const opens = p.key !== null && p.value === "" && p.col >= k.col;
    if (!around && !opens) continue;
    let last = n.no;
    for (let j = i + 1; j < lines.length && (lines[j] as Line).col > k.col; j++) last = (lines[j] as Line).no;
    out.push({ line: k, last, like: n, around });
  }
  return out;
}

/**
 * A function that, given yaml's errors one by one in order, returns a better diagnostic for an
 * error it recognises, `null` for an error that is a consequence of one already explained, and
 * `undefined` to keep yaml's own.
 */
export function yamlErrorHints(text: string): (error: YamlError) => Explained | null | undefined {
  let lines: Line[] | undefined;
  let wrongIndents: Misindent[] = [];
  const explained = new Set<Misindent>();
  const lineAt = (offset: number): Line | undefined => {
    let found: Line | undefined;
    for (const l of lines ?? []) {
      if (l.start > offset) break;
      found = l;
    }
    return found;
  };
  return (error) => {
    if (lines === undefined) {
      lines = significantLines(text);
      wrongIndents = misindents(lines);
    }
    const at = lineAt(error.pos[0]);
    if (at === undefined) return undefined;
    const wrong = wrongIndents.find((w) => w.line.no <= at.no && at.no <= w.last);
    if (wrong) {
      if (explained.has(wrong)) return null;
      explained.add(wrong);
      const key = quoteKey(wrong.line.key as string);
      return {
        offset: wrong.line.start + wrong.line.col,
        message: `${key} is indented less than the keys ${wrong.around ? "around" : "after"} it`,
        hint: `indent ${key} to column ${wrong.like.col + 1}, as ${quoteKey(wrong.like.key as string)} on line ${wrong.like.no} is: a key's indentation says which mapping it belongs to`,
      };
    }
    // The last key of a mapping, indented less than the key above it.
    const above = lines[lines.indexOf(at) - 1];
    if (error.code === "BAD_INDENT" && at.key !== null && above?.key && above.col > at.col && (above.value === "" || hasInlineValue(above))) {
      const key = quoteKey(at.key);
      return {
        offset: at.start + at.col,
        message: `${key} is indented less than the key above it`,
        hint: `indent ${key} to column ${above.col + 1}, as ${quoteKey(above.key)} on line ${above.no} is: a key's indentation says which mapping it belongs to`,
      };
    }
    // `description: Orders: the main pipeline`: the value's own ": " starts a mapping.
    if (hasInlineValue(at) && !/^["'{[]/.test(at.value) && /:(\s|$)/.test(at.value)) {
      const key = at.key as string;
      return {
        offset: at.start + at.col + at.body.indexOf(at.value, key.length),
        message: `the value of ${quoteKey(key)} holds ": ", which YAML reads as the start of a mapping`,
        hint: `quote the value: ${key}: ${JSON.stringify(at.value)}`,
      };
    }
    // `port:8080`: without a space after the colon, it is one piece of text.
    const glued = /^([A-Za-z_][\w-]*):([^\s/:][^\s]*)$/.exec(at.body);
    if (at.key === null && glued) {
      return {
        offset: at.start + at.col,
        message: `"${at.body}" is read as text, not as a key and a value: there is no space after the colon`,
        hint: `put a space after the colon: ${glued[1]}: ${glued[2]}`,
      };
    }
    return undefined;
  };
}
