import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadChecker, resetChecker, type Checker } from './checker';

const fake: Checker = {
  checkScript: () => [],
  validateTopic: () => null,
  topicPatternMatches: () => true,
  cronNext: () => [],
  validateTriggerFilter: () => null,
};

afterEach(resetChecker);

describe('loadChecker', () => {
  it('imports once and shares the module', async () => {
    const importer = vi.fn(async () => fake);
    const [a, b] = await Promise.all([loadChecker(importer), loadChecker(importer)]);
    expect(a).toBe(fake);
    expect(b).toBe(fake);
    expect(await loadChecker(importer)).toBe(fake);
    expect(importer).toHaveBeenCalledTimes(1);
  });
  it('retries after a failed import', async () => {
    const importer = vi.fn().mockRejectedValueOnce(new Error('offline')).mockResolvedValueOnce(fake);
    await expect(loadChecker(importer)).rejects.toThrow('offline');
    expect(await loadChecker(importer)).toBe(fake);
    expect(importer).toHaveBeenCalledTimes(2);
  });
});
