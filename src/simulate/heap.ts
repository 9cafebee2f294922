/**
 * The simulation's event queue: a binary min-heap ordered by (time, sequence number), kept in
 * parallel typed arrays so that pushing and popping allocate nothing once it has grown. The
 * sequence number makes events at the same time come out in the order they were scheduled,
 * which keeps a run deterministic.
 */
export class EventHeap {
  private time: Float64Array;
  private seq: Float64Array;
  private kind: Uint8Array;
  private a: Int32Array;
  private b: Int32Array;
  private next = 0;
  size = 0;

  /** The event last taken by `pop`. */
  topTime = 0;
  topKind = 0;
  topA = 0;
  topB = 0;

  constructor(capacity = 1024) {
    this.time = new Float64Array(capacity);
    this.seq = new Float64Array(capacity);
    this.kind = new Uint8Array(capacity);
    this.a = new Int32Array(capacity);
    this.b = new Int32Array(capacity);
  }

  /** The time of the earliest event (Infinity when empty). */
  peekTime(): number {
    return this.size === 0 ? Number.POSITIVE_INFINITY : (this.time[0] as number);
  }

  push(time: number, kind: number, a: number, b: number): void {
    if (this.size === this.time.length) this.grow();
    const s = this.next++;
    // Sift up with a hole: move parents down until the new event's place is found.
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = this.time[p] as number;
      if (pt < time || (pt === time && (this.seq[p] as number) < s)) break;
      this.move(p, i);
      i = p;
    }
    this.set(i, time, s, kind, a, b);
  }

  /** Removes the earliest event into topTime/topKind/topA/topB; false when empty. */
  pop(): boolean {
    if (this.size === 0) return false;
    this.topTime = this.time[0] as number;
    this.topKind = this.kind[0] as number;
    this.topA = this.a[0] as number;
    this.topB = this.b[0] as number;
    const last = --this.size;
    if (last > 0) this.siftDown(this.time[last] as number, this.seq[last] as number, this.kind[last] as number, this.a[last] as number, this.b[last] as number);
    return true;
  }

  private siftDown(time: number, s: number, kind: number, a: number, b: number): void {
    const n = this.size;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      const r = c + 1;
      if (r < n) {
        const ct = this.time[c] as number;
        const rt = this.time[r] as number;
        if (rt < ct || (rt === ct && (this.seq[r] as number) < (this.seq[c] as number))) c = r;
      }
      const ct = this.time[c] as number;
      if (time < ct || (time === ct && s < (this.seq[c] as number))) break;
      this.move(c, i);
      i = c;
    }
    this.set(i, time, s, kind, a, b);
  }

  private move(from: number, to: number): void {
    this.time[to] = this.time[from] as number;
    this.seq[to] = this.seq[from] as number;
    this.kind[to] = this.kind[from] as number;
    this.a[to] = this.a[from] as number;
    this.b[to] = this.b[from] as number;
  }

  private set(i: number, time: number, s: number, kind: number, a: number, b: number): void {
    this.time[i] = time;
    this.seq[i] = s;
    this.kind[i] = kind;
    this.a[i] = a;
    this.b[i] = b;
  }

  private grow(): void {
    const n = this.time.length * 2;
    const time = new Float64Array(n);
    const seq = new Float64Array(n);
    const kind = new Uint8Array(n);
    const a = new Int32Array(n);
    const b = new Int32Array(n);
    time.set(this.time);
    seq.set(this.seq);
    kind.set(this.kind);
    a.set(this.a);
    b.set(this.b);
    this.time = time;
    this.seq = seq;
    this.kind = kind;
    this.a = a;
    this.b = b;
  }
}
