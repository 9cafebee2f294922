import { describe, expect, it } from "vitest";
import {
  type Balancer,
  createBalancer,
  leastConnections,
  loadAwareWeights,
  powerOfTwoChoices,
  randomBalancer,
  roundRobin,
  smoothWeightedRoundRobin,
  weightedRandom,
} from "../../src/balance/index.js";
import { LOAD_BALANCING } from "../../src/model/types.js";
import { createStream } from "../../src/simulate/rng.js";

const letters = "abcdefgh";
/** `n` picks over `candidates`, as letters (instance 0 = a). */
function sequence(b: Balancer, n: number, candidates: number[], exclude?: number): string {
  let out = "";
  for (let k = 0; k < n; k++) out += letters[b.pick(candidates, exclude)];
  return out;
}

/** Each candidate's share of `n` picks. */
function frequencies(b: Balancer, n: number, candidates: number[], size: number): number[] {
  const counts = new Array<number>(size).fill(0);
  for (let k = 0; k < n; k++) {
    const i = b.pick(candidates);
    counts[i] = (counts[i] as number) + 1;
  }
  return counts.map((c) => c / n);
}

describe("smooth weighted round-robin (nginx)", () => {
  it("weights 5, 1, 1 give a a b a c a a, and repeat", () => {
    const b = smoothWeightedRoundRobin([5, 1, 1]);
    expect(sequence(b, 14, [0, 1, 2])).toBe("aabacaaaabacaa");
  });

  it("the design example's weights 2, 1 give a b a, and repeat", () => {
    const b = smoothWeightedRoundRobin([2, 1]);
    expect(sequence(b, 9, [0, 1])).toBe("abaabaaba");
  });

  it("equal weights are plain round-robin", () => {
    expect(sequence(smoothWeightedRoundRobin([1, 1, 1]), 6, [0, 1, 2])).toBe("abcabc");
  });

  it("spreads exactly ∝ weight over a whole cycle, also with fractional weights", () => {
    const b = smoothWeightedRoundRobin([0.5, 1.5, 3]);
    const counts = [0, 0, 0];
    for (let k = 0; k < 10_000; k++) {
      const i = b.pick([0, 1, 2]);
      counts[i] = (counts[i] as number) + 1;
    }
    expect(counts).toEqual([1000, 3000, 6000]);
  });

  it("skips an instance that is not a candidate (down) and the excluded one", () => {
    const b = smoothWeightedRoundRobin([5, 1, 1]);
    expect(sequence(b, 3, [1, 2])).toBe("bcb");
    expect(sequence(smoothWeightedRoundRobin([5, 1, 1]), 4, [0, 1, 2], 0)).toBe("bcbc");
  });
});

describe("round-robin", () => {
  it("goes through the instances in index order", () => {
    expect(sequence(roundRobin(3), 7, [0, 1, 2])).toBe("abcabca");
  });

  it("keeps its order when an instance goes down and comes back", () => {
    const b = roundRobin(3);
    expect(sequence(b, 2, [0, 1, 2])).toBe("ab");
    expect(sequence(b, 3, [0, 2])).toBe("cac");
    expect(sequence(b, 3, [0, 1, 2])).toBe("abc");
  });

  it("a retry skips the instance tried before", () => {
    const b = roundRobin(3);
    expect(b.pick([0, 1, 2])).toBe(0);
    expect(b.pick([0, 1, 2], 1)).toBe(2);
  });
});

describe("every algorithm", () => {
  it.each(LOAD_BALANCING)("%s: no candidates gives -1; the excluded instance only when it is the last one; never a non-candidate", (strategy) => {
    const b = createBalancer(
      strategy,
      [
        { weight: 1, capacityPerSec: 100 },
        { weight: 3, capacityPerSec: 300 },
        { weight: 2, capacityPerSec: 200 },
      ],
      createStream(7, "test"),
    );
    expect(b.strategy).toBe(strategy);
    expect(b.pick([])).toBe(-1);
    expect(b.pick([2], 2)).toBe(2);
    for (let k = 0; k < 200; k++) {
      const i = b.pick([0, 2], 0);
      expect(i).toBe(2);
      const j = b.pick([1, 2]);
      expect([1, 2]).toContain(j);
    }
  });
});

describe("random and weighted-random", () => {
  // n = 60 000 picks: a share p has standard deviation √(p(1 − p)/n) ≤ 0.0021; 0.01 is over 4.7σ.
  const n = 60_000;

  it("random: equal shares", () => {
    for (const seed of [1, 2, 3]) {
      const f = frequencies(randomBalancer(3, createStream(seed, "balancer/x")), n, [0, 1, 2], 3);
      for (const share of f) expect(Math.abs(share - 1 / 3)).toBeLessThan(0.01);
    }
  });

  it("weighted-random: shares ∝ weight", () => {
    for (const seed of [1, 2, 3]) {
      const f = frequencies(weightedRandom([5, 1, 1], createStream(seed, "balancer/x")), n, [0, 1, 2], 3);
      expect(Math.abs((f[0] as number) - 5 / 7)).toBeLessThan(0.01);
      expect(Math.abs((f[1] as number) - 1 / 7)).toBeLessThan(0.01);
      expect(Math.abs((f[2] as number) - 1 / 7)).toBeLessThan(0.01);
    }
  });

  it("are reproducible from the seed", () => {
    const a = sequence(weightedRandom([2, 1, 1], createStream(9, "s")), 40, [0, 1, 2]);
    const b = sequence(weightedRandom([2, 1, 1], createStream(9, "s")), 40, [0, 1, 2]);
    const c = sequence(weightedRandom([2, 1, 1], createStream(10, "s")), 40, [0, 1, 2]);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });
});

describe("least-connections", () => {
  it("picks the fewest in-flight attempts per unit of weight", () => {
    const b = leastConnections([1, 1, 1]);
    b.onStart(0);
    b.onStart(0);
    b.onStart(1);
    expect(b.pick([0, 1, 2])).toBe(2);
    b.onStart(2);
    b.onStart(2);
    expect(b.pick([0, 1, 2])).toBe(1);
    b.onFinish(0);
    b.onFinish(0);
    expect(b.inFlight(0)).toBe(0);
    expect(b.pick([0, 1, 2])).toBe(0);
  });

  it("weights scale the comparison: 2 in flight on weight 2 ties 1 in flight on weight 1", () => {
    const b = leastConnections([2, 1]);
    b.onStart(0);
    b.onStart(0);
    b.onStart(1);
    // Tied at 1 per unit of weight: smooth WRR among the tied, ∝ weight.
    expect(sequence(b, 3, [0, 1])).toBe("aba");
  });

  it("breaks ties by smooth weighted round-robin, deterministically", () => {
    expect(sequence(leastConnections([1, 1, 1]), 6, [0, 1, 2])).toBe("abcabc");
    expect(sequence(leastConnections([5, 1, 1]), 7, [0, 1, 2])).toBe("aabacaa");
  });

  it("onFinish never goes below zero", () => {
    const b = leastConnections([1]);
    b.onFinish(0);
    expect(b.inFlight(0)).toBe(0);
  });
});

describe("power-of-two-choices", () => {
  it("of two candidates, the less loaded always wins", () => {
    const b = powerOfTwoChoices([1, 1], createStream(3, "p2c"));
    b.onStart(0);
    for (let k = 0; k < 100; k++) expect(b.pick([0, 1])).toBe(1);
  });

  it("never picks the single most loaded of several instances", () => {
    const b = powerOfTwoChoices([1, 1, 1, 1], createStream(4, "p2c"));
    for (let k = 0; k < 5; k++) b.onStart(2);
    b.onStart(0);
    const f = frequencies(b, 20_000, [0, 1, 2, 3], 4);
    expect(f[2]).toBe(0);
    // Instance 0 (one in flight) wins only against 2: in 1 of the 6 pairs.
    expect(Math.abs((f[0] as number) - 1 / 6)).toBeLessThan(0.015);
  });

  it("draws two distinct candidates: with two idle equal instances, a fair coin", () => {
    const f = frequencies(powerOfTwoChoices([1, 1], createStream(5, "p2c")), 40_000, [0, 1], 2);
    expect(Math.abs((f[0] as number) - 0.5)).toBeLessThan(0.01);
  });
});

describe("createBalancer", () => {
  it("load-aware algorithms weigh by capacity when every instance has one, else by weight", () => {
    expect(
      loadAwareWeights([
        { weight: 1, capacityPerSec: 100 },
        { weight: 1, capacityPerSec: 300 },
      ]),
    ).toEqual([100, 300]);
    expect(
      loadAwareWeights([
        { weight: 2, capacityPerSec: 100 },
        { weight: 1, capacityPerSec: null },
      ]),
    ).toEqual([2, 1]);
  });

  it("least-connections on idle instances spreads ∝ capacity", () => {
    const b = createBalancer(
      "least-connections",
      [
        { weight: 1, capacityPerSec: 100 },
        { weight: 1, capacityPerSec: 300 },
      ],
      () => 0,
    );
    expect(sequence(b, 4, [0, 1])).toBe("babb");
  });
});
