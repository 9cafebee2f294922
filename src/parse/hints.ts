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
  /** Whether it starts with a `- ` item mark. */
  item: boolean;
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
      out.push({ no, item: item.includes("-"), start, col: item.length, key: m ? (m[1] as string) : null, value: m ? (m[2] as string).trim() : "", body });
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
  /** The line numbers whose errors are its consequences. */
  first: number;
  last: number;
  /** The line the key should line up with. */
  like: Line;
  /** `less`: indented less than its siblings; `more`: more. */
  how: "less" | "more";
  /** Whether its siblings are on both sides of it (else after it). */
  around: boolean;
  /**
   * When the text cannot tell which of two keys is out of line: the other one, and the line it
   * would line up with. The hint then gives both fixes.
   */
  or?: { line: Line; like: Line };
}

/** The indentation step of the text: how much deeper a mapping's keys most often are than its own key. */
function indentStep(lines: readonly Line[]): number {
  const counts = new Map<number, number>();
  for (let i = 0; i + 1 < lines.length; i++) {
    const [a, b] = [lines[i], lines[i + 1]] as [Line, Line];
    if (a.key !== null && a.value === "" && b.col > a.col) counts.set(b.col - a.col, (counts.get(b.col - a.col) ?? 0) + 1);
  }
  let step = 2;
  let most = 0;
  for (const [d, n] of counts) if (n > most || (n === most && d < step)) [step, most] = [d, n];
  return step;
}

/**
 * Keys out of line with their siblings. Two neighbouring keys K and N disagree on their column
 * when K has a value on its line and N is indented differently. Which is out of line is read from
 * their neighbours: K at or left of the key that opens its mapping; K between two keys that line
 * up (unless K lines up with their parent, and N is the last of them: then either may be, and
 * the hint gives both fixes); N between K and a key that lines up with K; the column the text's
 * usual indentation step gives the keys under an opening key; and, for a last N deeper than K,
 * whether N lines up with a key before K.
 */
function misindents(lines: readonly Line[]): Misindent[] {
  const out: Misindent[] = [];
  const step = indentStep(lines);
  const blockEnd = (from: number, floor: number) => {
    let last = (lines[from] as Line).no;
    for (let j = from; j < lines.length && (lines[j] as Line).col > floor; j++) last = (lines[j] as Line).no;
    return last;
  };
  const opens = (l: Line) => l.key !== null && l.value === "";
  /** The nearest line before index `i` at or left of `col`. */
  const leftOf = (i: number, col: number): Line | undefined => {
    for (let j = i - 1; j >= 0; j--) if ((lines[j] as Line).col <= col) return lines[j];
    return undefined;
  };
  const add = (w: Misindent) => {
    // One diagnostic a line: a second finding widens the first's reach.
    const same = out.find((o) => o.line === w.line);
    if (same) same.last = Math.max(same.last, w.last);
    else out.push(w);
  };
  for (let i = 1; i + 1 < lines.length; i++) {
    const [p, k, n] = [lines[i - 1], lines[i], lines[i + 1]] as [Line, Line, Line];
    const m = lines[i + 2];
    // Items (`- key: value`) line up by their dash, which this does not judge.
    if (!hasInlineValue(k) || n.key === null || n.col === k.col || k.item || n.item) continue;
    const nAlone = hasInlineValue(n);
    const blameK = (around: boolean) =>
      add({ line: k, first: k.no, last: blockEnd(i + 1, Math.min(k.col, p.col)), like: n, how: k.col < n.col ? "less" : "more", around });
    const blameN = (around: boolean) => add({ line: n, first: k.no, last: n.no, like: k, how: n.col < k.col ? "less" : "more", around });
    if (opens(p) && k.col <= p.col && n.col > p.col) blameK(false);
    else if (!opens(p) && p.col === n.col) {
      const parent = leftOf(i - 1, p.col - 1);
      const lastOfRun = m === undefined || m.col < n.col;
      if (parent === undefined || parent.col < k.col || alignedAfter(lines, i + 1, k.col) >= 2) blameK(true);
      else if (nAlone && lastOfRun) add({ line: k, first: k.no, last: n.no, like: n, how: "less", around: true, or: { line: n, like: k } });
    } else if (nAlone && m !== undefined && m.col === k.col && n.col > k.col) blameN(true);
    else if (opens(p) && p.col < k.col) {
      const childCol = p.col + step;
      if (k.col !== childCol && n.col === childCol) blameK(false);
      else if (k.col === childCol && nAlone && n.col > k.col) blameN(false);
    } else if (nAlone && n.col > k.col && (m === undefined || m.col <= k.col)) {
      if (leftOf(i, n.col)?.col === n.col) blameK(false);
      else blameN(false);
    }
  }
  return out;
}

/** How many lines from index `from` on line up with it before the block (deeper than `floor`) ends. */
function alignedAfter(lines: readonly Line[], from: number, floor: number): number {
  const col = (lines[from] as Line).col;
  let count = 0;
  for (let j = from; j < lines.length && (lines[j] as Line).col > floor; j++) if ((lines[j] as Line).col === col) count++;
  return count;
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
    const wrong = wrongIndents.find((w) => w.first <= at.no && at.no <= w.last);
    if (wrong) {
      if (explained.has(wrong)) return null;
      explained.add(wrong);
      const key = quoteKey(wrong.line.key as string);
      const fix = (line: Line, like: Line) =>
        `indent ${quoteKey(line.key as string)} to column ${like.col + 1}, as ${quoteKey(like.key as string)} on line ${like.no} is`;
      if (wrong.or) {
        const other = quoteKey(wrong.or.line.key as string);
        return {
          offset: wrong.line.start + wrong.line.col,
          message: `${key} and ${other} on the next line are indented differently, so they are not keys of one mapping`,
          hint: `if they belong together, ${fix(wrong.or.line, wrong.or.like)}; if ${key} belongs with the keys above it, ${fix(wrong.line, wrong.like)}`,
        };
      }
      return {
        offset: wrong.line.start + wrong.line.col,
        message: `${key} is indented ${wrong.how} than the ${wrong.around ? "keys around it" : wrong.like.no < wrong.line.no ? "key above it" : "keys after it"}`,
        hint: `${fix(wrong.line, wrong.like)}: a key's indentation says which mapping it belongs to`,
      };
    }
    // The last key of a mapping, indented less than the key above it.
    const above = lines[lines.indexOf(at) - 1];
    if (error.code === "BAD_INDENT" && at.key !== null && above?.key && !above.item && above.col > at.col && (above.value === "" || hasInlineValue(above))) {
      const key = quoteKey(at.key);
      return {
        offset: at.start + at.col,
        message: `${key} is indented less than the key above it`,
        hint: `if ${key} belongs with ${quoteKey(above.key)} on line ${above.no}, indent it to column ${above.col + 1}: a key's indentation says which mapping it belongs to`,
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
