// Shows the loader's contract: data on success, the error's message (data kept) on failure,
// cleared data with clearOnError, and that an older overlapping reload cannot overwrite a newer one.
import { describe, expect, it } from 'vitest';
import { ApiError } from './api/client';
import { loader } from './loader.svelte';

const later = <T>() => {
  let resolve!: (v: T) => void;
  const p = new Promise<T>((r) => (resolve = r));
  return { p, resolve };
};

describe('loader', () => {
  it('holds the data, then the error message with the last data kept', async () => {
    let fail = false;
    const l = loader(async () => {
      if (fail) throw new ApiError(503, 'unavailable', 'storage is down');
      return [1, 2];
    });
    expect([l.data, l.error, l.loading]).toEqual([null, null, false]);
    const p = l.reload();
    expect(l.loading).toBe(true);
    await p;
    expect([l.data, l.error, l.loading]).toEqual([[1, 2], null, false]);
    fail = true;
    await l.reload();
    expect([l.data, l.error]).toEqual([[1, 2], 'storage is down']);
    fail = false;
    await l.reload();
    expect(l.error).toBeNull();
  });

  it('clears the data on failure when asked', async () => {
    let fail = false;
    const l = loader(async () => {
      if (fail) throw new Error('gone');
      return 'ready';
    }, { clearOnError: true });
    await l.reload();
    fail = true;
    await l.reload();
    expect([l.data, l.error]).toEqual([null, 'gone']);
  });

  it('lets the latest of overlapping reloads win', async () => {
    const answers = [later<string>(), later<string>()];
    let i = 0;
    const l = loader(() => answers[i++]!.p);
    const first = l.reload();
    const second = l.reload();
    answers[1]!.resolve('new');
    await second;
    answers[0]!.resolve('old');
    await first;
    expect(l.data).toBe('new');
    expect(l.loading).toBe(false);
  });
});
