/**
 * What an admin key may do, from its capability names (docs/openapi.json `CreateAdminKey`;
 * `picloud-core` `Capability`). `InstanceAdmin` implies every other capability. The UI hides every
 * action a key may not take; the server still refuses it (403) if asked.
 */
import type { RouteName } from './router';

export const CAPABILITIES = [
  'AppRead',
  'AppWrite',
  'AppTopicManage',
  'AppPublish',
  'ScriptDeploy',
  'SecretsManage',
  'InstanceAdmin',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** The parts of `GET /api/v1/me` the checks read. */
export interface KeyScope {
  capabilities: readonly string[];
  app_id: string | null;
}

export function has(key: KeyScope | null | undefined, cap: Capability): boolean {
  if (!key) return false;
  return key.capabilities.includes('InstanceAdmin') || key.capabilities.includes(cap);
}

const any = (key: KeyScope | null | undefined, caps: Capability[]) => caps.some((c) => has(key, c));

/** The questions pages ask. `app`: a slug or id in the URL; an app-bound key sees only its own app. */
export const can = {
  /** The instance-wide app list (an app-bound key lands in its app instead). */
  listApps: (k: KeyScope | null | undefined) => !!k && k.app_id === null && has(k, 'AppRead'),
  createApps: (k: KeyScope | null | undefined) => !!k && k.app_id === null && has(k, 'AppWrite'),
  writeApp: (k: KeyScope | null | undefined) => has(k, 'AppWrite'),
  readApp: (k: KeyScope | null | undefined) => has(k, 'AppRead'),
  readTopics: (k: KeyScope | null | undefined) => any(k, ['AppRead', 'AppTopicManage']),
  manageTopics: (k: KeyScope | null | undefined) => has(k, 'AppTopicManage'),
  publish: (k: KeyScope | null | undefined) => has(k, 'AppPublish'),
  /** The admin tail stream reads messages: the same capabilities as reading topics. */
  tail: (k: KeyScope | null | undefined) => any(k, ['AppRead', 'AppTopicManage']),
  /** Dead letters, invocation logs, triggers: the server's scripts READ (`AppRead` or `ScriptDeploy`). */
  readScripts: (k: KeyScope | null | undefined) => any(k, ['AppRead', 'ScriptDeploy']),
  /** Deploying a script (and rolling one back, trying one) needs `ScriptDeploy`. */
  deploy: (k: KeyScope | null | undefined) => has(k, 'ScriptDeploy'),
  /** Replaying a dead letter needs `ScriptDeploy`. */
  replay: (k: KeyScope | null | undefined) => has(k, 'ScriptDeploy'),
  /** Creating, changing and deleting routes and triggers needs `ScriptDeploy` (listing: `readScripts`). */
  wire: (k: KeyScope | null | undefined) => has(k, 'ScriptDeploy'),
  manageSecrets: (k: KeyScope | null | undefined) => has(k, 'SecretsManage'),
  manageKeys: (k: KeyScope | null | undefined) => has(k, 'InstanceAdmin'),
  /** Backups hold every app's data and secrets: an instance admin's, unbound to an app (as the server checks). */
  manageBackups: (k: KeyScope | null | undefined) => !!k && k.app_id === null && has(k, 'InstanceAdmin'),
};

/** Whether the key may touch this app at all: any app for an unbound key, only its own for a bound one. */
export function seesApp(k: KeyScope | null | undefined, app: { id: string; slug?: string } | string): boolean {
  if (!k) return false;
  if (k.app_id === null) return true;
  return typeof app === 'string' ? app === k.app_id : app.id === k.app_id;
}

/** Where a key lands after signing in. */
export function landing(k: KeyScope): string {
  if (k.app_id !== null) return `/apps/${encodeURIComponent(k.app_id)}/topics`;
  return '/';
}

/**
 * Whether a page may be shown to this key (links to the others are not shown either). An app-bound
 * key sees only its own app, addressed by its id (the links it is given use the id).
 */
export function mayOpen(name: RouteName, k: KeyScope | null | undefined, params: Record<string, string>): boolean {
  if (!k) return false;
  if (k.app_id !== null && params.app !== undefined && params.app !== k.app_id) return false;
  switch (name) {
    case 'overview':
      return k.app_id === null;
    case 'apps':
      return can.listApps(k);
    case 'app':
      return can.readApp(k);
    case 'topics':
      return can.readTopics(k);
    case 'topic':
      return can.readTopics(k) || can.publish(k);
    case 'deadLetters':
    case 'scripts':
    case 'script':
    case 'logs':
    case 'wiring':
      return can.readScripts(k);
    case 'secrets':
      return can.manageSecrets(k);
    case 'keys':
      return can.manageKeys(k);
    case 'signIn':
    case 'notFound':
      return true;
  }
}
