/**
 * Scripts and their versions (the Scripts pages): the name rule a deploy applies, versions newest
 * first, and the deploy's two steps as one function — the server's check first (`POST
 * …/scripts/check`: the same check the deploy runs, under the app's limits), and only when it
 * finds nothing the deploy itself.
 */
import { api, call, type Schemas } from './api/client';
import type { Diagnostic } from './checker';

export type Script = Schemas['ScriptBody'];
export type ScriptDetail = Schemas['ScriptDetail'];
export type ScriptVersion = Schemas['ScriptVersionBody'];

/** Why a script name would be refused (`[A-Za-z0-9_.-]`, 1–64, not `check`), or null. */
export function scriptNameError(name: string): string | null {
  if (!name) return 'Name the script.';
  if (name.length > 64) return 'A script name has at most 64 characters.';
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) return 'A script name uses only letters, digits, _ . and -.';
  if (name === 'check') return '`check` is reserved.';
  return null;
}

/** Newest first, a copy. */
export function versionsNewest(list: readonly ScriptVersion[]): ScriptVersion[] {
  return [...list].sort((a, b) => b.version - a.version);
}

export type DeployResult = { ok: true; version: number } | { ok: false; diagnostics: Diagnostic[] };

/** The server's check, then (when it finds nothing) the deploy; other failures throw (ApiError). */
export async function checkThenDeploy(app: string, name: string, source: string): Promise<DeployResult> {
  const checked = await call(api.POST('/api/v1/apps/{app}/scripts/check', { params: { path: { app } }, body: { source } }));
  if (checked.diagnostics.length) return { ok: false, diagnostics: checked.diagnostics };
  const deployed = await call(api.POST('/api/v1/apps/{app}/scripts', { params: { path: { app } }, body: { name, source } }));
  return { ok: true, version: deployed.version };
}
