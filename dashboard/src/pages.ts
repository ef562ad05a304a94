/**
 * The route table's components: one page per route name, loaded lazily so the shell stays small
 * (chunk names are the file names: stable across builds). Every page takes the route's params.
 */
import type { Component } from 'svelte';
import type { RouteName } from './lib/router';

export type PageProps = { params: Record<string, string> };
type Loader = () => Promise<{ default: Component<PageProps> }>;

export const pages: Record<Exclude<RouteName, 'signIn' | 'notFound'>, Loader> = {
  overview: () => import('./components/overview/PageOverview.svelte'),
  apps: () => import('./components/apps/PageApps.svelte'),
  app: () => import('./components/apps/PageApp.svelte'),
  topics: () => import('./components/topics/PageTopics.svelte'),
  topic: () => import('./components/topics/PageTopic.svelte'),
  deadLetters: () => import('./components/scripts/PageDeadLetters.svelte'),
  scripts: () => import('./components/scripts/PageScripts.svelte'),
  script: () => import('./components/scripts/PageScript.svelte'),
  logs: () => import('./components/scripts/PageLogs.svelte'),
  wiring: () => import('./components/wiring/PageWiring.svelte'),
  secrets: () => import('./components/secrets/PageSecrets.svelte'),
  keys: () => import('./components/keys/PageKeys.svelte'),
};
