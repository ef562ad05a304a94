import { expect, it } from 'vitest';
import { statusLabel } from './status';

it('says what the connection is doing', () => {
  expect(['connecting', 'open', 'reconnecting', 'closed'].map((s) => statusLabel(s as never))).toEqual(['Connecting…', 'Live', 'Reconnecting…', 'Disconnected']);
});
