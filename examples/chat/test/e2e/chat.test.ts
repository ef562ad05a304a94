// The chat example against the real picloud binary, deployed from its manifest with
// `picloud app deploy` (twice: the second run changes nothing): the send
// endpoint publishes and refuses bad input clearly; a Node subscriber following a room the way
// the page does (tokens from /api/token, history from the start, then live) gets every message
// once and in order; the count trigger keeps /api/stats up to date.
import type { ConnectionState } from '@picloud/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appFetch, PiCloud, until } from '../../../../clients/typescript/test/support/picloud';
import { fetchStats, fetchToken, sendMessage } from '../../web/src/api';
import type { ChatMessage } from '../../web/src/messages';
import { joinRoom } from '../../web/src/room';
import { deploy } from '../support/manifest';

let pc: PiCloud;
let app: string;

beforeAll(async () => {
  pc = await PiCloud.start();
  const { manifest, printed } = deploy(pc);
  expect(printed).toContain('+ app chat');
  // The command is idempotent: a second run changes nothing.
  expect(deploy(pc).printed).toContain('chat: nothing to change');
  app = pc.appUrl(manifest.slug);
});

afterAll(async () => {
  await pc?.destroy();
});

/** A raw call to the app's Host, for what the page's helpers do not send. */
async function post(path: string, body: string): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  const r = await appFetch(`${app}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: r.status, body: (await r.json()) as { error?: { code: string; message: string } } };
}

/** Follows `room` as the page does; `messages` fills as they arrive. */
function follow(room: string, name = 'Reader') {
  const messages: ChatMessage[] = [];
  const states: ConnectionState[] = [];
  const errors: string[] = [];
  const leave = joinRoom({
    url: app,
    room,
    name: () => name,
    fetch: appFetch,
    onMessage: (m) => messages.push(m),
    onState: (s) => states.push(s),
    onError: (e) => errors.push(e),
  });
  return { messages, states, errors, leave, open: () => until(() => states.at(-1) === 'open', `${room} to be live (errors: ${errors.join('; ')})`) };
}

describe('the chat example', () => {
  it('publishes a good message and answers 201 with its seq, trimmed', async () => {
    const r = await post('/api/messages', JSON.stringify({ room: 'random', name: '  Ann  ', text: '  first!  ' }));
    expect(r).toEqual({ status: 201, body: { room: 'random', seq: 1 } });
    const [history] = (await pc.api<{ messages: { message: unknown }[] }>('GET', '/apps/chat/topics/room.random/messages')).messages;
    expect(history?.message).toEqual({ name: 'Ann', text: 'first!' });
  });

  it.each([
    ['not JSON', 'hello', 400, 'send a JSON object: {"room", "name", "text"}'],
    ['an array', '[1]', 400, 'send a JSON object: {"room", "name", "text"}'],
    ['an unknown room', { room: 'attic', name: 'Ann', text: 'hi' }, 422, 'room: must be one of lobby, random'],
    ['no room', { name: 'Ann', text: 'hi' }, 422, 'room: must be one of lobby, random'],
    ['a blank name', { room: 'lobby', name: '   ', text: 'hi' }, 422, 'name: must be 1 to 32 characters'],
    ['a long name', { room: 'lobby', name: 'n'.repeat(33), text: 'hi' }, 422, 'name: must be 1 to 32 characters'],
    ['a number for a name', { room: 'lobby', name: 7, text: 'hi' }, 422, 'name: must be a string'],
    ['no text', { room: 'lobby', name: 'Ann' }, 422, 'text: must be a string'],
    ['a blank text', { room: 'lobby', name: 'Ann', text: ' \n ' }, 422, 'text: must be 1 to 500 characters'],
    ['a text of 501 characters', { room: 'lobby', name: 'Ann', text: 'é'.repeat(501) }, 422, 'text: must be 1 to 500 characters'],
  ])('refuses %s with a clear error', async (_, body, status, message) => {
    const r = await post('/api/messages', typeof body === 'string' ? body : JSON.stringify(body));
    expect(r.status).toBe(status);
    expect(r.body.error?.message).toBe(message);
    // The page's helper surfaces the same words.
    if (typeof body !== 'string') await expect(sendMessage(app, body as never, appFetch)).rejects.toThrow(message);
  });

  it('accepts 500 characters (counted as characters, not bytes)', async () => {
    await expect(sendMessage(app, { room: 'random', name: 'Ann', text: 'é'.repeat(500) }, appFetch)).resolves.toBe(2);
  });

  it('mints tokens for known rooms only', async () => {
    expect(await fetchToken(app, 'lobby', 'Ann', appFetch)).toMatch(/^ey[\w-]+\.[\w-]+\.[\w-]+$/);
    await expect(fetchToken(app, 'attic', 'Ann', appFetch)).rejects.toThrow('room: must be one of lobby, random');
    // The room's topic is token-only: no token, no stream.
    expect((await appFetch(`${app}/realtime/topics/room.lobby`)).status).toBe(401);
  });

  it('delivers every message to a live subscriber, once and in order, then history to a late one', async () => {
    const live = follow('lobby');
    await live.open();
    const texts = Array.from({ length: 12 }, (_, i) => `message ${i + 1}`);
    const seqs: number[] = [];
    for (const text of texts) seqs.push(await sendMessage(app, { room: 'lobby', name: 'Ann', text }, appFetch));
    expect(seqs).toEqual(texts.map((_, i) => i + 1));
    await until(() => live.messages.length >= texts.length, 'the live subscriber to get every message');
    expect(live.messages.map((m) => [m.seq, m.name, m.text])).toEqual(texts.map((t, i) => [i + 1, 'Ann', t]));

    // A page opened now starts from the room's history, then goes on live.
    const late = follow('lobby', 'Late');
    await until(() => late.messages.length >= texts.length, 'the late subscriber to get the history');
    await late.open();
    await sendMessage(app, { room: 'lobby', name: 'Bob', text: 'welcome back' }, appFetch);
    await until(() => late.messages.length === texts.length + 1 && live.messages.length === texts.length + 1, 'the next message on both');
    expect(late.messages).toEqual(live.messages);
    expect(late.messages.at(-1)).toMatchObject({ seq: 13, name: 'Bob', text: 'welcome back' });

    // Rooms are separate: nothing from random reached the lobby.
    expect(live.messages.every((m) => m.text !== 'first!')).toBe(true);
    live.leave();
    late.leave();
  });

  it('counts the messages of each room with the pubsub trigger', async () => {
    // 13 in the lobby, 2 in random so far; send a burst so deliveries run side by side.
    await Promise.all(Array.from({ length: 10 }, (_, i) => sendMessage(app, { room: 'random', name: 'Cy', text: `burst ${i}` }, appFetch)));
    await until(async () => {
      const s = await fetchStats(app, appFetch);
      return s.lobby === 13 && s.random === 12 ? s : null;
    }, '/api/stats to count 13 and 12');
    expect(await fetchStats(app, appFetch)).toEqual({ lobby: 13, random: 12 });
  });
});
