/** Types of gen-spec.mjs, for the TypeScript tests that use it. */
export interface GenerateOptions {
  /** The seed of the generator's PRNG (default 1): the same n and seed give the same spec. */
  seed?: number;
}

/** The spec's handler modules, by path relative to its folder, with their text. */
export declare const HANDLER_FILES: Readonly<Record<string, string>>;

/** The spec with `n` services (n ≥ 2), as YAML text. */
export declare function generateSpec(n: number, options?: GenerateOptions): string;

/** Writes the spec with `n` services (and its handler modules) into `dir`; returns the spec's path. */
export declare function writeSpec(dir: string, n: number, options?: GenerateOptions & { fileName?: string }): string;
