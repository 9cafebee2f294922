/**
 * A FIFO of times as a ring over a Float64Array, allocating only when it grows: the simulator's
 * queues and the retry budget's sliding window (simulator and runtime alike).
 */
export class TimeRing {
  private data: Float64Array;
  private head = 0;
  size = 0;

  constructor(capacity = 64) {
    // Capacities stay powers of two so that `& (length - 1)` wraps.
    let n = 1;
    while (n < capacity) n *= 2;
    this.data = new Float64Array(n);
  }

  push(value: number): void {
    if (this.size === this.data.length) this.grow();
    this.data[(this.head + this.size) & (this.data.length - 1)] = value;
    this.size++;
  }

  /** The oldest value; only when size > 0. */
  peek(): number {
    return this.data[this.head] as number;
  }

  shift(): void {
    this.head = (this.head + 1) & (this.data.length - 1);
    this.size--;
  }

  /** Drops values ≤ `limit` from the front (the values are pushed in ascending order). */
  dropUpTo(limit: number): void {
    while (this.size > 0 && (this.data[this.head] as number) <= limit) {
      this.head = (this.head + 1) & (this.data.length - 1);
      this.size--;
    }
  }

  clear(): void {
    this.head = 0;
    this.size = 0;
  }

  private grow(): void {
    const next = new Float64Array(this.data.length * 2);
    for (let i = 0; i < this.size; i++) next[i] = this.data[(this.head + i) & (this.data.length - 1)] as number;
    this.data = next;
    this.head = 0;
  }
}
