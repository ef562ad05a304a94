// Shows which actions a key's capabilities allow: InstanceAdmin implies all, read-only keys get no
// write actions, an app-bound key sees only its app and lands in it.
import { describe, expect, it } from 'vitest';
import { can, has, landing, mayOpen, seesApp } from './capabilities';

const key = (capabilities: string[], app_id: string | null = null) => ({ capabilities, app_id });

describe('capabilities', () => {
  it('InstanceAdmin implies every capability', () => {
    const k = key(['InstanceAdmin']);
    expect(has(k, 'AppWrite')).toBe(true);
    expect(can.manageKeys(k)).toBe(true);
    expect(can.publish(k)).toBe(true);
    expect(can.createApps(k)).toBe(true);
    expect(can.manageBackups(k)).toBe(true);
  });

  it('a read-only key may read but write nothing', () => {
    const k = key(['AppRead']);
    expect(can.listApps(k)).toBe(true);
    expect(can.readTopics(k)).toBe(true);
    expect(can.tail(k)).toBe(true);
    expect(can.createApps(k)).toBe(false);
    expect(can.writeApp(k)).toBe(false);
    expect(can.manageTopics(k)).toBe(false);
    expect(can.publish(k)).toBe(false);
    expect(can.manageSecrets(k)).toBe(false);
    expect(can.manageKeys(k)).toBe(false);
    expect(can.manageBackups(k)).toBe(false);
  });

  it('AppTopicManage alone reads topics too (the server accepts either)', () => {
    expect(can.readTopics(key(['AppTopicManage']))).toBe(true);
    expect(can.readApp(key(['AppTopicManage']))).toBe(false);
  });

  it('an app-bound key sees only its app, lists no apps and lands in its app', () => {
    const k = key(['AppRead', 'AppWrite', 'AppPublish'], 'app_1');
    expect(can.listApps(k)).toBe(false);
    expect(can.createApps(k)).toBe(false);
    expect(seesApp(k, 'app_1')).toBe(true);
    expect(seesApp(k, 'app_2')).toBe(false);
    expect(seesApp(k, { id: 'app_2', slug: 'demo' })).toBe(false);
    expect(landing(k)).toBe('/apps/app_1/topics');
    expect(landing(key(['AppRead']))).toBe('/');
  });

  it('only an unbound InstanceAdmin key manages backups (every other capability together does not)', () => {
    expect(can.manageBackups(key(['InstanceAdmin']))).toBe(true);
    expect(can.manageBackups(key(['InstanceAdmin'], 'app_1'))).toBe(false);
    expect(can.manageBackups(key(['AppRead', 'AppWrite', 'AppTopicManage', 'AppPublish', 'ScriptDeploy', 'SecretsManage']))).toBe(false);
    expect(can.manageBackups(null)).toBe(false);
  });

  it('no key may do nothing', () => {
    expect(has(null, 'AppRead')).toBe(false);
    expect(can.listApps(undefined)).toBe(false);
    expect(seesApp(null, 'x')).toBe(false);
  });
});

describe('mayOpen', () => {
  it('opens only the pages the key may use', () => {
    const ro = key(['AppRead']);
    expect(mayOpen('apps', ro, {})).toBe(true);
    expect(mayOpen('topics', ro, { app: 'demo' })).toBe(true);
    expect(mayOpen('keys', ro, {})).toBe(false);
    expect(mayOpen('secrets', ro, { app: 'demo' })).toBe(false);
    expect(mayOpen('secrets', key(['SecretsManage']), { app: 'demo' })).toBe(true);
    // Dead letters and logs: AppRead or ScriptDeploy; replaying needs ScriptDeploy.
    expect(mayOpen('deadLetters', ro, { app: 'demo' })).toBe(true);
    expect(mayOpen('logs', key(['ScriptDeploy']), { app: 'demo' })).toBe(true);
    expect(mayOpen('logs', key(['AppTopicManage']), { app: 'demo' })).toBe(false);
    expect(can.replay(ro)).toBe(false);
    expect(can.replay(key(['ScriptDeploy']))).toBe(true);
    // Scripts: read with AppRead or ScriptDeploy; deployed (rolled back, tried) with ScriptDeploy.
    expect(mayOpen('scripts', ro, { app: 'demo' })).toBe(true);
    expect(mayOpen('script', key(['ScriptDeploy']), { app: 'demo', script: 'x' })).toBe(true);
    expect(mayOpen('scripts', key(['AppPublish']), { app: 'demo' })).toBe(false);
    expect(can.deploy(ro)).toBe(false);
    expect(can.deploy(key(['ScriptDeploy']))).toBe(true);
    // Routes and triggers: listed with AppRead or ScriptDeploy; written with ScriptDeploy only.
    expect(mayOpen('wiring', ro, { app: 'demo' })).toBe(true);
    expect(mayOpen('wiring', key(['AppTopicManage']), { app: 'demo' })).toBe(false);
    expect(can.wire(ro)).toBe(false);
    expect(can.wire(key(['ScriptDeploy']))).toBe(true);
    expect(can.wire(key(['InstanceAdmin']))).toBe(true);
    expect(mayOpen('keys', key(['InstanceAdmin']), {})).toBe(true);
    expect(mayOpen('overview', null, {})).toBe(false);
    // a publish-only key opens a topic's page (its Publish form) but not the topic list
    expect(mayOpen('topic', key(['AppPublish']), { app: 'demo', topic: 'chat' })).toBe(true);
    expect(mayOpen('topics', key(['AppPublish']), { app: 'demo' })).toBe(false);
  });

  it('an app-bound key opens only its own app', () => {
    const bound = key(['AppRead', 'AppTopicManage'], 'app_1');
    expect(mayOpen('topics', bound, { app: 'app_1' })).toBe(true);
    expect(mayOpen('topic', bound, { app: 'app_1', topic: 'chat' })).toBe(true);
    expect(mayOpen('topics', bound, { app: 'app_2' })).toBe(false);
    expect(mayOpen('apps', bound, {})).toBe(false);
    expect(mayOpen('overview', bound, {})).toBe(false);
  });
});
