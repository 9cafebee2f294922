/** Byte-level checks before YAML sees the text: size cap, NUL bytes, invalid UTF-8, BOM. */

export const MAX_SPEC_BYTES = 16 * 1024 * 1024;

export type TextProblem = { offset: number; message: string; hint: string };

export type DecodeResult = { ok: true; text: string } | { ok: false; problem: TextProblem; text: string };

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence, or -1. */
export function findInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Decodes a spec file's bytes, reporting the first problem with its byte offset turned into a text offset. */
export function decodeSpec(bytes: Uint8Array, maxBytes = MAX_SPEC_BYTES, size = bytes.length): DecodeResult {
  if (size > maxBytes) {
    return {
      ok: false,
      text: "",
      problem: {
        offset: 0,
        message: `the file is ${size} bytes, over the limit of ${maxBytes} bytes`,
        hint: "a spec describes one system and is far smaller; check that this is the right file",
      },
    };
  }
  const bad = findInvalidUtf8(bytes);
  const upto = bad === -1 ? bytes.length : bad;
  let text = new TextDecoder("utf-8").decode(bytes.subarray(0, upto));
  const bom = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  if (bom) text = text.slice(1);
  if (bad !== -1) {
    return {
      ok: false,
      text,
      problem: {
        offset: text.length,
        message: `invalid UTF-8 (byte 0x${(bytes[bad] as number).toString(16).padStart(2, "0")} at byte offset ${bad})`,
        hint: "save the file as UTF-8",
      },
    };
  }
  const nul = text.indexOf("\0");
  if (nul !== -1) {
    return {
      ok: false,
      text,
      problem: { offset: nul, message: "the file contains a NUL byte", hint: "a spec is a text file: remove the NUL byte (is this a binary file?)" },
    };
  }
  return { ok: true, text };
}
