/**
 * `client.presence(topic)`: who is on a topic, and this page's own presence there.
 *
 * The handle subscribes to the topic (presence events come to its subscribers) and reads the
 * members (`presence.get`) whenever that subscription (re)starts, i.e. after every reconnect:
 * presence is not history, so a read is the only way to learn what changed while the connection
 * was down. A read replaces the list and reports the difference as join / leave / update. A read
 * and the events around it overlap: the server may answer with a state older than an event it
 * already sent (seen after a restart: `join`, then a `members` answer without that member), so the
 * events that arrive while a read is under way are applied again on top of its answer; and an
 * event is reported only for what it changes (a join of a member listed with the same data is no
 * event), so one the answer already reflects changes nothing. Entering is the connection's job
 * (`Source.own`): one connection enters a topic once for every handle and tab, and enters it
 * again by itself after a reconnect.
 */
import { PiCloudError } from './codes';
import type { Source } from './connection';
import type { PresenceOp } from './held';
import { safe } from './safe';
import type { Presence, PresenceEvent, PresenceMember, SubscribeOptions, Unsubscribe } from './types';

type Kind = 'join' | 'leave' | 'update' | 'change' | 'error';
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function presence<T>(
  topic: string,
  owner: string,
  source: Source,
  subscribe: (topic: string, options: SubscribeOptions) => Unsubscribe,
): Presence<T> {
  let now = new Map<string, T>();
  let list: PresenceMember<T>[] = [];
  let entered = false;
  let closed = false;
  /** The events received during each read under way. */
  const reads = new Set<PresenceEvent[]>();
  const cbs: Record<Kind, Set<(x: never) => void>> = { join: new Set(), leave: new Set(), update: new Set(), change: new Set(), error: new Set() };
  const on =
    (k: Kind) =>
    (cb: (x: never) => void): Unsubscribe => (cbs[k].add(cb), () => void cbs[k].delete(cb));
  const emit = (k: Kind, x: unknown) => {
    for (const cb of cbs[k]) safe(() => cb(x as never));
  };
  const step = (m: Map<string, T>, { event, member }: PresenceEvent) => (event === 'leave' ? m.delete(member.sub) : m.set(member.sub, member.data as T));
  /**
   * Makes `next` the list, reporting each difference (so an event or read that changes nothing is
   * no event) after the list is updated, then one `change`.
   */
  const sync = (next: Map<string, T>) => {
    const diff: [Kind, string, T][] = [];
    for (const [sub, data] of now) if (!next.has(sub)) diff.push(['leave', sub, data]);
    for (const [sub, data] of next) if (!now.has(sub)) diff.push(['join', sub, data]);
    else if (!same(now.get(sub), data)) diff.push(['update', sub, data]);
    if (!diff.length) return;
    now = next;
    list = [...now].map(([sub, data]) => ({ sub, data }));
    for (const [k, sub, data] of diff) emit(k, { sub, data });
    emit('change', list);
  };
  const apply = (e: PresenceEvent) => {
    for (const r of reads) r.push(e);
    const next = new Map(now);
    step(next, e);
    sync(next);
  };
  const read = () => {
    const during: PresenceEvent[] = [];
    reads.add(during);
    source.call({ type: 'presence.get', topic }).then(
      (a) => {
        reads.delete(during);
        if (closed) return;
        const next = new Map((a.members as PresenceMember<T>[]).map((m) => [m.sub, m.data]));
        for (const e of during) step(next, e);
        sync(next);
      },
      // Gone with its connection (the next subscription start reads again), closed, or SSE only:
      // the events still keep the list.
      (e: PiCloudError) => {
        reads.delete(during);
        if (!closed && !/^(network|closed|unsupported)$/.test(e.code)) emit('error', e);
      },
    );
  };
  const un = subscribe(topic, { onPresence: apply, onPosition: read, onError: (e) => emit('error', e) });
  // Already streaming this topic (another subscription, another tab): no new start will come to read.
  if (source.state === 'open') read();

  const op = (o: PresenceOp, data?: unknown) =>
    closed ? Promise.reject(new PiCloudError('closed', 'closed')) : source.own(owner, topic, o, data);
  return {
    topic,
    get members() {
      return list;
    },
    get entered() {
      return entered;
    },
    onJoin: on('join'),
    onLeave: on('leave'),
    onUpdate: on('update'),
    onChange: on('change'),
    onError: on('error'),
    enter(data) {
      entered = true;
      return op('enter', data).catch((e: unknown) => {
        entered = false;
        throw e;
      });
    },
    update: (data) => op('update', data),
    leave() {
      entered = false;
      return op('leave');
    },
    close() {
      if (closed) return;
      // Leave before the subscription ends: the last one closes the connection.
      if (entered) op('leave').catch(() => {});
      closed = true;
      entered = false;
      un();
      for (const k in cbs) cbs[k as Kind].clear();
    },
  };
}
