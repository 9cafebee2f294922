import type { Generator } from "../../src/build/types.js";
/** Where a handler module is copied: under handlers/, keeping its path below the spec's folder. */
export declare function handlerTarget(path: string): string;
export declare const nodeGenerator: Generator;
