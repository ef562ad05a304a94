import { describe, expect, it } from 'vitest';
import { addMessage, type ChatMessage, toChatMessage } from './messages';

const msg = (seq: number, text = `m${seq}`): ChatMessage => ({ seq, name: 'Ann', text, publishedAt: '2026-01-01T10:00:00.000Z' });

describe('toChatMessage', () => {
  it('reads what send.rhai publishes', () => {
    expect(toChatMessage({ seq: 3, message: { name: 'Ann', text: 'hi' }, publishedAt: 'x' })).toEqual({ seq: 3, name: 'Ann', text: 'hi', publishedAt: 'x' });
  });

  it.each([
    ['an ephemeral message', { seq: null, message: { name: 'a', text: 'b' }, publishedAt: 'x' }],
    ['no object', { seq: 1, message: 'hello', publishedAt: 'x' }],
    ['null', { seq: 1, message: null, publishedAt: 'x' }],
    ['no text', { seq: 1, message: { name: 'a' }, publishedAt: 'x' }],
    ['a number for a name', { seq: 1, message: { name: 1, text: 'b' }, publishedAt: 'x' }],
  ])('skips %s', (_, m) => {
    expect(toChatMessage(m)).toBeNull();
  });
});

describe('addMessage', () => {
  it('appends in order', () => {
    expect(addMessage(addMessage([], msg(1)), msg(2)).map((m) => m.seq)).toEqual([1, 2]);
  });

  it('ignores a seq it has', () => {
    const list = [msg(1), msg(2)];
    expect(addMessage(list, msg(2, 'again'))).toBe(list);
  });

  it('puts a late one in its place', () => {
    expect(addMessage([msg(1), msg(3)], msg(2)).map((m) => m.seq)).toEqual([1, 2, 3]);
  });

  it('keeps the newest', () => {
    let list: ChatMessage[] = [];
    for (let i = 1; i <= 10; i++) list = addMessage(list, msg(i), 4);
    expect(list.map((m) => m.seq)).toEqual([7, 8, 9, 10]);
  });
});
