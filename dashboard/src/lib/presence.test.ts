// Presence members kept live: events applied to the list (join adds with connections unknown,
// leave removes, update changes the data), and reads merged with the events that arrived while
// they were in flight, whichever order the snapshot and the stream happen to land in.
import type { PresenceEvent } from '@picloud/client';
import { describe, expect, it } from 'vitest';
import { applyPresence, fromList, PresenceSync, type Member } from './presence';

const ev = (event: PresenceEvent['event'], sub: string, data: unknown = null): PresenceEvent => ({ topic: 'room', event, member: { sub, data } });
const m = (sub: string, data: unknown, connections: number | null): Member => ({ sub, data, connections });

/** A read that resolves when the test says, with the list it is given then. */
function deferredReads() {
  const pending: { resolve: (l: Member[]) => void; reject: (e: Error) => void }[] = [];
  const read = () => new Promise<Member[]>((resolve, reject) => pending.push({ resolve, reject }));
  return { read, pending };
}

describe('applyPresence', () => {
  it('adds a joining member, at least one connection until the list is read, ordered by sub', () => {
    const after = applyPresence([m('bob', null, 2)], ev('join', 'ann', { name: 'Ann' }));
    expect(after).toEqual([m('ann', { name: 'Ann' }, null), m('bob', null, 2)]);
  });

  it('removes a leaving member; a leave of someone not listed changes nothing', () => {
    const list = [m('ann', 1, 1), m('bob', 2, 3)];
    expect(applyPresence(list, ev('leave', 'ann'))).toEqual([m('bob', 2, 3)]);
    expect(applyPresence(list, ev('leave', 'carl'))).toEqual(list);
  });

  it('changes the data on update and keeps the connections read', () => {
    expect(applyPresence([m('ann', { typing: false }, 2)], ev('update', 'ann', { typing: true }))).toEqual([m('ann', { typing: true }, 2)]);
  });

  it('treats an update of a member not listed as there (its join came earlier)', () => {
    expect(applyPresence([], ev('update', 'ann', 'x'))).toEqual([m('ann', 'x', null)]);
  });

  it('keeps the connections of a listed member on a replayed join, with the join\'s data', () => {
    expect(applyPresence([m('ann', 'old', 3)], ev('join', 'ann', 'new'))).toEqual([m('ann', 'new', 3)]);
  });

  it('never changes the list it is given', () => {
    const list = Object.freeze([m('ann', 1, 1)]);
    applyPresence(list, ev('join', 'bob'));
    applyPresence(list, ev('update', 'ann', 2));
    applyPresence(list, ev('leave', 'ann'));
    expect(list).toEqual([m('ann', 1, 1)]);
  });
});

describe('fromList', () => {
  it('orders the read list by sub', () => {
    expect(fromList([{ sub: 'zoe', data: null, connections: 1 }, { sub: 'ann', data: { a: 1 }, connections: 2 }])).toEqual([m('ann', { a: 1 }, 2), m('zoe', null, 1)]);
  });
});

describe('PresenceSync', () => {
  it('shows the read list, then applies events live', async () => {
    const seen: Member[][] = [];
    const sync = new PresenceSync(async () => [m('ann', 1, 1)], (l) => seen.push(l));
    expect(sync.loaded).toBe(false);
    await sync.reload();
    expect(sync.loaded).toBe(true);
    sync.event(ev('join', 'bob', 'b'));
    sync.event(ev('update', 'ann', 2));
    sync.event(ev('leave', 'bob'));
    expect(seen).toEqual([[m('ann', 1, 1)], [m('ann', 1, 1), m('bob', 'b', null)], [m('ann', 2, 1), m('bob', 'b', null)], [m('ann', 2, 1)]]);
  });

  it('replays on the snapshot the events that arrived while it was read', async () => {
    const { read, pending } = deferredReads();
    const sync = new PresenceSync(read, () => {});
    const done = sync.reload();
    // While the read is in flight: carl joins, ann updates, bob leaves (the snapshot may or may not include these).
    sync.event(ev('join', 'carl', 'c'));
    sync.event(ev('update', 'ann', 'a2'));
    sync.event(ev('leave', 'bob'));
    // The snapshot was taken before all three: ann and bob, no carl.
    pending[0]!.resolve([m('ann', 'a1', 2), m('bob', 'b', 1)]);
    await done;
    expect(sync.members).toEqual([m('ann', 'a2', 2), m('carl', 'c', null)]);
  });

  it('converges when the snapshot already reflects the events replayed on it', async () => {
    const { read, pending } = deferredReads();
    const sync = new PresenceSync(read, () => {});
    const done = sync.reload();
    sync.event(ev('join', 'carl', 'c1'));
    sync.event(ev('update', 'carl', 'c2'));
    sync.event(ev('leave', 'bob'));
    sync.event(ev('join', 'bob', 'again'));
    // Taken after all of them: carl with 2 connections, bob back.
    pending[0]!.resolve([m('bob', 'again', 1), m('carl', 'c2', 2)]);
    await done;
    expect(sync.members).toEqual([m('bob', 'again', null), m('carl', 'c2', 2)]);
  });

  it('forgets the events once no read is in flight (a later read replays only its own)', async () => {
    const { read, pending } = deferredReads();
    const sync = new PresenceSync(read, () => {});
    const first = sync.reload();
    sync.event(ev('join', 'old'));
    pending[0]!.resolve([m('old', null, 1)]);
    await first;
    const second = sync.reload();
    pending[1]!.resolve([]);
    await second;
    expect(sync.members).toEqual([]);
  });

  it('lets the latest read win when reads overlap, each with the events since it started', async () => {
    const { read, pending } = deferredReads();
    const sync = new PresenceSync(read, () => {});
    const older = sync.reload();
    sync.event(ev('join', 'ann', 'a'));
    const newer = sync.reload();
    sync.event(ev('join', 'bob', 'b'));
    // The newer answer lands first (taken after ann joined), the older one after it: ignored.
    pending[1]!.resolve([m('ann', 'a', 4)]);
    await newer;
    expect(sync.members).toEqual([m('ann', 'a', 4), m('bob', 'b', null)]);
    pending[0]!.resolve([]);
    await older;
    expect(sync.members).toEqual([m('ann', 'a', 4), m('bob', 'b', null)]);
    // Both done: an event now is simply applied.
    sync.event(ev('leave', 'ann'));
    expect(sync.members).toEqual([m('bob', 'b', null)]);
  });

  it('an older read that lands after a newer one failed still counts', async () => {
    const { read, pending } = deferredReads();
    const sync = new PresenceSync(read, () => {});
    const older = sync.reload();
    sync.event(ev('join', 'ann'));
    const newer = sync.reload();
    pending[1]!.reject(new Error('503'));
    await expect(newer).rejects.toThrow('503');
    pending[0]!.resolve([]);
    await older;
    expect(sync.members).toEqual([m('ann', null, null)]);
    expect(sync.loaded).toBe(true);
  });

  it('keeps the list (and its events) when a read fails', async () => {
    let fail = false;
    const sync = new PresenceSync(async () => {
      if (fail) throw new Error('unavailable');
      return [m('ann', 1, 1)];
    }, () => {});
    await sync.reload();
    fail = true;
    const again = sync.reload();
    sync.event(ev('join', 'bob'));
    await expect(again).rejects.toThrow('unavailable');
    expect(sync.members).toEqual([m('ann', 1, 1), m('bob', null, null)]);
  });
});
