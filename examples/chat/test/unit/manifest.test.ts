// The manifest, the scripts and the page agree: the same rooms everywhere (Rhai scripts cannot
// share code, so each repeats the list), every script and route in place, the static folder built.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOMS } from '../../web/src/rooms';
import { EXAMPLE_DIR, filesUnder, readManifest, scriptSources } from '../support/manifest';

const m = readManifest();
const sources = scriptSources(m);

/** The `const ROOMS = [...]` of a script. */
function roomsOf(source: string): string[] | undefined {
  const list = /^const ROOMS = \[(.*)\];$/m.exec(source)?.[1];
  return list?.split(',').map((s) => JSON.parse(s.trim()) as string);
}

describe('picloud.toml', () => {
  it('has the app, a room topic per room of the page, all token-only and subscribable', () => {
    expect(m.slug).toBe('chat');
    expect(m.topics.map((t) => t.name)).toEqual(ROOMS.map((r) => `room.${r.id}`));
    for (const t of m.topics) {
      expect(t.auth_mode).toBe('token');
      expect(t.external_subscribable).toBe(true);
    }
  });

  it('names scripts that exist, and routes and triggers use only those', () => {
    expect(Object.keys(m.scripts).sort()).toEqual(['count', 'send', 'stats', 'token']);
    for (const path of Object.values(m.scripts)) expect(existsSync(join(EXAMPLE_DIR, path)), path).toBe(true);
    for (const r of [...m.routes, ...m.triggers]) expect(m.scripts).toHaveProperty(r.script);
    expect(m.routes.map((r) => `${r.method} ${r.path}`).sort()).toEqual(['GET /api/stats', 'GET /api/token', 'POST /api/messages']);
    expect(m.triggers).toEqual([{ kind: 'pubsub', script: 'count', filter: { topic: 'room.*' }, enabled: true }]);
  });

  it('points at the built page, with stable file names', () => {
    expect(filesUnder(join(EXAMPLE_DIR, m.static))).toEqual(['assets/index.css', 'assets/index.js', 'favicon.svg', 'index.html']);
  });

  it.each(['send', 'token', 'stats'])('%s.rhai knows the same rooms', (name) => {
    expect(roomsOf(sources[name]!)).toEqual(ROOMS.map((r) => r.id));
    const list = /^const ROOM_LIST = "(.*)";/m.exec(sources[name]!)?.[1];
    if (list !== undefined) expect(list).toBe(ROOMS.map((r) => r.id).join(', '));
  });
});
