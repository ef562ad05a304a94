/**
 * What one WebSocket connection holds in presence. A member is a token's `sub`, and every tab of a
 * browser shares one connection: so each topic is entered once however many presence handles
 * (owners: `<tab>:<n>`, in this tab or, through the tab-sharing leader, in another) enter it, and
 * left when the last of them leaves. The member's data is the latest write of any owner, which is
 * what the connection enters with again after a reconnect.
 */
import { PiCloudError } from './codes';
import type { Frame } from './transport/ws';

export type PresenceOp = 'enter' | 'update' | 'leave';

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export class Held {
  /** topic → owner → data; re-inserted on every write, so the last entry is the latest. */
  readonly m = new Map<string, Map<string, unknown>>();

  /** The data the member shows on `topic` (the latest write). */
  data(topic: string): unknown {
    return [...(this.m.get(topic)?.values() ?? [])].pop();
  }

  /**
   * Applies one owner's operation. Returns the frame that tells the server what changed for the
   * member (none when nothing did: another owner still holds the topic, or the data shown stays
   * the same) and an undo for when the server refuses it. When the owner whose data was shown
   * leaves and others stay, the member shows the latest of theirs again.
   */
  apply(owner: string, topic: string, op: PresenceOp, data?: unknown): [Frame | undefined, () => void] {
    const held = this.m.get(topic) ?? new Map<string, unknown>();
    const has = held.has(owner);
    if (op === 'update' && !has) throw new PiCloudError('not_entered', 'enter first');
    const prev = held.get(owner);
    const had = held.size > 0;
    const shown = this.data(topic);
    const undo = () => {
      held.delete(owner);
      if (has) held.set(owner, prev);
      if (held.size) this.m.set(topic, held);
      else this.m.delete(topic);
    };
    held.delete(owner);
    if (op !== 'leave') held.set(owner, data);
    if (!held.size) {
      this.m.delete(topic);
      return [had ? { type: 'presence.leave', topic } : undefined, undo];
    }
    this.m.set(topic, held);
    const now = this.data(topic);
    return [!had ? { type: 'presence.enter', topic, data: now } : same(shown, now) ? undefined : { type: 'presence.update', topic, data: now }, undo];
  }
}
