// The endpoint calls against a fake fetch: what is sent, and how refusals read.
import type { FetchLike } from '@picloud/client';
import { describe, expect, it } from 'vitest';
import { fetchToken, sendMessage } from './api';

function fake(status: number, body: string, seen: { url?: string; init?: RequestInit } = {}): FetchLike {
  return async (url, init) => {
    seen.url = url;
    if (init) seen.init = init;
    return new Response(body, { status, headers: { 'content-type': 'application/json' } });
  };
}

describe('sendMessage', () => {
  it('posts JSON and resolves with the seq', async () => {
    const seen: { url?: string; init?: RequestInit } = {};
    await expect(sendMessage('http://chat.localhost:8080', { room: 'lobby', name: 'Ann', text: 'hi' }, fake(201, '{"room":"lobby","seq":7}', seen))).resolves.toBe(7);
    expect(seen.url).toBe('http://chat.localhost:8080/api/messages');
    expect(seen.init?.method).toBe('POST');
    expect(JSON.parse(String(seen.init?.body))).toEqual({ room: 'lobby', name: 'Ann', text: 'hi' });
  });

  it("rejects with the script's message", async () => {
    const body = '{"error":{"code":"invalid_field","message":"text: must be 1 to 500 characters"}}';
    await expect(sendMessage('', { room: 'lobby', name: 'Ann', text: '' }, fake(422, body))).rejects.toThrow('text: must be 1 to 500 characters');
  });

  it('rejects with the status when the answer is not JSON', async () => {
    await expect(sendMessage('', { room: 'lobby', name: 'A', text: 'b' }, fake(502, '<html>bad gateway</html>'))).rejects.toThrow('the server answered 502');
  });
});

describe('fetchToken', () => {
  it('asks for the room and the name', async () => {
    const seen: { url?: string } = {};
    await expect(fetchToken('http://x', 'lobby', 'Ann B', fake(200, '{"token":"t"}', seen))).resolves.toBe('t');
    expect(seen.url).toBe('http://x/api/token?room=lobby&name=Ann+B');
  });

  it('rejects an answer without a token', async () => {
    await expect(fetchToken('http://x', 'lobby', '', fake(200, '{}'))).rejects.toThrow('no token');
  });
});
