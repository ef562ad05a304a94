/**
 * The Publish form's logic: parse the editor's text (nothing is sent while it is not valid JSON)
 * and decide the request. `single`: the value is one message (`POST …/topics/{topic}/publish`);
 * `batch`: the value must be a JSON array of 1–1,000 messages, each published to the topic in order
 * through `POST /api/v1/apps/{app}/publish`. Pure.
 */
export type PublishMode = 'single' | 'batch';

export const BATCH_MAX = 1000;

export type Parsed =
  | { ok: true; kind: 'single'; message: unknown }
  | { ok: true; kind: 'batch'; messages: { topic: string; data: unknown }[] }
  | { ok: false; error: string };

export function parsePublish(text: string, mode: PublishMode, topic: string): Parsed {
  if (!text.trim()) return { ok: false, error: 'Enter a JSON value.' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `Invalid JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (mode === 'single') return { ok: true, kind: 'single', message: value };
  if (!Array.isArray(value)) return { ok: false, error: 'A batch is a JSON array: one element per message.' };
  if (value.length === 0 || value.length > BATCH_MAX) return { ok: false, error: `A batch holds 1 to ${BATCH_MAX} messages (this one ${value.length}).` };
  return { ok: true, kind: 'batch', messages: value.map((data: unknown) => ({ topic, data })) };
}

/** How the answer reads: the seqs (a range when consecutive), or that it was ephemeral. */
export function describeSeqs(seqs: readonly (number | null | undefined)[]): string {
  const s = seqs.filter((x): x is number => typeof x === 'number');
  if (!s.length) return seqs.length === 1 ? 'Published (ephemeral, no seq).' : `Published ${seqs.length} messages (ephemeral, no seqs).`;
  if (s.length === 1) return `Published: seq ${s[0]}.`;
  const consecutive = s.every((x, i) => i === 0 || x === s[i - 1]! + 1);
  return consecutive ? `Published ${s.length} messages: seq ${s[0]}–${s[s.length - 1]}.` : `Published ${s.length} messages: seq ${s.join(', ')}.`;
}
