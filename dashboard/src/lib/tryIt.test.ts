import { describe, expect, it } from 'vitest';
import { parseHeaders, prettyBody, tryRequest } from './tryIt';

describe('parseHeaders', () => {
  it('one per line, trimmed, blank lines skipped, the last of a name kept', () => {
    expect(parseHeaders('Content-Type: application/json\n\n  X-Id:  7 \nx-id: 8\nAuthorization: Bearer a:b')).toEqual({
      ok: true,
      value: { 'Content-Type': 'application/json', 'X-Id': '7', 'x-id': '8', Authorization: 'Bearer a:b' },
    });
    expect(parseHeaders('')).toEqual({ ok: true, value: {} });
  });
  it('refuses a line without a name or colon, naming the line', () => {
    expect(parseHeaders('A: 1\nnope')).toEqual({ ok: false, error: 'Header line 2: write it as Name: value.' });
    expect(parseHeaders(': x').ok).toBe(false);
    expect(parseHeaders('Bad Name: x').ok).toBe(false);
  });
});

describe('tryRequest', () => {
  const base = { method: 'get', path: ' /hello ', query: '?a=1&b=2', headers: 'X-A: 1', body: '' };
  it('builds the request', () => {
    expect(tryRequest(base)).toEqual({ ok: true, value: { method: 'GET', path: '/hello', query: 'a=1&b=2', headers: { 'X-A': '1' }, body: '' } });
  });
  it('refuses a bad method, path or header', () => {
    expect(tryRequest({ ...base, method: 'TRACE' }).ok).toBe(false);
    expect(tryRequest({ ...base, path: 'hello' }).ok).toBe(false);
    expect(tryRequest({ ...base, path: '/x?y=1' })).toEqual({ ok: false, error: 'Put the query in the Query field.' });
    expect(tryRequest({ ...base, headers: 'oops' }).ok).toBe(false);
  });
});

describe('prettyBody', () => {
  it('indents JSON, keeps anything else', () => {
    expect(prettyBody('{"a":1}')).toBe('{\n  "a": 1\n}');
    expect(prettyBody('plain text')).toBe('plain text');
    expect(prettyBody('')).toBe('');
  });
});
