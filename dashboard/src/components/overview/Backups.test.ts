// @vitest-environment happy-dom
// Shows the Overview's backups against a stubbed server: the list (time, size, scheduled badge, the
// schedule); "Back up now" disabled while the server works, then the new backup first; the server's
// 409 and 507 messages verbatim with the button usable again; a download that sends the key in the
// Authorization header (never in the URL) and saves the answer's bytes under the backup's name; a
// delete only after its confirmation (left open, with the server's message, when refused); PostgreSQL's explanation instead of the button.
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

type Backup = { name: string; created_at: string; bytes: number; scheduled: boolean };
const seen: { method: string; url: string; auth: string | null }[] = [];
let listed: Backup[] = [];
let supported = true;
let schedule: string | null = null;
/** The next POST's answer; `hold` keeps it pending until released. */
let createAnswer: { status: number; body: unknown } = { status: 201, body: null };
let hold: Promise<void> | null = null;
/** When set, the next DELETE fails with this answer. */
let deleteRefusal: { status: number; body: unknown } | null = null;
const FILE = new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3]);

const json = (status: number, v: unknown) => new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });
const backup = (name: string, bytes: number, scheduled = false): Backup => ({ name, created_at: '2026-01-02T03:04:05Z', bytes, scheduled });

async function server(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const req = input instanceof Request ? input : new Request(String(input), init);
  const url = new URL(req.url);
  seen.push({ method: req.method, url: url.pathname + url.search, auth: req.headers.get('authorization') });
  const p = url.pathname;
  if (p === '/api/v1/backups' && req.method === 'GET')
    return json(200, { backups: listed, supported, dir: supported ? '/var/lib/picloud/backups' : null, schedule, keep: schedule ? 7 : null });
  if (p === '/api/v1/backups' && req.method === 'POST') {
    if (hold) await hold;
    return json(createAnswer.status, createAnswer.body);
  }
  const one = /^\/api\/v1\/backups\/([^/]+)$/.exec(p);
  if (one && req.method === 'GET') return new Response(FILE, { headers: { 'content-type': 'application/gzip' } });
  if (one && req.method === 'DELETE') {
    if (deleteRefusal) {
      const r = deleteRefusal;
      deleteRefusal = null;
      return json(r.status, r.body);
    }
    listed = listed.filter((b) => b.name !== decodeURIComponent(one[1]!));
    return new Response(null, { status: 204 });
  }
  return json(404, { error: { code: 'not_found', message: `no stub for ${req.method} ${p}` } });
}

const within = (sel: string) => [...document.querySelectorAll<HTMLElement>(sel)];
const button = (name: string) =>
  within('button').find((b) => (b.getAttribute('aria-label') ?? b.textContent?.trim()) === name) as HTMLButtonElement | undefined;
const rows = () => within('table[aria-label="Backups"] tbody tr').map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent?.trim()));
const alertText = () => within('[role=alert]').map((a) => a.textContent?.trim());
const click = (el: Element | null | undefined) => {
  if (!el) throw new Error(`nothing to click in ${document.body.innerHTML.slice(0, 1500)}`);
  (el as HTMLElement).dispatchEvent(new MouseEvent('click', { bubbles: true, cancelable: true, button: 0 }));
};
const until = <T>(f: () => T) =>
  vi.waitFor(
    () => {
      const v = f();
      if (!v) throw new Error(`not yet: ${document.body.innerHTML.slice(0, 2000)}`);
      return v;
    },
    { timeout: 3000, interval: 10 },
  );

let mountIt: () => Promise<void>;
let unmount: () => void = () => {};

beforeAll(async () => {
  // The API client keeps the fetch it finds when created: stub first, import after.
  vi.stubGlobal('fetch', server);
  const { mount, unmount: un } = await import('svelte');
  const { configureApi } = await import('../../lib/api/client');
  const { default: Backups } = await import('./Backups.svelte');
  configureApi({ key: () => 'pk_admin_secret', unauthorized: () => {} });
  mountIt = async () => {
    document.body.innerHTML = '<div id="app"></div>';
    const c = mount(Backups, { target: document.getElementById('app')! });
    unmount = () => void un(c);
    await until(() => !document.querySelector('.loading'));
  };
});

afterEach(() => {
  unmount();
  seen.length = 0;
  hold = null;
  deleteRefusal = null;
  vi.restoreAllMocks();
});

describe('backups on the Overview', () => {
  it('lists the backups newest first with time, size, a scheduled badge and the schedule', async () => {
    listed = [backup('picloud-b.tar.gz', 8339, true), backup('picloud-a.tar.gz', 1536)];
    schedule = '0 3 * * *';
    supported = true;
    await mountIt();
    expect(rows().map((r) => r.slice(0, 3))).toEqual([
      ['picloud-b.tar.gz scheduled', expect.stringMatching(/^2026-01-0[12] \d\d:04:05$/), '8.1 KiB'],
      ['picloud-a.tar.gz', expect.stringMatching(/^2026-01-0[12] \d\d:04:05$/), '1.5 KiB'],
    ]);
    expect(document.querySelector('data')?.getAttribute('value')).toBe('8339');
    expect(document.querySelector('time')?.getAttribute('datetime')).toBe('2026-01-02T03:04:05Z');
    expect(document.body.textContent).toContain('Scheduled at 0 3 * * * (cron, UTC), keeping the newest 7 scheduled backups');
    expect(document.body.textContent).toContain('/var/lib/picloud/backups');
    expect(seen.every((r) => r.auth === 'Bearer pk_admin_secret')).toBe(true);
  });

  it('disables "Back up now" while the server works, then lists the new backup first', async () => {
    listed = [backup('picloud-a.tar.gz', 1536)];
    schedule = null;
    await mountIt();
    expect(document.body.textContent).toContain('Not scheduled');
    let release!: () => void;
    hold = new Promise((r) => (release = r));
    createAnswer = { status: 201, body: backup('picloud-new.tar.gz', 2 * 1024 * 1024) };
    click(button('Back up now'));
    await until(() => button('Back up now')?.disabled);
    expect(document.querySelector('[role=status]')?.textContent).toContain('Backing up…');
    expect(rows()).toHaveLength(1);
    release();
    await until(() => rows().length === 2);
    expect(rows().map((r) => r[0])).toEqual(['picloud-new.tar.gz', 'picloud-a.tar.gz']);
    expect(rows()[0]![2]).toBe('2.0 MiB');
    expect(button('Back up now')?.disabled).toBe(false);
    expect(document.querySelector('[role=status]')?.textContent).toBe('Backup picloud-new.tar.gz made (2.0 MiB).');
    expect(seen.filter((r) => r.method === 'POST').map((r) => r.url)).toEqual(['/api/v1/backups']);
  });

  it("shows the server's 507 and 409 messages, and the button is usable again", async () => {
    listed = [];
    await mountIt();
    expect(document.body.textContent).toContain('No backups yet.');
    createAnswer = { status: 507, body: { error: { code: 'storage_full', message: 'no space left for the backup; nothing was kept' } } };
    click(button('Back up now'));
    await until(() => alertText().length === 1);
    expect(alertText()).toEqual(['Backup failed: no space left for the backup; nothing was kept']);
    expect(button('Back up now')?.disabled).toBe(false);
    createAnswer = { status: 409, body: { error: { code: 'backup_running', message: 'a backup is already being made' } } };
    click(button('Back up now'));
    await until(() => alertText()[0]?.includes('already'));
    expect(alertText()).toEqual(['Backup failed: a backup is already being made']);
    expect(rows()).toEqual([]);
  });

  it('downloads with the key in the header, never in the URL, and saves the bytes under the backup name', async () => {
    listed = [backup('picloud-a.tar.gz', FILE.length)];
    await mountIt();
    let saved: Blob | undefined;
    const create = vi.spyOn(URL, 'createObjectURL').mockImplementation((b) => ((saved = b as Blob), 'blob:http://localhost/1'));
    const clicked: { href: string; download: string }[] = [];
    vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push({ href: this.href, download: this.download });
    });
    click(button('Download backup picloud-a.tar.gz'));
    await until(() => clicked.length === 1);
    expect(create).toHaveBeenCalledOnce();
    expect(clicked).toEqual([{ href: 'blob:http://localhost/1', download: 'picloud-a.tar.gz' }]);
    expect(new Uint8Array(await saved!.arrayBuffer())).toEqual(FILE);
    const get = seen.filter((r) => r.url.startsWith('/api/v1/backups/'));
    expect(get).toEqual([{ method: 'GET', url: '/api/v1/backups/picloud-a.tar.gz', auth: 'Bearer pk_admin_secret' }]);
    expect(seen.some((r) => r.url.includes('pk_admin_secret'))).toBe(false);
    expect(document.querySelector('a[download]')).toBeNull();
  });

  it('deletes only after the confirmation', async () => {
    listed = [backup('picloud-b.tar.gz', 20), backup('picloud-a.tar.gz', 10)];
    await mountIt();
    click(button('Delete backup picloud-b.tar.gz'));
    await until(() => button('Confirm delete of picloud-b.tar.gz'));
    click(button('Cancel'));
    await until(() => button('Delete backup picloud-b.tar.gz'));
    expect(seen.some((r) => r.method === 'DELETE')).toBe(false);
    click(button('Delete backup picloud-b.tar.gz'));
    click(await until(() => button('Confirm delete of picloud-b.tar.gz')));
    await until(() => rows().length === 1);
    expect(rows()[0]![0]).toBe('picloud-a.tar.gz');
    expect(seen.filter((r) => r.method === 'DELETE').map((r) => r.url)).toEqual(['/api/v1/backups/picloud-b.tar.gz']);
  });

  it("keeps the confirmation open after a refused delete, with the server's message once", async () => {
    listed = [backup('picloud-a.tar.gz', 10)];
    await mountIt();
    deleteRefusal = { status: 409, body: { error: { code: 'conflict', message: 'the backup is being read' } } };
    click(button('Delete backup picloud-a.tar.gz'));
    click(await until(() => button('Confirm delete of picloud-a.tar.gz')));
    await until(() => alertText().length === 1 && !button('Confirm delete of picloud-a.tar.gz')?.disabled);
    expect(alertText()).toEqual(['Deleting picloud-a.tar.gz failed: the backup is being read']);
    expect(button('Cancel')).toBeDefined();
    expect(rows()).toHaveLength(1);
    click(button('Confirm delete of picloud-a.tar.gz'));
    await until(() => rows().length === 0 || document.body.textContent?.includes('No backups yet.'));
    expect(alertText()).toEqual([]);
    expect(seen.filter((r) => r.method === 'DELETE')).toHaveLength(2);
  });

  it('on PostgreSQL shows how to back up instead of the button', async () => {
    listed = [];
    supported = false;
    await mountIt();
    expect(button('Back up now')).toBeUndefined();
    expect(document.querySelector('.notice')?.textContent).toBe(
      'This server keeps its data in PostgreSQL: back it up with pg_dump and copy the files directory (docs/operations.md).',
    );
    expect(document.querySelector('table')).toBeNull();
  });
});
