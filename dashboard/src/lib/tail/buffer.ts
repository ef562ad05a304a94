/**
 * The live tail's memory: a ring of at most `capacity` entries (5,000 by default), oldest dropped
 * first, and a pause that holds arrivals aside (counted) until resume. Both sides are bounded by
 * the same capacity: whatever is dropped is counted so the page can say so. Pure; the page bumps
 * a version counter to re-render instead of making the entries reactive.
 */
export const TAIL_CAPACITY = 5000;

/** One line of the tail. `message`: a published message (durable when `seq` is a number). */
export type TailEntry =
  | {
      kind: 'message';
      n: number;
      topic: string;
      seq: number | null;
      id: string | undefined;
      publishedAt: string;
      message: unknown;
      /** Compact JSON of `message`, kept for size, substring filtering and export. */
      raw: string;
      /** UTF-8 bytes of `raw`. */
      size: number;
    }
  | { kind: 'resync'; n: number; topic: string; from: number; to: number; reason: string; at: string }
  /** Where a (re)opened stream starts: its `event: position`; later messages have higher seqs. */
  | { kind: 'position'; n: number; topic: string; position: number; at: string }
  | { kind: 'status'; n: number; text: string; at: string };

/** A fixed-capacity ring: push at the end, the oldest falls out. */
export class Ring<T> {
  private items: (T | undefined)[];
  private start = 0;
  length = 0;

  constructor(readonly capacity: number) {
    if (capacity < 1) throw new Error('capacity must be at least 1');
    this.items = new Array<T | undefined>(capacity);
  }

  /** Adds at the end; returns the entry that fell out, if any. */
  push(v: T): T | undefined {
    if (this.length < this.capacity) {
      this.items[(this.start + this.length++) % this.capacity] = v;
      return undefined;
    }
    const out = this.items[this.start];
    this.items[this.start] = v;
    this.start = (this.start + 1) % this.capacity;
    return out;
  }

  /** The i-th entry, 0 = oldest. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.length) return undefined;
    return this.items[(this.start + i) % this.capacity];
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.length; i++) out.push(this.at(i) as T);
    return out;
  }

  clear(): void {
    this.items = new Array<T | undefined>(this.capacity);
    this.start = 0;
    this.length = 0;
  }
}

export class TailBuffer<T = TailEntry> {
  private shown: Ring<T>;
  private held: Ring<T>;
  /** Entries that fell out of the bound (shown or held) since the last clear. */
  dropped = 0;
  paused = false;

  constructor(readonly capacity = TAIL_CAPACITY) {
    this.shown = new Ring(capacity);
    this.held = new Ring(capacity);
  }

  /** Arrivals while paused, waiting for resume. */
  get waiting(): number {
    return this.held.length;
  }

  get length(): number {
    return this.shown.length;
  }

  at(i: number): T | undefined {
    return this.shown.at(i);
  }

  entries(): T[] {
    return this.shown.toArray();
  }

  push(e: T): void {
    if (this.paused) {
      if (this.held.push(e) !== undefined) this.dropped++;
    } else if (this.shown.push(e) !== undefined) this.dropped++;
  }

  pause(): void {
    this.paused = true;
  }

  /** Shows what waited, in arrival order; the bound still holds. */
  resume(): void {
    this.paused = false;
    for (const e of this.held.toArray()) if (this.shown.push(e) !== undefined) this.dropped++;
    this.held.clear();
  }

  /** Forgets what is shown and what waits (pause state unchanged). */
  clear(): void {
    this.shown.clear();
    this.held.clear();
    this.dropped = 0;
  }
}
