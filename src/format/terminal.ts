/**
 * Text from a spec (keys, values, comments in a code frame, file names) reaches a terminal, or a
 * CI log that is read as lines. A control character in it could set the window title, clear the
 * screen, write the clipboard (OSC 52) or start a line that looks like one of mbc's, or a CI
 * system's; so it is shown escaped, as `\e`, `\n`, `\u0007`. Only mbc's own colours are sent raw:
 * they are added after this escaping.
 */

const NAMED: Readonly<Record<string, string>> = { "\u001b": "\\e", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * C0 and C1 controls and DEL; the line and paragraph separators, which some viewers break lines
 * at; and the bidirectional controls, which reorder what is shown ("Trojan Source").
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters to escape
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeOne(ch: string): string {
  return NAMED[ch] ?? `\\u${(ch.codePointAt(0) as number).toString(16).padStart(4, "0")}`;
}

/** The text with every control character escaped. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, escapeOne);
}

/** The same, but line breaks (CR, LF) are kept: for formats that encode them in their own way. */
export function escapeControlsExceptLineBreaks(text: string): string {
  return text.replace(CONTROLS, (ch) => (ch === "\n" || ch === "\r" ? ch : escapeOne(ch)));
}
