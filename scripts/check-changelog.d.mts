/** Types of check-changelog.mjs, for the TypeScript test that uses it. */
export declare function changelogProblems(text: string, version: string, options?: { release?: boolean }): string[];
export declare function checkChangelog(args: readonly string[], env: Record<string, string | undefined>, root: string): { code: number; lines: string[] };
