// Shows the topics table's search (case-insensitive on the name) and sorting (numbers numerically,
// booleans, strings; toggling a column flips its direction).
import { describe, expect, it } from 'vitest';
import { searchSort, toggleSort } from './table';

const rows = [
  { name: 'chat', last_seq: 10, external_subscribable: true, auth_mode: 'public' },
  { name: 'Alerts', last_seq: 2, external_subscribable: false, auth_mode: 'token' },
  { name: 'room.1', last_seq: 100, external_subscribable: true, auth_mode: 'token' },
];

describe('searchSort', () => {
  it('sorts numbers numerically both ways', () => {
    expect(searchSort(rows, '', 'name', { key: 'last_seq', dir: 'asc' }).map((r) => r.last_seq)).toEqual([2, 10, 100]);
    expect(searchSort(rows, '', 'name', { key: 'last_seq', dir: 'desc' }).map((r) => r.last_seq)).toEqual([100, 10, 2]);
  });

  it('sorts names and keeps ties in order', () => {
    expect(searchSort(rows, '', 'name', { key: 'name', dir: 'asc' }).map((r) => r.name)).toEqual(['Alerts', 'chat', 'room.1']);
    expect(searchSort(rows, '', 'name', { key: 'auth_mode', dir: 'asc' }).map((r) => r.name)).toEqual(['chat', 'Alerts', 'room.1']);
    expect(searchSort(rows, '', 'name', { key: 'external_subscribable', dir: 'asc' }).map((r) => r.name)).toEqual(['Alerts', 'chat', 'room.1']);
  });

  it('searches the name case-insensitively', () => {
    expect(searchSort(rows, 'ALE', 'name', { key: 'name', dir: 'asc' }).map((r) => r.name)).toEqual(['Alerts']);
    expect(searchSort(rows, 'zzz', 'name', { key: 'name', dir: 'asc' })).toEqual([]);
  });
});

describe('toggleSort', () => {
  it('flips the same column, starts another ascending', () => {
    expect(toggleSort({ key: 'name', dir: 'asc' }, 'name')).toEqual({ key: 'name', dir: 'desc' });
    expect(toggleSort<'name' | 'last_seq'>({ key: 'name', dir: 'desc' }, 'last_seq')).toEqual({ key: 'last_seq', dir: 'asc' });
  });
});
