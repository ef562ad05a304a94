/**
 * The tail's download: one JSON object per line, each a message as the stream delivered it
 * (`{"topic","seq","published_at","message"}`, docs/protocol.md; `seq` null when ephemeral),
 * oldest first, ending with a newline. Resync, position and status lines are not messages and are left out.
 */
import type { TailEntry } from './buffer';

export function toNdjson(entries: Iterable<TailEntry>): string {
  let out = '';
  for (const e of entries) {
    if (e.kind !== 'message') continue;
    out += `{"topic":${JSON.stringify(e.topic)},"seq":${e.seq === null ? 'null' : e.seq},"published_at":${JSON.stringify(e.publishedAt)},"message":${e.raw}}\n`;
  }
  return out;
}

/** UTF-8 byte length of a string (without allocating an encoder per call). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
