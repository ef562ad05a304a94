// Shows that every page has its own URL under /_/ and that params are decoded (topic names hold
// `.`, `:` and `@`), and that hrefs round-trip through match.
import { describe, expect, it } from 'vitest';
import { href, match, strip } from './router';

describe('router', () => {
  it('matches each page', () => {
    expect(match('/')).toEqual({ name: 'overview', params: {} });
    expect(match('/sign-in').name).toBe('signIn');
    expect(match('/apps')).toEqual({ name: 'apps', params: {} });
    expect(match('/apps/demo')).toEqual({ name: 'app', params: { app: 'demo' } });
    expect(match('/apps/demo/topics/')).toEqual({ name: 'topics', params: { app: 'demo' } });
    expect(match('/apps/demo/secrets').name).toBe('secrets');
    expect(match('/keys').name).toBe('keys');
    expect(match('/apps/demo/dead-letters')).toEqual({ name: 'deadLetters', params: { app: 'demo' } });
    expect(match('/apps/demo/scripts')).toEqual({ name: 'scripts', params: { app: 'demo' } });
    expect(match('/apps/demo/scripts/on-order.v2')).toEqual({ name: 'script', params: { app: 'demo', script: 'on-order.v2' } });
    expect(match('/apps/demo/logs')).toEqual({ name: 'logs', params: { app: 'demo' } });
    expect(match('/apps/demo/wiring')).toEqual({ name: 'wiring', params: { app: 'demo' } });
    expect(match('/nope/x').name).toBe('notFound');
  });

  it('round-trips topic names with special characters', () => {
    const h = href('apps', 'demo', 'topics', 'room:1@a.b');
    expect(h).toBe('/_/apps/demo/topics/room%3A1%40a.b');
    expect(match(strip(h)!)).toEqual({ name: 'topic', params: { app: 'demo', topic: 'room:1@a.b' } });
  });

  it('strips the base and refuses paths outside it', () => {
    expect(strip('/_/')).toBe('/');
    expect(strip('/_')).toBe('/');
    expect(strip('/_/keys')).toBe('/keys');
    expect(strip('/api/v1/apps')).toBeNull();
    expect(strip('/_x')).toBeNull();
  });

  it('does not throw on a malformed escape', () => {
    expect(match('/apps/%E0%A4%A').name).toBe('notFound');
  });
});
