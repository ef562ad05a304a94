// Shows the Svelte stores: topicStore subscribes with its first store subscriber, accumulates
// messages and status (a retried failure is `error` until the stream opens), and closes the
// stream with its last; endpointStore fetches and refetches; presenceStore enters with its
// first subscriber, follows the members, updates, and leaves with its last.
import { get } from 'svelte/store';
import { describe, expect, it, vi } from 'vitest';
import { createClient } from '../../src/index';
import { endpointStore, presenceStore, topicStore } from '../../src/svelte';
import { errorAnswer, msg, mockSse } from '../support/mock-sse';
import { mockWs } from '../support/mock-ws';

describe('svelte', () => {
  it('topicStore follows its subscribers', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    const store = topicStore<{ n: number }>(c, 'chat', { keep: 2 });
    expect(get(store).status).toBe('connecting'); // get() subscribes and unsubscribes at once
    const states: string[] = [];
    const stop = store.subscribe((s) => states.push(`${s.status}:${s.messages.map((x) => x.message.n).join(',')}`));
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\n${msg('chat', 1, { n: 1 })}${msg('chat', 2, { n: 2 })}${msg('chat', 3, { n: 3 })}`);
    await vi.waitFor(() => expect(states.at(-1)).toBe('open:2,3'));
    stop();
    await vi.waitFor(() => expect(r0.aborted).toBe(true));
  });

  it('topicStore shows a retried failure until the stream opens', async () => {
    const m = mockSse((_, i) => (i === 0 ? errorAnswer(503, 'unavailable') : undefined));
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    const states: string[] = [];
    const stop = topicStore(c, 'chat').subscribe((s) => states.push(`${s.status}:${s.error?.code ?? ''}:${String(s.error?.fatal ?? '')}`));
    const r1 = await m.request(1);
    r1.push('retry: 1\n\n');
    await vi.waitFor(() => expect(states.at(-1)).toBe('open::'));
    expect(states).toContain('reconnecting:unavailable:false');
    stop();
  });

  it('endpointStore fetches on first subscriber and on refetch', async () => {
    let n = 0;
    const fetch = async () => new Response(JSON.stringify({ n: ++n }), { headers: { 'content-type': 'application/json' } });
    const c = createClient({ url: 'http://x', fetch });
    const store = endpointStore<{ n: number }>(c, '/count');
    const seen: unknown[] = [];
    const stop = store.subscribe((s) => seen.push(s.data));
    await vi.waitFor(() => expect(seen.at(-1)).toEqual({ n: 1 }));
    store.refetch();
    await vi.waitFor(() => expect(seen.at(-1)).toEqual({ n: 2 }));
    stop();
  });

  it('presenceStore enters with its first subscriber and leaves with its last', async () => {
    const w = mockWs();
    const c = createClient({ url: 'http://x', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false });
    const store = presenceStore<{ name: string }>(c, 'room', { data: { name: 'ann' } });
    await expect(store.update({ name: 'x' })).rejects.toMatchObject({ code: 'closed' }); // no subscriber yet
    const states: string[] = [];
    const stop = store.subscribe((s) => states.push(`${s.entered}:${s.members.map((m) => m.data.name).join(',')}`));
    const s = await w.sock(0);
    s.open();
    await s.subscribeAll();
    const enter = await s.next('presence.enter', 'room');
    expect(enter.data).toEqual({ name: 'ann' });
    s.reply(enter, { type: 'ok' });
    s.push({ type: 'presence', topic: 'room', event: 'join', member: { sub: 'u1', data: { name: 'ann' } } });
    await vi.waitFor(() => expect(states.at(-1)).toBe('true:ann'));
    const updating = store.update({ name: 'Ann' });
    s.reply(await s.next('presence.update', 'room'), { type: 'ok' });
    await updating;
    stop();
    await s.next('presence.leave', 'room');
  });
});
