import { github } from "./github.js";
import { json } from "./json.js";
import { sarif } from "./sarif.js";
import { stylish } from "./stylish.js";
import type { Formatter } from "./types.js";

export type { FormatContext, Formatter } from "./types.js";

export const formatters = { stylish, json, sarif, github } satisfies Record<string, Formatter>;
export type FormatName = keyof typeof formatters;
export const FORMAT_NAMES = Object.keys(formatters) as FormatName[];
