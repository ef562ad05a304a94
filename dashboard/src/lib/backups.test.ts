// Shows the backups list kept newest first as the page changes it (a new backup goes first, once;
// a deleted one goes) and the schedule in words.
import { describe, expect, it } from 'vitest';
import { scheduleText, withBackup, withoutBackup } from './backups';

const b = (name: string, scheduled = false) => ({ name, created_at: '2026-01-01T00:00:00Z', bytes: 10, scheduled });

describe('backups', () => {
  it('puts a new backup first, once', () => {
    const list = [b('picloud-2.tar.gz', true), b('picloud-1.tar.gz')];
    expect(withBackup(list, b('picloud-3.tar.gz')).map((x) => x.name)).toEqual(['picloud-3.tar.gz', 'picloud-2.tar.gz', 'picloud-1.tar.gz']);
    expect(withBackup(list, b('picloud-1.tar.gz')).map((x) => x.name)).toEqual(['picloud-1.tar.gz', 'picloud-2.tar.gz']);
    expect(withBackup([], b('a')).map((x) => x.name)).toEqual(['a']);
    expect(list).toHaveLength(2);
  });

  it('drops a deleted one, and nothing else', () => {
    const list = [b('c'), b('b'), b('a')];
    expect(withoutBackup(list, 'b').map((x) => x.name)).toEqual(['c', 'a']);
    expect(withoutBackup(list, 'zz')).toEqual(list);
  });

  it('says the schedule and how many scheduled backups are kept', () => {
    expect(scheduleText({ schedule: '0 3 * * *', keep: 7 })).toBe('Scheduled at 0 3 * * * (cron, UTC), keeping the newest 7 scheduled backups; backups made by hand are kept until deleted.');
    expect(scheduleText({ schedule: '0 3 * * *', keep: 1 })).toContain('keeping the newest 1 scheduled backup;');
    expect(scheduleText({ schedule: '*/5 * * * *' })).toBe('Scheduled at */5 * * * * (cron, UTC); backups made by hand are kept until deleted.');
    expect(scheduleText({ schedule: null, keep: null })).toMatch(/^Not scheduled \(PICLOUD_BACKUP_CRON is not set\)/);
  });
});
