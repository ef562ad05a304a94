import { describe, expect, it } from 'vitest';
import { waitingText } from './deadLetterCount';

describe('waitingText', () => {
  it('shows the number waiting, nothing when none wait', () => {
    expect(waitingText(0)).toBe('');
    expect(waitingText(1)).toBe('1');
    expect(waitingText(1234)).toBe('1234');
  });
});
