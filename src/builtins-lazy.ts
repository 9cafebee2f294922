/**
 * Node built-ins that only some commands need, loaded when first used: `mbc validate` is mostly
 * start-up, and loading crypto and child_process up front costs it several milliseconds.
 */
import { createRequire } from "node:module";

const load = createRequire(import.meta.url);

export const crypto = (): typeof import("node:crypto") => load("node:crypto");
export const childProcess = (): typeof import("node:child_process") => load("node:child_process");
