/**
 * The ids of `mbc build`'s targets, apart from their generators: the CLI names them in `--help`
 * without loading any generator. src/build/generators.ts registers a generator for each.
 */
const IDS = ["compose", "kubernetes", "node", "systemd"] as const;

export type TargetId = (typeof IDS)[number];
export const TARGET_IDS: TargetId[] = [...IDS];
