// @vitest-environment happy-dom
// Shows the shell end to end in a DOM against a stubbed server: sign in with the labelled field
// (the key goes as Bearer and is kept per tab), navigation by links with one URL per page, the
// topics table, a publish (invalid JSON disables it; seqs shown), the live tail fed by the admin
// stream through @picloud/client (its position line, pause counting), the subscribers panel, the
// topic settings form (only what changed is sent; the server's refusal verbatim; an invalid client
// event limit is never sent), a presence topic's members kept live from the tail's presence events,
// the navigation's count of waiting dead letters, and a 401 that returns to sign-in.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const enc = new TextEncoder();
const seen: { method: string; url: string; auth: string | null }[] = [];
let streamCtl: ReadableStreamDefaultController<Uint8Array> | undefined;
let streamUrl = '';
let seq = 3;
let validKey = 'pk_good';
/** What PATCH saved on chat (the stub's topic store). */
let chatSaved: Record<string, unknown> = {};
const patches: unknown[] = [];
/** What GET …/chat/presence answers. */
let members: { sub: string; data: unknown; connections: number }[] = [];

const json = (status: number, v: unknown) => new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });
const topic = (name: string, last_seq: number, external: boolean) => ({
  name,
  description: '',
  external_subscribable: external,
  auth_mode: external ? 'public' : 'token',
  retention: {},
  client_publish: false,
  presence: false,
  client_event_limit: null,
  last_seq,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
});
const frame = (s: number | null, message: unknown) =>
  enc.encode(`${s === null ? '' : `id: ${s}\n`}event: message\ndata: ${JSON.stringify({ topic: 'chat', seq: s, message, published_at: '2026-01-01T00:00:00.000Z' })}\n\n`);

async function server(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const req = input instanceof Request ? input : new Request(String(input), init);
  const url = new URL(req.url);
  const auth = req.headers.get('authorization');
  seen.push({ method: req.method, url: url.pathname + url.search, auth });
  if (url.pathname === '/readyz') return json(200, { status: 'ready', storage: 'ok' });
  if (auth !== `Bearer ${validKey}`) return json(401, { error: { code: 'unauthorized', message: 'unauthorized' } });
  const p = url.pathname;
  if (p === '/api/v1/me') return json(200, { id: 'k1', label: 'ops', capabilities: ['AppRead', 'AppTopicManage', 'AppPublish'], app_id: null });
  if (p === '/health/realtime') return json(200, { connections: 1, subscribers: 1, topics_with_subscribers: 1, published_durable: 3, published_ephemeral: 0, frames_sent: 5, gap_repairs: 0, resyncs: 0, slow_consumer_disconnects: 0, token_expirations: 0 });
  if (p === '/api/v1/apps') return json(200, { apps: [{ id: 'app_1', slug: 'demo', name: 'Demo', max_token_ttl_secs: 60, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' }] });
  if (p === '/api/v1/apps/demo') return json(200, { id: 'app_1', slug: 'demo', name: 'Demo', max_token_ttl_secs: 60, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' });
  if (p === '/api/v1/apps/demo/topics') return json(200, { topics: [topic('chat', 3, true), topic('alerts', 12, false)] });
  if (p === '/api/v1/apps/demo/topics/chat' && req.method === 'GET') return json(200, { ...topic('chat', seq, true), ...chatSaved });
  if (p === '/api/v1/apps/demo/topics/chat' && req.method === 'PATCH') {
    const b = JSON.parse(await req.text()) as Record<string, unknown>;
    patches.push(b);
    if (typeof b.description === 'string' && b.description.length > 1000)
      return json(422, { error: { code: 'invalid_field', message: 'description: at most 1000 characters, no control characters' } });
    chatSaved = { ...chatSaved, ...b };
    return json(200, { ...topic('chat', seq, true), ...chatSaved });
  }
  if (p === '/api/v1/apps/demo/topics/chat/presence') return json(200, { topic: 'chat', members });
  if (p === '/api/v1/apps/demo/domains') return json(200, { domains: [] });
  if (p === '/api/v1/apps/demo/dead-letters/count') return json(200, { waiting: 2 });
  if (p === '/api/v1/apps/demo/topics/chat/subscribers') return json(200, { count: 1, truncated: false, streams: [{ id: 's1', since: '2026-01-01T00:00:00Z', position: 3, subject: null, remote_addr: '127.0.0.1:5000', kind: 'admin_tail', topics: 1 }] });
  if (p === '/api/v1/apps/demo/topics/chat/stream') {
    streamUrl = url.pathname;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        streamCtl = c;
        c.enqueue(enc.encode(`retry: 2000\n\nid: ${seq}\nevent: position\ndata: null\n\n`));
      },
    });
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
  }
  if (p === '/api/v1/apps/demo/topics/chat/publish') {
    const m: unknown = JSON.parse(await req.text());
    const s = ++seq;
    streamCtl?.enqueue(frame(s, m));
    return json(201, { topic: 'chat', seq: s, published_at: '2026-01-01T00:00:00.000Z' });
  }
  if (p === '/api/v1/apps/demo/publish') {
    const b = JSON.parse(await req.text()) as { messages: { topic: string; data: unknown }[] };
    if (url.searchParams.get('ephemeral') === 'true') return json(422, { error: { code: 'invalid_field', message: 'messages[0].topic: no ephemeral batches in this stub' } });
    return json(201, { messages: b.messages.map((x) => ({ topic: x.topic, seq: ++seq, published_at: '2026-01-01T00:00:00.000Z' })) });
  }
  return json(404, { error: { code: 'not_found', message: `no stub for ${req.method} ${p}` } });
}

const $ = <T extends Element = HTMLElement>(sel: string) => document.querySelector<T>(sel);
const byText = (sel: string, text: string) => [...document.querySelectorAll<HTMLElement>(sel)].find((e) => e.textContent?.trim() === text);
const labelled = (text: string) => {
  const l = [...document.querySelectorAll('label')].find((x) => x.textContent?.trim() === text);
  return (l?.htmlFor ? document.getElementById(l.htmlFor) : l?.querySelector('input,textarea,select')) as HTMLInputElement | null;
};
const type = (el: HTMLInputElement | HTMLTextAreaElement, v: string) => {
  el.value = v;
  el.dispatchEvent(new Event('input', { bubbles: true }));
};
const click = (el: Element | null | undefined) => {
  if (!el) throw new Error('nothing to click');
  (el as HTMLElement).dispatchEvent(new MouseEvent('click', { bubbles: true, cancelable: true, button: 0 }));
};
const until = <T>(f: () => T) => vi.waitFor(() => {
  const v = f();
  if (!v) throw new Error(`not yet at ${location.pathname}: ${document.body.innerHTML.slice(0, 1500)}`);
  return v;
}, { timeout: 3000, interval: 10 });

let unmount: () => void = () => {};

beforeAll(async () => {
  vi.stubGlobal('fetch', server);
  history.replaceState(null, '', '/_/apps/demo/topics');
  document.body.innerHTML = '<div id="app"></div>';
  const { mount, unmount: un } = await import('svelte');
  const { default: App } = await import('./App.svelte');
  const { route } = await import('./stores/route.svelte');
  route.start();
  const app = mount(App, { target: document.getElementById('app')! });
  unmount = () => void un(app);
});
afterAll(() => {
  unmount();
  vi.unstubAllGlobals();
});

describe('dashboard shell', () => {
  it('asks for the key first, then returns to the deep link', async () => {
    await until(() => labelled('Admin key'));
    expect(location.pathname).toBe('/_/sign-in');
    expect(labelled('Remember on this device')?.type).toBe('checkbox');
    type(labelled('Admin key')!, 'pk_wrong');
    click(byText('button', 'Sign in'));
    await until(() => $('[role=alert]')?.textContent?.includes('The admin key was not accepted'));
    type(labelled('Admin key')!, 'pk_good');
    click(byText('button', 'Sign in'));
    await until(() => $('h1')?.textContent === 'Topics');
    expect(location.pathname).toBe('/_/apps/demo/topics');
    expect(sessionStorage.getItem('picloud.adminKey')).toBe('pk_good');
    expect(localStorage.getItem('picloud.adminKey')).toBeNull();
    expect(seen.find((s) => s.url === '/api/v1/me' && s.auth === 'Bearer pk_good')).toBeTruthy();
  });

  it('shows the topics table sorted, searchable, and only allowed actions', async () => {
    await until(() => document.querySelectorAll('tbody tr').length === 2);
    const names = () => [...document.querySelectorAll('tbody tr td:first-child')].map((td) => td.textContent);
    expect(names()).toEqual(['alerts', 'chat']);
    const lastSeq = () => [...document.querySelectorAll('th button')].find((b) => b.textContent?.startsWith('Last seq'));
    click(lastSeq());
    await until(() => names()[0] === 'chat' && lastSeq()?.closest('th')?.getAttribute('aria-sort') === 'ascending');
    click(lastSeq());
    await until(() => names()[0] === 'alerts' && lastSeq()?.closest('th')?.getAttribute('aria-sort') === 'descending');
    type(labelled('Search topics')!, 'cha');
    await until(() => names().length === 1 && names()[0] === 'chat');
    expect(byText('summary', 'Create topic')).toBeTruthy(); // AppTopicManage
    expect(byText('a', 'Keys')).toBeUndefined(); // not InstanceAdmin
    expect(byText('a', 'Secrets')).toBeUndefined(); // not SecretsManage
  });

  it('publishes valid JSON only, and the tail shows it from the admin stream', async () => {
    click(byText('a', 'chat'));
    await until(() => location.pathname === '/_/apps/demo/topics/chat' && byText('button', 'Publish'));
    await until(() => streamUrl === '/api/v1/apps/demo/topics/chat/stream');
    const stream = seen.find((s) => s.url.endsWith('/stream'))!;
    expect(stream.auth).toBe('Bearer pk_good');
    // The stream's opening `event: position` is a line of its own; the Subscribers panel lists the streams.
    await until(() => $('.tail-row.position p')?.textContent?.startsWith('Stream at position 3'));
    await until(() => $('table[aria-label="Subscribers of chat"] tbody tr')?.textContent?.includes('admin tail'));
    const editor = labelled('Message (JSON)') as unknown as HTMLTextAreaElement;
    type(editor, '{"text":');
    await until(() => (byText('button', 'Publish') as HTMLButtonElement).disabled);
    const before = seen.length;
    type(editor, '{"user":{"name":"ann"}}');
    await until(() => !(byText('button', 'Publish') as HTMLButtonElement).disabled);
    expect(seen.slice(before).some((s) => s.url.includes('/publish'))).toBe(false);
    click(byText('button', 'Publish'));
    await until(() => $('[role=status].ok')?.textContent === 'Published: seq 4.');
    await until(() => byText('.tail-row .badge', 'seq 4'));
    expect($('.tail-row.durable pre')?.textContent).toBe('{\n  "user": {\n    "name": "ann"\n  }\n}');

    // batch: an array goes to the batch endpoint; a failure shows the server's message verbatim
    type(editor, '[1, 2]');
    click(labelled('Batch (a JSON array, one message per element)'));
    await until(() => $('#publish-json-state')?.textContent?.trim() === 'Valid: 2 messages.');
    click(byText('button', 'Publish'));
    await until(() => $('[role=status].ok')?.textContent === 'Published 2 messages: seq 5–6.');
    click(labelled('Ephemeral (live subscribers only, no seq)'));
    click(byText('button', 'Publish'));
    await until(() => $('[role=alert]')?.textContent === 'messages[0].topic: no ephemeral batches in this stub');
    expect(seen.at(-1)?.url).toBe('/api/v1/apps/demo/publish?ephemeral=true');
  });

  it('pauses with a waiting count, resumes, and marks ephemeral frames', async () => {
    click(byText('button', 'Pause'));
    await until(() => byText('button', 'Resume'));
    streamCtl!.enqueue(frame(7, { n: 7 }));
    streamCtl!.enqueue(frame(null, { n: 'eph' }));
    await until(() => byText('.waiting', '2 waiting'));
    click(byText('button', 'Resume'));
    await until(() => byText('.tail-row .badge', 'ephemeral'));
    expect(byText('.tail-row .badge', 'seq 7')).toBeTruthy();
    type(labelled('Filter')!, 'n = "eph"');
    await until(() => document.querySelectorAll('.tail-row.message').length === 1);
  });

  it('keeps at most 5,000 lines, says how many it dropped, and renders only the visible rows', async () => {
    type(labelled('Filter')!, '');
    click(byText('button', 'Clear'));
    let chunk = '';
    for (let i = 0; i < 6000; i++) chunk += `id: ${100 + i}\nevent: message\ndata: {"topic":"chat","seq":${100 + i},"message":{"i":${i}},"published_at":"2026-01-01T00:00:00.000Z"}\n\n`;
    streamCtl!.enqueue(enc.encode(chunk));
    await until(() => $('.dropped')?.textContent?.startsWith('1,000 older lines dropped'));
    expect($('.tail .hint')?.textContent).toContain('5,000 lines kept');
    const rows = document.querySelectorAll('.tail-row').length;
    expect(rows).toBeGreaterThan(0);
    expect(rows).toBeLessThan(50);
  });

  it('edits the topic: sends only what changed, shows a refusal verbatim, and shows the saved values', async () => {
    const form = () => $('form[aria-label="Topic settings"]')!;
    click(byText('summary', 'Edit topic'));
    await until(() => form());
    const field = <T extends HTMLElement>(sel: string) => form().querySelector<T>(sel)!;
    const save = () => click([...form().querySelectorAll('button')].find((b) => b.textContent === 'Save'));
    expect($('dl.facts')?.textContent).toContain('no limit');

    save();
    await until(() => byText('.toast', 'Nothing changed.'));
    expect(patches).toEqual([]);

    type(field<HTMLTextAreaElement>('textarea'), 'x'.repeat(1001));
    save();
    await until(() => form().querySelector('[role=alert]')?.textContent === 'description: at most 1000 characters, no control characters');

    type(field<HTMLTextAreaElement>('textarea'), ' Room for ann ');
    const [messages] = [...form().querySelectorAll<HTMLInputElement>('input[type=number]')];
    type(messages!, '50');
    const mode = field<HTMLSelectElement>('select');
    mode.value = 'token';
    mode.dispatchEvent(new Event('change', { bubbles: true }));
    save();
    await until(() => byText('.toast', 'Topic chat saved.'));
    expect(patches.at(-1)).toEqual({ description: 'Room for ann', auth_mode: 'token', retention: { max_messages: 50, max_age_secs: null } });
    expect(form().querySelector('[role=alert]')).toBeNull();
    const facts = $('dl.facts')!.textContent!;
    expect(facts).toContain('Room for ann');
    expect(facts).toContain('at most 50 messages');
    expect(byText('dl.facts dd', 'token')).toBeTruthy();
  });

  it('turns presence on; its members are read, then follow the tail\'s presence events', async () => {
    const form = () => $('form[aria-label="Topic settings"]')!;
    const save = () => click([...form().querySelectorAll('button')].find((b) => b.textContent === 'Save'));
    const count = labelled('At most (events)')!;
    const per = labelled('Per (seconds)')!;
    // Half a limit, or seconds beyond a day: explained, and Save is off.
    type(count, '60');
    await until(() => $('#settings-limit-state.error')?.textContent === 'Give both the number of events and the seconds, or neither for no limit of its own.');
    expect(count.getAttribute('aria-invalid')).toBe('true');
    expect(([...form().querySelectorAll('button')].find((b) => b.textContent === 'Save') as HTMLButtonElement).disabled).toBe(true);
    type(per, '86401');
    await until(() => $('#settings-limit-state.error')?.textContent === 'The seconds must be a whole number from 1 to 86,400 (a day).');
    type(per, '60');
    await until(() => $('#settings-limit-state.hint')?.textContent === "At most 60 client events per 60 s on each connection, within the app's rate.");

    members = [{ sub: 'bob', data: { name: 'Bob' }, connections: 2 }];
    click(labelled("Presence (WebSocket clients whose token has a sub may enter; subscribers see who is there)"));
    click(labelled("Client events (WebSocket clients whose token's publish claim covers the topic may send ephemeral messages)"));
    save();
    await until(() => patches.length === 3);
    expect(patches.at(-1)).toEqual({ presence: true, client_publish: true, client_event_limit: { count: 60, per_secs: 60 } });
    expect(byText('dl.facts dd', 'allowed (at most 60 per 60 s per connection)')).toBeTruthy();

    // The section appears with the list as read.
    const rows = () => [...document.querySelectorAll('table[aria-label="Members of chat"] tbody tr')].map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent));
    await until(() => rows().length === 1);
    expect(rows()).toEqual([['bob', '{"name":"Bob"}', '2']]);
    expect($('[aria-labelledby="presence-h"] [role=status]')?.textContent?.trim()).toBe('1 member, live');

    // Events from the tail's stream (the stub's list changed first, as the server's would): a join
    // (connections unknown until the next read), an update, a leave.
    const presence = (event: string, sub: string, data: unknown = null) =>
      streamCtl!.enqueue(enc.encode(`event: presence\ndata: ${JSON.stringify({ topic: 'chat', event, member: { sub, data } })}\n\n`));
    members = [{ sub: 'ann', data: { name: 'Ann' }, connections: 1 }, ...members];
    presence('join', 'ann', { name: 'Ann' });
    await until(() => rows().length === 2);
    expect(rows()).toEqual([['ann', '{"name":"Ann"}', '1+'], ['bob', '{"name":"Bob"}', '2']]);
    // The read after the join gives ann's count.
    await until(() => rows()[0]?.[2] === '1');
    expect(seen.filter((r) => r.url === '/api/v1/apps/demo/topics/chat/presence').length).toBeGreaterThanOrEqual(2);
    members = [members[0]!, { sub: 'bob', data: { name: 'Bob', typing: true }, connections: 2 }];
    presence('update', 'bob', { name: 'Bob', typing: true });
    await until(() => rows()[1]?.[1] === '{"name":"Bob","typing":true}');
    members = [];
    presence('leave', 'ann');
    presence('leave', 'bob');
    await until(() => byText('p', "Nobody is here: no client has entered this topic's presence."));
    expect(rows()).toEqual([]);
    expect($('[aria-labelledby="presence-h"] [role=status]')?.textContent?.trim()).toBe('0 members, live');

    // Events missed while the tail's stream was down: the list is read again when it reopens.
    members = [{ sub: 'carl', data: null, connections: 1 }];
    const reads = seen.filter((r) => r.url === '/api/v1/apps/demo/topics/chat/presence').length;
    streamCtl!.close();
    await vi.waitFor(
      () => {
        if (rows()[0]?.[0] !== 'carl') throw new Error('carl not listed yet');
      },
      { timeout: 10_000, interval: 50 },
    );
    expect(seen.filter((r) => r.url === '/api/v1/apps/demo/topics/chat/presence').length).toBe(reads + 1);
    expect(rows()).toEqual([['carl', 'null', '1']]);
    await until(() => $('[aria-labelledby="presence-h"] [role=status]')?.textContent?.trim() === '1 member, live');

    // Removing the limit sends an explicit null (an absent field would keep it).
    type(count, '');
    type(per, '');
    await until(() => $('#settings-limit-state.hint')?.textContent === "No limit of its own: the app's rate applies.");
    save();
    await until(() => patches.length === 4);
    expect(patches.at(-1)).toEqual({ client_event_limit: null });
    await until(() => byText('dl.facts dd', "allowed (the app's rate)"));
  });

  it('counts the waiting dead letters beside their link', async () => {
    const link = await until(() => [...document.querySelectorAll('a')].find((a) => a.getAttribute('href') === '/_/apps/demo/dead-letters' && a.querySelector('.nav-count')));
    expect(link.querySelector('.nav-count')?.textContent).toBe('2');
    expect(link.querySelector('.nav-count')?.getAttribute('aria-hidden')).toBe('true');
    expect(link.querySelector('.sr-only')?.textContent).toBe(' (2 waiting)');
    expect(seen.some((r) => r.url === '/api/v1/apps/demo/dead-letters/count')).toBe(true);
    // The Scripts link sits beside it.
    expect(byText('a', 'Scripts')?.getAttribute('href')).toBe('/_/apps/demo/scripts');
  });

  it('a 401 anywhere returns to sign-in with a message and forgets the key', async () => {
    validKey = 'pk_other';
    click(byText('a', 'Topics'));
    await until(() => labelled('Admin key'));
    expect(location.pathname).toBe('/_/sign-in');
    expect($('[role=status].notice')?.textContent).toContain('The admin key was not accepted');
    expect(sessionStorage.getItem('picloud.adminKey')).toBeNull();
  });
});
