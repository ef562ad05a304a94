// Shows the tail's bounds: at most `capacity` entries (oldest dropped and counted), pause holds
// arrivals aside with a visible count, resume shows them in order, clear forgets everything.
import { describe, expect, it } from 'vitest';
import { Ring, TAIL_CAPACITY, TailBuffer } from './buffer';

describe('Ring', () => {
  it('keeps the newest `capacity` entries in order', () => {
    const r = new Ring<number>(3);
    expect(r.push(1)).toBeUndefined();
    r.push(2);
    r.push(3);
    expect(r.push(4)).toBe(1);
    expect(r.toArray()).toEqual([2, 3, 4]);
    expect(r.at(0)).toBe(2);
    expect(r.at(3)).toBeUndefined();
    r.clear();
    expect(r.length).toBe(0);
  });
});

describe('TailBuffer', () => {
  it('is bounded to 5,000 by default and counts what it dropped', () => {
    const b = new TailBuffer<number>();
    expect(b.capacity).toBe(TAIL_CAPACITY);
    for (let i = 1; i <= 6000; i++) b.push(i);
    expect(b.length).toBe(5000);
    expect(b.dropped).toBe(1000);
    expect(b.at(0)).toBe(1001);
    expect(b.at(4999)).toBe(6000);
  });

  it('holds arrivals while paused and shows them on resume', () => {
    const b = new TailBuffer<number>(10);
    b.push(1);
    b.pause();
    b.push(2);
    b.push(3);
    expect(b.entries()).toEqual([1]);
    expect(b.waiting).toBe(2);
    b.resume();
    expect(b.waiting).toBe(0);
    expect(b.paused).toBe(false);
    expect(b.entries()).toEqual([1, 2, 3]);
  });

  it('keeps the bound while paused, and after resume', () => {
    const b = new TailBuffer<number>(4);
    b.push(1);
    b.push(2);
    b.pause();
    for (let i = 3; i <= 9; i++) b.push(i); // 7 held, 3 of them fall out
    expect(b.waiting).toBe(4);
    expect(b.dropped).toBe(3);
    b.resume();
    expect(b.entries()).toEqual([6, 7, 8, 9]);
    expect(b.dropped).toBe(5); // 1 and 2 pushed out by the resumed ones
  });

  it('clear forgets shown, waiting and the drop count', () => {
    const b = new TailBuffer<number>(2);
    b.push(1);
    b.push(2);
    b.push(3);
    b.pause();
    b.push(4);
    b.clear();
    expect([b.length, b.waiting, b.dropped, b.paused]).toEqual([0, 0, 0, true]);
  });
});
