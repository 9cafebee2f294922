/**
 * Environment overlays: objects merge key by key, arrays and scalars replace. Every value
 * taken from the overlay is remembered, so that a diagnostic about the merged spec points
 * at the line of the overlay that set it.
 */
import { joinPointer } from "../pointer.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Maps a pointer into the merged spec to a pointer into the file. */
export interface Provenance {
  /** Pointer in the file for a pointer in the merged spec (itself when the base file set it). */
  origin(pointer: string): string;
  /**
   * Like origin, but a pointer inside an object that the overlay changed maps into the overlay's
   * entry even where the overlay did not set that very key: for problems that only the merge
   * made (a key that the overlay's change now requires).
   */
  blame(pointer: string): string;
}

export const identityProvenance: Provenance = { origin: (pointer) => pointer, blame: (pointer) => pointer };

function longestPrefix(map: Map<string, string>, pointer: string): string | undefined {
  for (let p = pointer; ; ) {
    const src = map.get(p);
    if (src !== undefined) return src + pointer.slice(p.length);
    if (p === "") return undefined;
    p = p.slice(0, p.lastIndexOf("/"));
  }
}

function isObject(v: unknown): v is { [key: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Merges `overlay` (found at `overlayPointer` in the file) into `base`. Sources and services
 * that the overlay names but the base lacks are skipped: the unknown-reference rule reports them.
 */
export function mergeOverlay(
  base: { [key: string]: Json },
  overlay: { [key: string]: Json },
  overlayPointer: string,
): { merged: { [key: string]: Json }; provenance: Provenance } {
  const from = new Map<string, string>();
  const touched = new Map<string, string>();
  const mergeInto = (target: { [key: string]: Json }, patch: { [key: string]: Json }, at: string, src: string, depth: number) => {
    for (const [key, value] of Object.entries(patch)) {
      const here = joinPointer(at, key);
      const there = joinPointer(src, key);
      const isNamedMap = depth === 0 && (key === "sources" || key === "services");
      if (isNamedMap && isObject(value)) {
        const existing = target[key];
        if (!isObject(existing)) continue;
        for (const [name, patchEntry] of Object.entries(value)) {
          const current = existing[name];
          if (!isObject(current) || !isObject(patchEntry)) continue;
          const copy = structuredClone(current);
          touched.set(joinPointer(here, name), joinPointer(there, name));
          mergeInto(copy, patchEntry, joinPointer(here, name), joinPointer(there, name), depth + 2);
          existing[name] = copy;
        }
        continue;
      }
      const current = target[key];
      if (isObject(value) && isObject(current)) {
        const copy = structuredClone(current);
        touched.set(here, there);
        mergeInto(copy, value, here, there, depth + 1);
        target[key] = copy;
      } else {
        target[key] = structuredClone(value);
        from.set(here, there);
      }
    }
  };
  const merged = structuredClone(base);
  mergeInto(merged, overlay, "", overlayPointer, 0);
  return {
    merged,
    provenance: {
      origin: (pointer) => longestPrefix(from, pointer) ?? pointer,
      blame: (pointer) => longestPrefix(from, pointer) ?? longestPrefix(touched, pointer) ?? pointer,
    },
  };
}
