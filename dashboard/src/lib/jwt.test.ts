import { describe, expect, it } from 'vitest';
import { decodeToken, secondsLeft } from './jwt';

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('decodeToken', () => {
  it('reads the header and claims of a compact JWS', () => {
    const claims = { app: 'a1', topics: ['chat', 'room.*'], sub: 'ann', iat: 1_700_000_000, exp: 1_700_000_600 };
    const token = `${b64url({ alg: 'HS256', typ: 'JWT', kid: 'k1' })}.${b64url(claims)}.c2ln`;
    expect(decodeToken(token)).toEqual({ header: { alg: 'HS256', typ: 'JWT', kid: 'k1' }, claims });
  });

  it('decodes UTF-8 and unpadded parts', () => {
    const token = `${b64url({ alg: 'HS256' })}.${b64url({ sub: 'zoë' })}.x`;
    expect(decodeToken(token)?.claims.sub).toBe('zoë');
  });

  it('refuses what is not a token', () => {
    for (const bad of ['', 'a.b', 'a.b.c.d', `${b64url({})}.%%%.x`, `${b64url([1])}.${b64url({})}.x`, `${b64url({})}.${Buffer.from('not json').toString('base64url')}.x`]) {
      expect(decodeToken(bad), bad).toBeNull();
    }
  });
});

describe('secondsLeft', () => {
  it('counts down to exp, negative once past', () => {
    expect(secondsLeft({ exp: 1000 }, 400_000)).toBe(600);
    expect(secondsLeft({ exp: 1000 }, 1_100_000)).toBe(-100);
    expect(secondsLeft({}, 0)).toBeNull();
  });
});
