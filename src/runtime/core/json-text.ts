/**
 * Records as JSON texts. A source logs each record as the JSON text it was given (one line) and
 * sends a batch on as the concatenation of those texts: parsing a body into values only to
 * serialise every record again costs more than the rest of the source's work on it, and the
 * texts are all the log and the wire need.
 *
 * So a body is checked and cut in one pass by a scanner that accepts exactly the grammar
 * JSON.parse accepts (RFC 8259: no trailing commas, no comments, strings without raw control
 * characters, numbers without leading zeros or a bare dot) and allocates nothing but the texts
 * it returns. Where it refuses, JSON.parse is asked again for its reason, so error messages stay
 * those of the platform.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LF = 0x0a;
const CR = 0x0d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

/** Set by `valueEnd` when the value it scanned has a line break in it (white space between tokens). */
let lineBreak = false;
/** The open containers of the value being scanned (true: an object), reused between calls. */
const open: boolean[] = [];

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

function isHex(c: number): boolean {
  return (c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** Skips JSON white space (space, tab, LF, CR) from `at`, noting line breaks. */
function skipSpace(text: string, at: number): number {
  for (;;) {
    const c = text.charCodeAt(at);
    if (c === 0x20 || c === 0x09) at++;
    else if (c === LF || c === CR) {
      lineBreak = true;
      at++;
    } else return at;
  }
}

/** The index past the string whose opening quote is at `at`, or -1 when it is not a valid JSON string. */
function stringEnd(text: string, at: number): number {
  const n = text.length;
  let i = at + 1;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) {
      const e = text.charCodeAt(i + 1);
      if (e === 0x75) {
        if (!(isHex(text.charCodeAt(i + 2)) && isHex(text.charCodeAt(i + 3)) && isHex(text.charCodeAt(i + 4)) && isHex(text.charCodeAt(i + 5)))) return -1;
        i += 6;
      } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        i += 2;
      } else return -1;
    } else if (c < 0x20) return -1;
    else i++;
  }
  return -1;
}

/** The index past the number that starts at `at`, or -1. */
function numberEnd(text: string, at: number): number {
  let i = at;
  if (text.charCodeAt(i) === MINUS) i++;
  const first = text.charCodeAt(i);
  if (first === ZERO) i++;
  else if (first > ZERO && first <= NINE) {
    do i++;
    while (isDigit(text.charCodeAt(i)));
  } else return -1;
  if (text.charCodeAt(i) === DOT) {
    i++;
    if (!isDigit(text.charCodeAt(i))) return -1;
    do i++;
    while (isDigit(text.charCodeAt(i)));
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === PLUS || sign === MINUS) i++;
    if (!isDigit(text.charCodeAt(i))) return -1;
    do i++;
    while (isDigit(text.charCodeAt(i)));
  }
  return i;
}

/** The index past `word` when the text has it at `at`, or -1. */
function literalEnd(text: string, at: number, word: string): number {
  return text.startsWith(word, at) ? at + word.length : -1;
}

/** After an object's `{` or `,` (and white space): the index past `"key" :` and the white space after it, or -1. */
function memberStart(text: string, at: number): number {
  if (text.charCodeAt(at) !== QUOTE) return -1;
  let i = stringEnd(text, at);
  if (i === -1) return -1;
  i = skipSpace(text, i);
  if (text.charCodeAt(i) !== COLON) return -1;
  return skipSpace(text, i + 1);
}

/**
 * The index past the JSON value that starts at `at` (no white space before it), or -1 when no
 * valid value starts there. Iterative, so nesting depth costs memory, not stack.
 */
export function valueEnd(text: string, at: number): number {
  lineBreak = false;
  open.length = 0;
  let i = at;
  for (;;) {
    // A value starts at i.
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = stringEnd(text, i);
    else if (c === OPEN_OBJECT) {
      i = skipSpace(text, i + 1);
      if (text.charCodeAt(i) === CLOSE_OBJECT) i++;
      else {
        i = memberStart(text, i);
        if (i === -1) return -1;
        open.push(true);
        continue;
      }
    } else if (c === OPEN_ARRAY) {
      i = skipSpace(text, i + 1);
      if (text.charCodeAt(i) === CLOSE_ARRAY) i++;
      else {
        open.push(false);
        continue;
      }
    } else if (c === 0x74) i = literalEnd(text, i, "true");
    else if (c === 0x66) i = literalEnd(text, i, "false");
    else if (c === 0x6e) i = literalEnd(text, i, "null");
    else i = numberEnd(text, i);
    if (i === -1) return -1;
    // After a value: close containers until one takes another value.
    for (;;) {
      if (open.length === 0) return i;
      i = skipSpace(text, i);
      const next = text.charCodeAt(i);
      const inObject = open[open.length - 1] as boolean;
      if (next === COMMA) {
        i = skipSpace(text, i + 1);
        if (inObject) {
          i = memberStart(text, i);
          if (i === -1) return -1;
        }
        break;
      }
      if (next !== (inObject ? CLOSE_OBJECT : CLOSE_ARRAY)) return -1;
      open.pop();
      i++;
    }
  }
}

/** A value's text on one line: as written, or serialised compactly when written over several lines. */
function oneLine(text: string, start: number, end: number, broken: boolean): string {
  const slice = text.slice(start, end);
  return broken ? JSON.stringify(JSON.parse(slice)) : slice;
}

/** Pushes the texts of the elements of the array whose `[` is at `at` (each on one line); the index past its `]`, or -1. */
function arrayElements(text: string, at: number, texts: string[]): number {
  let i = skipSpace(text, at + 1);
  if (text.charCodeAt(i) === CLOSE_ARRAY) return i + 1;
  for (;;) {
    const end = valueEnd(text, i);
    if (end === -1) return -1;
    texts.push(oneLine(text, i, end, lineBreak));
    i = skipSpace(text, end);
    const c = text.charCodeAt(i);
    if (c === CLOSE_ARRAY) return i + 1;
    if (c !== COMMA) return -1;
    i = skipSpace(text, i + 1);
  }
}

/**
 * The texts of the elements of the JSON array whose `[` is at `at` in `text`, when the text from
 * there on is that array and nothing else but white space; null when it is not valid JSON. Each
 * text is the element as written, without the white space around it; an element written over
 * several lines comes back serialised compactly (a log line holds one record).
 */
export function splitJsonArray(text: string, at: number): string[] | null {
  const texts: string[] = [];
  const end = arrayElements(text, at, texts);
  return end !== -1 && skipSpace(text, end) === text.length ? texts : null;
}

/**
 * A `POST /batch` body cut rather than parsed: `id` and `via` as values, the records as their
 * texts (each on one line). Null when the text is not valid JSON, not an object, or has no
 * `records` array: the caller parses it then, for the reason. Other members are checked as
 * JSON and ignored; of a repeated member the last counts, as with JSON.parse.
 */
export function splitWireBatch(text: string): { id: unknown; via: unknown; texts: string[] } | null {
  let i = skipSpace(text, 0);
  if (text.charCodeAt(i) !== OPEN_OBJECT) return null;
  i = skipSpace(text, i + 1);
  let id: unknown;
  let via: unknown;
  let texts: string[] | null = null;
  if (text.charCodeAt(i) === CLOSE_OBJECT) return null;
  for (;;) {
    if (text.charCodeAt(i) !== QUOTE) return null;
    const keyEnd = stringEnd(text, i);
    if (keyEnd === -1) return null;
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipSpace(text, keyEnd);
    if (text.charCodeAt(i) !== COLON) return null;
    i = skipSpace(text, i + 1);
    if (key === "records" && text.charCodeAt(i) === OPEN_ARRAY) {
      texts = [];
      i = arrayElements(text, i, texts);
    } else {
      const end = valueEnd(text, i);
      if (end === -1) return null;
      if (key === "id") id = JSON.parse(text.slice(i, end));
      else if (key === "via") via = JSON.parse(text.slice(i, end));
      else if (key === "records") texts = null;
      i = end;
    }
    if (i === -1) return null;
    i = skipSpace(text, i);
    const c = text.charCodeAt(i);
    if (c === CLOSE_OBJECT) break;
    if (c !== COMMA) return null;
    i = skipSpace(text, i + 1);
  }
  if (skipSpace(text, i + 1) !== text.length || texts === null) return null;
  return { id, via, texts };
}

/** `text` (with no white space around it) as one line when it is one valid JSON value, else null. */
export function jsonLine(text: string): string | null {
  if (valueEnd(text, 0) !== text.length) return null;
  return oneLine(text, 0, text.length, lineBreak);
}

/** UTF-8 sizes of `texts`; `ascii` (they come from as many bytes as characters) spares counting. */
export function textBytes(texts: readonly string[], ascii: boolean): number[] {
  const bytes = new Array<number>(texts.length);
  for (let k = 0; k < texts.length; k++) {
    const text = texts[k] as string;
    bytes[k] = ascii ? text.length : Buffer.byteLength(text);
  }
  return bytes;
}

/**
 * The body of `POST /batch` for records given as JSON texts: what JSON.stringify of
 * `{id, via, records}` gives, without parsing the records.
 */
export function encodeTextBatch(id: string, via: readonly string[], texts: readonly string[]): Buffer {
  return Buffer.from(`{"id":${JSON.stringify(id)},"via":${JSON.stringify(via)},"records":[${texts.join(",")}]}`);
}
