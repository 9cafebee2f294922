/**
 * Load-balancing algorithms, independent of the simulator so that the runtime can share them.
 *
 * A balancer picks one instance index out of the healthy candidates it is given. It keeps the
 * per-instance state its algorithm needs (current weights, a round-robin position, in-flight
 * counts); the caller reports the start and end of every attempt with `onStart`/`onFinish`.
 *
 * Conventions shared by every algorithm:
 * - `candidates` are instance indexes (0-based, as in the model), in ascending order; the
 *   documented sequences (e.g. smooth WRR's `a a b a c a a`) assume that order.
 * - `exclude` is the instance an attempt was tried on before. It is skipped whenever another
 *   candidate exists, and picked only when it is the last one left (a retry goes to a
 *   different instance whenever another healthy one exists).
 * - No candidates: `pick` returns -1.
 * - Random algorithms draw from the `random` function they are given (uniform in [0, 1)), so a
 *   caller decides the stream; nothing here uses Math.random.
 */
import type { LoadBalancing } from "../model/types.js";
import type { Random } from "../shared/random.js";

export interface Balancer {
  readonly strategy: LoadBalancing;
  /** One of `candidates`, or -1 when there are none. */
  pick(candidates: ArrayLike<number>, exclude?: number): number;
  /** An attempt was sent to `instance`. */
  onStart(instance: number): void;
  /** An attempt on `instance` has its answer (success, failure or timeout). */
  onFinish(instance: number): void;
  /** Attempts sent to `instance` and not finished yet. */
  inFlight(instance: number): number;
}

export interface BalancedInstance {
  weight: number;
  /** Records/s; null when unknown. */
  capacityPerSec: number | null;
}

export type { Random };

const NONE = -1;

abstract class BaseBalancer implements Balancer {
  abstract readonly strategy: LoadBalancing;
  protected readonly active: Int32Array;

  constructor(readonly size: number) {
    this.active = new Int32Array(size);
  }

  abstract pick(candidates: ArrayLike<number>, exclude?: number): number;

  onStart(instance: number): void {
    this.active[instance] = (this.active[instance] as number) + 1;
  }

  onFinish(instance: number): void {
    const n = this.active[instance] as number;
    if (n > 0) this.active[instance] = n - 1;
  }

  inFlight(instance: number): number {
    return this.active[instance] ?? 0;
  }
}

/** Whether `exclude` must be skipped: it is one of the candidates and another one exists. */
function skips(candidates: ArrayLike<number>, exclude: number | undefined): boolean {
  if (exclude === undefined || exclude < 0 || candidates.length < 2) return false;
  for (let k = 0; k < candidates.length; k++) if (candidates[k] === exclude) return true;
  return false;
}

/** A uniform integer in [0, n). */
function below(random: Random, n: number): number {
  const k = Math.floor(random() * n);
  return k < n ? k : n - 1;
}

/** The k-th candidate (0-based) once `skip` (a candidate value, or NONE) is left out. */
function nth(candidates: ArrayLike<number>, skip: number, k: number): number {
  let seen = 0;
  for (let j = 0; j < candidates.length; j++) {
    const c = candidates[j] as number;
    if (c === skip) continue;
    if (seen === k) return c;
    seen++;
  }
  return NONE;
}

/**
 * Round-robin: instances in index order, cyclically. The position is an instance index, not
 * a position in `candidates`, so an instance going down or coming back does not reshuffle the
 * order of the others.
 */
class RoundRobin extends BaseBalancer {
  readonly strategy = "round-robin" as const;
  private last = NONE;

  pick(candidates: ArrayLike<number>, exclude?: number): number {
    const skip = skips(candidates, exclude) ? (exclude as number) : NONE;
    let after = NONE;
    let first = NONE;
    for (let k = 0; k < candidates.length; k++) {
      const c = candidates[k] as number;
      if (c === skip) continue;
      if (first === NONE || c < first) first = c;
      if (c > this.last && (after === NONE || c < after)) after = c;
    }
    const chosen = after === NONE ? first : after;
    if (chosen !== NONE) this.last = chosen;
    return chosen;
  }
}

/**
 * Smooth weighted round-robin exactly as nginx does it (ngx_http_upstream_get_peer): every
 * pick adds each candidate's weight to its current weight, takes the candidate with the
 * highest current weight (the first one on a tie) and subtracts the total of the weights from
 * the chosen one. Weights 5, 1, 1 give a a b a c a a. nginx also lowers a peer's effective
 * weight after failures; here the effective weight is always the configured one, because
 * failures are handled by retries and health (a down instance is not a candidate).
 */
class SmoothWeightedRoundRobin extends BaseBalancer {
  readonly strategy = "weighted-round-robin" as const;
  private readonly current: Float64Array;

  constructor(private readonly weights: Float64Array) {
    super(weights.length);
    this.current = new Float64Array(weights.length);
  }

  pick(candidates: ArrayLike<number>, exclude?: number): number {
    return smoothStep(this.weights, this.current, candidates, skips(candidates, exclude) ? (exclude as number) : NONE);
  }
}

/**
 * One step of smooth weighted round-robin over the candidates other than `skip`: each adds its
 * weight to its current weight, the one with the highest current weight wins (the first on a
 * tie) and gives back the total of the weights. With `tie`, only the candidates whose in-flight
 * attempts per unit of weight equal tie.active / tie.weight take part (least connections' ties).
 * NONE when no candidate takes part.
 */
function smoothStep(
  weights: Float64Array,
  current: Float64Array,
  candidates: ArrayLike<number>,
  skip: number,
  tie?: { inFlight: Int32Array; active: number; weight: number },
): number {
  let best = NONE;
  let total = 0;
  for (let k = 0; k < candidates.length; k++) {
    const c = candidates[k] as number;
    if (c === skip || (tie !== undefined && (tie.inFlight[c] as number) * tie.weight !== tie.active * (weights[c] as number))) continue;
    const w = weights[c] as number;
    const cw = (current[c] as number) + w;
    current[c] = cw;
    total += w;
    if (best === NONE || cw > (current[best] as number)) best = c;
  }
  if (best !== NONE) current[best] = (current[best] as number) - total;
  return best;
}

/** Uniformly random among the candidates. */
class RandomPick extends BaseBalancer {
  readonly strategy = "random" as const;

  constructor(
    size: number,
    private readonly random: Random,
  ) {
    super(size);
  }

  pick(candidates: ArrayLike<number>, exclude?: number): number {
    const skip = skips(candidates, exclude) ? (exclude as number) : NONE;
    const n = candidates.length - (skip === NONE ? 0 : 1);
    if (n <= 0) return NONE;
    return nth(candidates, skip, below(this.random, n));
  }
}

/** Random with probability ∝ weight. */
class WeightedRandom extends BaseBalancer {
  readonly strategy = "weighted-random" as const;

  constructor(
    private readonly weights: Float64Array,
    private readonly random: Random,
  ) {
    super(weights.length);
  }

  pick(candidates: ArrayLike<number>, exclude?: number): number {
    const skip = skips(candidates, exclude) ? (exclude as number) : NONE;
    let total = 0;
    let last = NONE;
    for (let k = 0; k < candidates.length; k++) {
      const c = candidates[k] as number;
      if (c === skip) continue;
      total += this.weights[c] as number;
      last = c;
    }
    if (last === NONE) return NONE;
    let u = this.random() * total;
    for (let k = 0; k < candidates.length; k++) {
      const c = candidates[k] as number;
      if (c === skip) continue;
      u -= this.weights[c] as number;
      if (u < 0) return c;
    }
    // Rounding can leave u at a hair above 0 after the last weight.
    return last;
  }
}

/**
 * Least connections as nginx's least_conn does it: the fewest in-flight attempts per unit of
 * weight (aᵢ/wᵢ, compared as aᵢ·wⱼ < aⱼ·wᵢ) wins; candidates that tie are picked among by
 * smooth weighted round-robin, which is deterministic and, when the service is idle (all at
 * zero), spreads attempts ∝ weight instead of always sending them to the first instance.
 */
class LeastConnections extends BaseBalancer {
  readonly strategy = "least-connections" as const;
  private readonly current: Float64Array;

  constructor(private readonly weights: Float64Array) {
    super(weights.length);
    this.current = new Float64Array(weights.length);
  }

  pick(candidates: ArrayLike<number>, exclude?: number): number {
    const skip = skips(candidates, exclude) ? (exclude as number) : NONE;
    let best = NONE;
    let ties = 0;
    for (let k = 0; k < candidates.length; k++) {
      const c = candidates[k] as number;
      if (c === skip) continue;
      if (best === NONE) {
        best = c;
        ties = 1;
        continue;
      }
      const lhs = (this.active[c] as number) * (this.weights[best] as number);
      const rhs = (this.active[best] as number) * (this.weights[c] as number);
      if (lhs < rhs) {
        best = c;
        ties = 1;
      } else if (lhs === rhs) ties++;
    }
    if (ties <= 1) return best;
    const tie = { inFlight: this.active, active: this.active[best] as number, weight: this.weights[best] as number };
    return smoothStep(this.weights, this.current, candidates, skip, tie);
  }
}

/**
 * Power of two choices: two distinct candidates drawn uniformly at random, the one with fewer
 * in-flight attempts per unit of weight wins; on a tie, a coin weighted wⱼ/(wⱼ + wₖ) decides.
 */
class PowerOfTwoChoices extends BaseBalancer {
  readonly strategy = "power-of-two-choices" as const;

  constructor(
    private readonly weights: Float64Array,
    private readonly random: Random,
  ) {
    super(weights.length);
  }

  pick(candidates: ArrayLike<number>, exclude?: number): number {
    const skip = skips(candidates, exclude) ? (exclude as number) : NONE;
    const n = candidates.length - (skip === NONE ? 0 : 1);
    if (n <= 0) return NONE;
    if (n === 1) return nth(candidates, skip, 0);
    const i = below(this.random, n);
    let j = below(this.random, n - 1);
    if (j >= i) j++;
    const a = nth(candidates, skip, i);
    const b = nth(candidates, skip, j);
    const wa = this.weights[a] as number;
    const wb = this.weights[b] as number;
    const lhs = (this.active[a] as number) * wb;
    const rhs = (this.active[b] as number) * wa;
    if (lhs < rhs) return a;
    if (rhs < lhs) return b;
    return this.random() * (wa + wb) < wa ? a : b;
  }
}

export function roundRobin(size: number): Balancer {
  return new RoundRobin(size);
}

export function smoothWeightedRoundRobin(weights: readonly number[]): Balancer {
  return new SmoothWeightedRoundRobin(Float64Array.from(weights));
}

export function randomBalancer(size: number, random: Random): Balancer {
  return new RandomPick(size, random);
}

export function weightedRandom(weights: readonly number[], random: Random): Balancer {
  return new WeightedRandom(Float64Array.from(weights), random);
}

export function leastConnections(weights: readonly number[]): Balancer {
  return new LeastConnections(Float64Array.from(weights));
}

export function powerOfTwoChoices(weights: readonly number[], random: Random): Balancer {
  return new PowerOfTwoChoices(Float64Array.from(weights), random);
}

/**
 * The weights the load-aware algorithms (least-connections, power-of-two-choices) compare
 * in-flight counts against: instance capacities when every instance has one, because the
 * contract expects those strategies to spread attempts ∝ capacity; otherwise the weights.
 */
export function loadAwareWeights(instances: readonly BalancedInstance[]): number[] {
  const capacities = instances.map((i) => i.capacityPerSec);
  if (capacities.every((c): c is number => c !== null && c > 0)) return capacities;
  return instances.map((i) => i.weight);
}

/** The balancer for a service's `loadBalancing`; `random` is needed by the random algorithms. */
export function createBalancer(strategy: LoadBalancing, instances: readonly BalancedInstance[], random: Random): Balancer {
  const weights = instances.map((i) => i.weight);
  switch (strategy) {
    case "round-robin":
      return roundRobin(instances.length);
    case "weighted-round-robin":
      return smoothWeightedRoundRobin(weights);
    case "random":
      return randomBalancer(instances.length, random);
    case "weighted-random":
      return weightedRandom(weights, random);
    case "least-connections":
      return leastConnections(loadAwareWeights(instances));
    case "power-of-two-choices":
      return powerOfTwoChoices(loadAwareWeights(instances), random);
  }
}
