/** The messages a room shows: what the `send` script publishes, plus where the stream put it. */
export interface ChatMessage {
  seq: number;
  name: string;
  text: string;
  publishedAt: string;
}

/** How many messages a room keeps on screen (the topic retains up to 1,000). */
export const KEEP = 200;

/**
 * Reads one published message; anything without a string name and text (a message published by
 * other means, say from the dashboard) is not a chat message and is skipped.
 */
export function toChatMessage(m: { seq: number | null; message: unknown; publishedAt: string }): ChatMessage | null {
  const body = m.message as { name?: unknown; text?: unknown } | null;
  if (m.seq === null || typeof body !== 'object' || body === null) return null;
  if (typeof body.name !== 'string' || typeof body.text !== 'string') return null;
  return { seq: m.seq, name: body.name, text: body.text, publishedAt: m.publishedAt };
}

/**
 * The list with `m` added in seq order, at most `keep` of the newest. The client already hands
 * each durable message over once and in order; a seq seen before (a replay after switching
 * rooms back, say) is ignored rather than shown twice.
 */
export function addMessage(list: readonly ChatMessage[], m: ChatMessage, keep = KEEP): ChatMessage[] {
  if (list.some((x) => x.seq === m.seq)) return list as ChatMessage[];
  const next = [...list, m];
  if (next.length > 1 && next[next.length - 2]!.seq > m.seq) next.sort((a, b) => a.seq - b.seq);
  return next.length > keep ? next.slice(next.length - keep) : next;
}

/** `14:05` in the reader's own clock. */
export function timeOf(publishedAt: string): string {
  const d = new Date(publishedAt);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
