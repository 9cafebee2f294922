/** Growable typed-array buffers for the simulation's hot loop: they allocate only when they grow. */

/** Sub-buckets per power of two: a recorded value is known to within 2⁻⁸ ≈ 0.4 % of itself. */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
/** Values below 2⁻²⁰ (about a nanosecond, in ms) count as 0; values from 2⁴⁰ up share the top bucket. */
const MIN_EXP = -20;
const MAX_EXP = 40;
const BUCKETS = 1 + (MAX_EXP - MIN_EXP) * SUB;

// Reads a double's exponent and top mantissa bits without Math.log2 (little- or big-endian).
const bits = new Float64Array(1);
const words = new Uint32Array(bits.buffer);
const HIGH = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/** Distinct buckets a histogram keeps in a map before it switches to the full array. */
const SPARSE_LIMIT = 64;

/**
 * A log-linear histogram of non-negative values (HdrHistogram's layout), with the exact count,
 * sum, minimum and maximum beside it. Bucket 0 holds zeros. It starts sparse (a small map of
 * the buckets in use) and switches to a fixed array of counts once many buckets are in use:
 * a spec with thousands of lightly used instances then costs little memory, while a busy
 * histogram records without allocating however long the run.
 */
export class Histogram {
  private counts: Float64Array | null = null;
  private sparse: Map<number, number> | null = null;
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;

  add(value: number): void {
    this.count++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    this.bump(bucketOf(value), 1);
  }

  private bump(b: number, n: number): void {
    const counts = this.counts;
    if (counts !== null) {
      counts[b] = (counts[b] as number) + n;
      return;
    }
    let sparse = this.sparse;
    if (sparse === null) {
      sparse = new Map();
      this.sparse = sparse;
    }
    sparse.set(b, (sparse.get(b) ?? 0) + n);
    if (sparse.size > SPARSE_LIMIT) {
      const dense = new Float64Array(BUCKETS);
      for (const [k, v] of sparse) dense[k] = v;
      this.counts = dense;
      this.sparse = null;
    }
  }

  /** Non-empty buckets in ascending order. */
  private *buckets(): Generator<[number, number]> {
    if (this.counts !== null) {
      for (let b = 0; b < BUCKETS; b++) if ((this.counts[b] as number) > 0) yield [b, this.counts[b] as number];
    } else if (this.sparse !== null) {
      yield* [...this.sparse].sort((a, b) => a[0] - b[0]);
    }
  }

  addAll(other: Histogram): void {
    if (other.count === 0) return;
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
    for (const [b, n] of other.buckets()) this.bump(b, n);
  }

  /**
   * The nearest-rank q-quantile (the ⌈q·n⌉-th smallest value), as the middle of its bucket
   * clamped to [min, max]: within 0.4 % of the exact one. NaN when empty.
   */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (const [b, n] of this.buckets()) {
      seen += n;
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, middleOf(b)));
    }
    return this.max;
  }
}

function bucketOf(value: number): number {
  if (!(value > 0)) return 0;
  bits[0] = value;
  const high = words[HIGH] as number;
  const exp = ((high >>> 20) & 0x7ff) - 1023;
  if (exp < MIN_EXP) return 0;
  if (exp >= MAX_EXP) return BUCKETS - 1;
  return 1 + (exp - MIN_EXP) * SUB + ((high >>> (20 - SUB_BITS)) & (SUB - 1));
}

function middleOf(bucket: number): number {
  if (bucket === 0) return 0;
  const k = bucket - 1;
  const exp = MIN_EXP + Math.floor(k / SUB);
  const sub = k % SUB;
  return 2 ** exp * (1 + (sub + 0.5) / SUB);
}
