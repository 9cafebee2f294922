/**
 * Seeded random streams: one independent xoroshiro128+ generator (pure-rand) per named random
 * source, e.g. `arrivals/input`, `balancer/data-processing`, `failures/result-storage`.
 *
 * Each stream's starting state is derived from the seed and the stream's *name*, not from its
 * position in some list, so adding a source or a service, or drawing more numbers in one part
 * of the simulation, leaves every other stream's numbers unchanged.
 */
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";
import type { Random } from "../shared/random.js";

export type { Random };

/** Uniform in [0, 1), 53 bits. */

/** MurmurHash3's 32-bit finaliser: a bijective mix in which every input bit affects every output bit. */
function fmix32(h: number): number {
  let x = h | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x | 0;
}

/** FNV-1a over the UTF-16 code units of `text`. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/** The four 32-bit state words of the stream `name` under `seed` (any safe integer). */
export function streamState(seed: number, name: string): number[] {
  const lo = seed | 0;
  const hi = Math.floor(seed / 0x100000000) | 0;
  const base = fmix32(fnv1a(name) ^ fmix32(lo ^ fmix32(hi ^ 0x6a09e667)));
  // SplitMix-style: consecutive multiples of the golden-ratio constant, each mixed.
  const state: number[] = [0, 1, 2, 3].map((k) => fmix32((base + Math.imul(k + 1, 0x9e3779b9)) | 0));
  // xoroshiro128+ must not start from the all-zero state.
  if (!state.some((w) => w !== 0)) state[0] = 1;
  return state;
}

/** Discarded outputs, so that streams whose seeds differ in few bits have moved apart. */
const WARM_UP = 16;

/** An independent uniform [0, 1) stream for the random source `name`. */
export function createStream(seed: number, name: string): Random {
  const rng = xoroshiro128plusFromState(streamState(seed, name));
  for (let i = 0; i < WARM_UP; i++) rng.next();
  return () => uniformFloat64(rng);
}

/** An exponential variate with the given mean, from a uniform one. */
export function exponential(random: Random, mean: number): number {
  return -Math.log(1 - random()) * mean;
}
