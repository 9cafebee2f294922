/**
 * The scanner that checks and cuts record texts (src/runtime/json-text.ts) must accept exactly
 * what JSON.parse accepts: it is checked against JSON.parse on hand-picked edge cases and on
 * many random texts, valid ones and mutated ones.
 */
import { describe, expect, it } from "vitest";
import { encodeTextBatch, jsonLine, splitJsonArray, splitWireBatch, textBytes, valueEnd } from "../../src/runtime/core/json-text.js";

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Whether the scanner takes `text` as one JSON value with optional white space around it. */
function scans(text: string): boolean {
  let start = 0;
  while (start < text.length && " \t\n\r".includes(text[start] as string)) start++;
  let end = text.length;
  while (end > start && " \t\n\r".includes(text[end - 1] as string)) end--;
  return valueEnd(text, start) === end;
}

/** A small seeded generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  '"',
  "\\",
  "\\u00e9",
  "\\x",
  "[",
  "]",
  "{",
  "}",
  ",",
  ":",
  " ",
  "\n",
  "\r",
  "\t",
  "0",
  "01",
  "-",
  "+",
  ".",
  "e",
  "E",
  "1.",
  ".5",
  "true",
  "tru",
  "null",
  "nul",
  "false",
  "a",
  "é",
  "\u0001",
  "\u2028",
  "\uFEFF",
];

function randomValue(next: () => number, depth: number): unknown {
  const kind = Math.floor(next() * (depth > 3 ? 5 : 7));
  switch (kind) {
    case 0:
      return null;
    case 1:
      return next() < 0.5;
    case 2: {
      const numbers = [0, -0, 1, -1, 0.5, -12.25, 1e21, 1e-7, 123456789, Number.MAX_SAFE_INTEGER];
      return numbers[Math.floor(next() * numbers.length)];
    }
    case 3:
    case 4: {
      let text = "";
      const length = Math.floor(next() * 6);
      for (let k = 0; k < length; k++) text += ["a", '"', "\\", "/", "\n", "\u0000", "é", "\u2028", "]", "}", ",", "\uD83D\uDE00"][Math.floor(next() * 12)];
      return text;
    }
    case 5:
      return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: Math.floor(next() * 4) }, (_, k) => [`k${k}${k % 2 === 0 ? '"' : ""}`, randomValue(next, depth + 1)]));
  }
}

/** JSON text of `value` with random white space between tokens. */
function spaced(value: unknown, next: () => number): string {
  const pad = () => [" ", "", "\n", "\t", "\r\n", ""][Math.floor(next() * 6)] as string;
  if (Array.isArray(value)) return `[${pad()}${value.map((v) => spaced(v, next)).join(`${pad()},${pad()}`)}${pad()}]`;
  if (value !== null && typeof value === "object") {
    const members = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}${pad()}:${pad()}${spaced(v, next)}`);
    return `{${pad()}${members.join(`${pad()},${pad()}`)}${pad()}}`;
  }
  return JSON.stringify(value);
}

function mutate(text: string, next: () => number): string {
  const at = Math.floor(next() * (text.length + 1));
  const piece = PIECES[Math.floor(next() * PIECES.length)] as string;
  const how = next();
  if (how < 0.33) return text.slice(0, at) + piece + text.slice(at);
  if (how < 0.66) return text.slice(0, at) + text.slice(at + 1);
  return text.slice(0, at) + piece + text.slice(at + 1);
}

describe("json-text: checking JSON like JSON.parse", () => {
  it("agrees with JSON.parse on edge cases", () => {
    const cases = [
      "0",
      "-0",
      "01",
      "-",
      "1.",
      ".5",
      "1e",
      "1e+",
      "1E-2",
      "1.5e10",
      "-01",
      "2.",
      "true",
      "tru",
      "truex",
      "null",
      "nul",
      '""',
      '"\\"',
      '"\\u12"',
      '"\\u12G4"',
      '"\\uD800"',
      '"\\x"',
      '"\\/"',
      '"a\u0001"',
      '"tab\there"',
      '"\u2028"',
      "[]",
      "[ ]",
      "[,]",
      "[1,]",
      "[1 2]",
      "{}",
      '{"a"}',
      '{"a":}',
      '{"a":1,}',
      '{"a":1 "b":2}',
      "{a:1}",
      '{"a":1}}',
      "[[[[[]]]]]",
      "[[[[[]]]]",
      "[1]]",
      '["]"]',
      "",
      " ",
      "\uFEFF1",
      "1\u00a0",
      "[1]\n[2]",
      "NaN",
      "Infinity",
      "-Infinity",
      "0x10",
      "'a'",
      "[1,\n2]",
      "{\r\n}",
    ];
    for (const text of cases) expect({ text, scans: scans(text) }).toEqual({ text, scans: parses(text) });
  });

  it("agrees with JSON.parse on random texts, valid and mutated", () => {
    const next = random(20_240_601);
    let valid = 0;
    let invalid = 0;
    for (let k = 0; k < 4000; k++) {
      let text = spaced(randomValue(next, 0), next);
      const mutations = Math.floor(next() * 3);
      for (let m = 0; m < mutations; m++) text = mutate(text, next);
      const expected = parses(text);
      if (expected) valid++;
      else invalid++;
      if (scans(text) !== expected) expect({ text, scans: scans(text) }).toEqual({ text, scans: expected });
      // An array is cut into the texts of its elements, each on one line.
      const at = text.search(/\S/);
      if (at >= 0 && text[at] === "[" && " \t\n\r".includes(text[at - 1] ?? " ")) {
        const texts = splitJsonArray(text, at);
        const value = expected && text.slice(0, at).trim() === "" ? (JSON.parse(text) as unknown) : null;
        if (Array.isArray(value)) {
          expect(texts?.map((t) => JSON.parse(t) as unknown)).toEqual(value);
          for (const t of texts ?? []) expect(t).not.toMatch(/[\r\n]/);
        } else expect(texts).toBeNull();
      }
    }
    // The generator must exercise both sides.
    expect(valid).toBeGreaterThan(1000);
    expect(invalid).toBeGreaterThan(500);
  });

  it("keeps an element's text as written and puts one written over lines on one line", () => {
    expect(splitJsonArray(' [ {"a": 1} ,2,"x"\t] \n', 1)).toEqual(['{"a": 1}', "2", '"x"']);
    expect(splitJsonArray('[{"a":\n 1}, "b\\n"]', 0)).toEqual(['{"a":1}', '"b\\n"']);
    expect(splitJsonArray("[1] x", 0)).toBeNull();
    expect(jsonLine('{"a":\r1}')).toBe('{"a":1}');
    expect(jsonLine('{"a": 1}')).toBe('{"a": 1}');
    expect(jsonLine("{")).toBeNull();
  });

  it("cuts a batch body: id and via as values, the records as texts; anything else is left to JSON.parse", () => {
    expect(splitWireBatch('{"id":"o-1","via":["o"],"records":[{"a":1},2]}')).toEqual({ id: "o-1", via: ["o"], texts: ['{"a":1}', "2"] });
    expect(splitWireBatch(' {"records": [] ,"id" :"o-\\u0031", "x": null, "records": ["r"]}\n')).toEqual({ id: "o-1", via: undefined, texts: ['"r"'] });
    for (const text of [
      "",
      "[]",
      "{}",
      '{"id":"x"}',
      '{"records":{}}',
      '{"records":[1],}',
      '{"records":[1]',
      '{"records":[1]} 1',
      '{"records":[01]}',
      "{records:[1]}",
    ]) {
      expect({ text, cut: splitWireBatch(text) }).toEqual({ text, cut: null });
    }
    // A later member of the same name counts, as with JSON.parse.
    expect(splitWireBatch('{"records":[1],"records":"no"}')).toBeNull();
  });

  it("sizes texts and encodes a batch as JSON.stringify would", () => {
    expect(textBytes(["ab", "é"], false)).toEqual([2, 2]);
    expect(textBytes(["ab"], true)).toEqual([2]);
    const records = [{ a: 1 }, "x", [1, 2], null];
    const texts = records.map((r) => JSON.stringify(r));
    expect(encodeTextBatch('o-"1', ["o"], texts).toString()).toBe(JSON.stringify({ id: 'o-"1', via: ["o"], records }));
    expect(encodeTextBatch("o-1", ["o"], []).toString()).toBe(JSON.stringify({ id: "o-1", via: ["o"], records: [] }));
  });
});
