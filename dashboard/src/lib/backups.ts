/**
 * Backups (`/api/v1/backups`, instance admins): the list kept newest first as the page changes it,
 * the schedule in words, and a download that carries the admin key in its Authorization header
 * (through the one API client) and hands the browser a Blob: the key never goes into a URL.
 */
import { api, call, type Schemas } from './api/client';

export type Backup = Schemas['BackupInfo'];
export type BackupList = Schemas['BackupList'];

/** What the list's `supported: false` means (the server's own words on `POST`). */
export const UNSUPPORTED =
  'This server keeps its data in PostgreSQL: back it up with pg_dump and copy the files directory (docs/operations.md).';

/** The list with a just-made backup first (once, should it already be listed). */
export function withBackup(list: readonly Backup[], made: Backup): Backup[] {
  return [made, ...list.filter((b) => b.name !== made.name)];
}

export function withoutBackup(list: readonly Backup[], name: string): Backup[] {
  return list.filter((b) => b.name !== name);
}

/** `PICLOUD_BACKUP_CRON` and `PICLOUD_BACKUP_KEEP` in a sentence. */
export function scheduleText(l: Pick<BackupList, 'schedule' | 'keep'>): string {
  if (!l.schedule) return 'Not scheduled (PICLOUD_BACKUP_CRON is not set): backups are made here or with picloud backup create.';
  const keep = l.keep == null ? '' : `, keeping the newest ${l.keep.toLocaleString('en')} scheduled ${l.keep === 1 ? 'backup' : 'backups'}`;
  return `Scheduled at ${l.schedule} (cron, UTC)${keep}; backups made by hand are kept until deleted.`;
}

/** The backup file's bytes (`GET /api/v1/backups/{name}`, with the key as every admin call). */
export async function fetchBackup(name: string): Promise<Blob> {
  return call(api.GET('/api/v1/backups/{name}', { params: { path: { name } }, parseAs: 'blob' }));
}

/** Saves a Blob as a file named `name`: an object URL clicked through a `download` link. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // The browser reads the Blob after the click returns; revoking at once can cancel the download.
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}
