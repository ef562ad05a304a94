// The topic settings form's PATCH body: only what changed; retention always with both limits
// (it replaces both), an empty limit as null (no limit); the description trimmed.
import { describe, expect, it } from 'vitest';
import { describeRetention, tightens, topicForm, topicPatch } from './topicSettings';

const topic = {
  description: 'chat room',
  external_subscribable: true,
  auth_mode: 'public',
  retention: { max_messages: 10_000, max_age_secs: 86_400 },
};

describe('topicPatch', () => {
  it('is empty when nothing changed (the form as seeded)', () => {
    expect(topicPatch(topic, topicForm(topic))).toEqual({});
    expect(topicPatch(topic, { ...topicForm(topic), description: '  chat room ' })).toEqual({});
  });

  it('sends only the fields that changed', () => {
    const f = topicForm(topic);
    expect(topicPatch(topic, { ...f, description: 'new' })).toEqual({ description: 'new' });
    expect(topicPatch(topic, { ...f, description: '' })).toEqual({ description: '' });
    expect(topicPatch(topic, { ...f, authMode: 'token' })).toEqual({ auth_mode: 'token' });
    expect(topicPatch(topic, { ...f, external: false, authMode: 'token' })).toEqual({ external_subscribable: false, auth_mode: 'token' });
  });

  it('sends both limits when either changed; an empty one is no limit', () => {
    const f = topicForm(topic);
    expect(topicPatch(topic, { ...f, maxMessages: 50 })).toEqual({ retention: { max_messages: 50, max_age_secs: 86_400 } });
    expect(topicPatch(topic, { ...f, maxAgeSecs: null })).toEqual({ retention: { max_messages: 10_000, max_age_secs: null } });
    expect(topicPatch(topic, { ...f, maxAgeSecs: undefined, maxMessages: Number.NaN })).toEqual({ retention: { max_messages: null, max_age_secs: null } });
    const unlimited = { ...topic, retention: { max_messages: null, max_age_secs: null } };
    expect(topicPatch(unlimited, { ...topicForm(unlimited), maxMessages: undefined })).toEqual({});
    expect(topicPatch(unlimited, { ...topicForm(unlimited), maxAgeSecs: 60 })).toEqual({ retention: { max_messages: null, max_age_secs: 60 } });
  });

  it('leaves values to the server to judge (a too-long description is sent as is)', () => {
    const long = 'x'.repeat(1001);
    expect(topicPatch(topic, { ...topicForm(topic), description: long })).toEqual({ description: long });
    expect(topicPatch(topic, { ...topicForm(topic), maxMessages: 0 })).toEqual({ retention: { max_messages: 0, max_age_secs: 86_400 } });
  });
});

describe('topicForm', () => {
  it('seeds from the topic; missing limits are empty', () => {
    expect(topicForm({ ...topic, retention: {} })).toEqual({ description: 'chat room', external: true, authMode: 'public', maxMessages: null, maxAgeSecs: null });
  });
});

describe('tightens', () => {
  it('is true for token mode or internal, false otherwise', () => {
    expect(tightens({ auth_mode: 'token' })).toBe(true);
    expect(tightens({ external_subscribable: false })).toBe(true);
    expect(tightens({ auth_mode: 'public', external_subscribable: true, description: 'x' })).toBe(false);
    expect(tightens({})).toBe(false);
  });
});

describe('describeRetention', () => {
  it('names the limits, or none', () => {
    expect(describeRetention({ max_messages: 10_000, max_age_secs: 86_400 })).toBe('at most 10,000 messages, at most 86,400 s');
    expect(describeRetention({ max_messages: 5, max_age_secs: null })).toBe('at most 5 messages');
    expect(describeRetention({})).toBe('no limit');
  });
});
