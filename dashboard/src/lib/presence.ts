/**
 * A presence topic's members, kept live: the list read from the admin API
 * (`GET …/topics/{topic}/presence`) with the admin tail's `event: presence` frames applied on top.
 *
 * Why a read and a stream must be merged with care: the list is a snapshot taken at some moment
 * while the request is in flight, and events from before that moment may still be on their way
 * down the stream. So every event that arrives while a read is in flight is kept, and replayed on
 * the snapshot when it lands. Replaying an event the snapshot already reflects is harmless: the
 * stream is ordered, so whatever followed it (a later update, a rejoin) is replayed after it too,
 * and the result is the state after the last event received. After the stream reconnects, events
 * may have been missed: the caller reads the list again (`reload`).
 *
 * `connections` is only known from a read: a member that joined since is at least one connection
 * (`null`), and a second tab of an existing member sends no event at all.
 */
import type { PresenceEvent } from '@picloud/client';

export interface Member {
  sub: string;
  /** What it entered with or last updated to (any JSON; `null` when it entered without data). */
  data: unknown;
  /** Its open connections when the list was read; `null`: it joined since, so at least one. */
  connections: number | null;
}

const bySub = (a: Member, b: Member) => (a.sub < b.sub ? -1 : a.sub > b.sub ? 1 : 0);

/** The members after one event; a new array, ordered by `sub`. */
export function applyPresence(members: readonly Member[], e: PresenceEvent): Member[] {
  const { sub, data } = e.member;
  const i = members.findIndex((m) => m.sub === sub);
  if (e.event === 'leave') return i < 0 ? [...members] : members.filter((_, j) => j !== i);
  // A join of a member already listed is the snapshot's own (replayed); an update of one not listed
  // means its join came before the list we hold: either way it is there, with this data.
  if (i >= 0) return members.map((m, j) => (j === i ? { ...m, data } : m));
  return [...members, { sub, data, connections: null }].sort(bySub);
}

/** The members a read answered, ordered by `sub` as events keep them. */
export function fromList(list: readonly { sub: string; data: unknown; connections: number }[]): Member[] {
  return list.map((m) => ({ sub: m.sub, data: m.data, connections: m.connections })).sort(bySub);
}

/**
 * The merge of reads and events. `read` fetches the list; `changed` gets every new member list.
 * Reads may overlap (a reconnect while one is in flight): the answer of the latest read that
 * succeeded wins, with the events since it started replayed on it.
 */
export class PresenceSync {
  members: Member[] = [];
  /** Whether a read has succeeded (before that, an empty list means "not known yet"). */
  loaded = false;
  /** Events received while at least one read is in flight; cleared when none is. */
  private log: PresenceEvent[] = [];
  private reading = 0;
  private started = 0;
  private applied = 0;

  constructor(
    private readonly read: () => Promise<Member[]>,
    private readonly changed: (members: Member[]) => void,
  ) {}

  /** An event from the stream: applied at once, and kept for the reads in flight. */
  event(e: PresenceEvent): void {
    this.members = applyPresence(this.members, e);
    if (this.reading > 0) this.log.push(e);
    this.changed(this.members);
  }

  /** Reads the list and replays what arrived meanwhile. Rejects when the read fails (the list stays). */
  async reload(): Promise<void> {
    const gen = ++this.started;
    // The log only grows while a read is in flight, so this index stays valid until this read ends.
    const from = this.log.length;
    this.reading++;
    try {
      const list = await this.read();
      if (gen < this.applied) return;
      this.applied = gen;
      this.members = this.log.slice(from).reduce(applyPresence, list);
      this.loaded = true;
      this.changed(this.members);
    } finally {
      if (--this.reading === 0) this.log = [];
    }
  }
}
