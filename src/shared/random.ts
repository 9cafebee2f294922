/** A source of uniform numbers in [0, 1): Math.random, or a seeded stream of the simulator. */
export type Random = () => number;
