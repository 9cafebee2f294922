/** "Did you mean …" for keys and enum values. */
import { distance } from "fastest-levenshtein";

export function closestMatch(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  const lower = input.toLowerCase();
  for (const c of candidates) {
    const d = c.toLowerCase() === lower ? 0 : distance(lower, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  // Short words are close to everything: "b" is two edits from "mbc" but no typo of it.
  const limit = input.length <= 3 ? 1 : Math.max(2, Math.floor(input.length / 3));
  return bestDistance <= limit ? best : undefined;
}

export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const match = closestMatch(input, candidates);
  return match === undefined ? undefined : `did you mean "${match}"?`;
}
