// The topic settings form's PATCH body: only what changed; retention always with both limits
// (it replaces both), an empty limit as null (no limit); the description trimmed; the client event
// limit checked before anything is sent, and removed with an explicit null.
import { describe, expect, it } from 'vitest';
import { describeClientEvents, describeRetention, eventLimit, limitHint, tightens, topicForm, topicPatch } from './topicSettings';

const topic = {
  description: 'chat room',
  external_subscribable: true,
  auth_mode: 'public',
  retention: { max_messages: 10_000, max_age_secs: 86_400 },
  client_publish: false,
  presence: false,
  client_event_limit: null,
};
const typing = { ...topic, client_publish: true, presence: true, client_event_limit: { count: 60, per_secs: 60 } };

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

describe('topicPatch: client events and presence', () => {
  it('sends the switches that changed', () => {
    const f = topicForm(topic);
    expect(topicPatch(topic, { ...f, clientPublish: true })).toEqual({ client_publish: true });
    expect(topicPatch(topic, { ...f, presence: true })).toEqual({ presence: true });
    expect(topicPatch(typing, { ...topicForm(typing), clientPublish: false, presence: false })).toEqual({ client_publish: false, presence: false });
  });

  it('sends a new or changed limit whole, and nothing when it is the same', () => {
    expect(topicPatch(topic, { ...topicForm(topic), limitCount: 5, limitPerSecs: 10 })).toEqual({ client_event_limit: { count: 5, per_secs: 10 } });
    expect(topicPatch(typing, { ...topicForm(typing), limitCount: 30 })).toEqual({ client_event_limit: { count: 30, per_secs: 60 } });
    expect(topicPatch(typing, { ...topicForm(typing), limitPerSecs: 1 })).toEqual({ client_event_limit: { count: 60, per_secs: 1 } });
    expect(topicPatch(typing, topicForm(typing))).toEqual({});
  });

  it('removes the limit with null when both inputs are emptied (an absent field would keep it)', () => {
    expect(topicPatch(typing, { ...topicForm(typing), limitCount: null, limitPerSecs: undefined })).toEqual({ client_event_limit: null });
    expect(topicPatch(typing, { ...topicForm(typing), limitCount: Number.NaN, limitPerSecs: Number.NaN })).toEqual({ client_event_limit: null });
    // No limit before, none now: nothing to send (a missing field counts as none).
    expect(topicPatch(topic, { ...topicForm(topic), limitCount: undefined })).toEqual({});
    const { client_event_limit: _, ...older } = topic;
    expect(topicPatch(older, topicForm(older))).toEqual({});
  });

  it('refuses to build a body from an invalid limit rather than drop it', () => {
    expect(() => topicPatch(typing, { ...topicForm(typing), limitCount: 0 })).toThrow(/number of events/);
    expect(() => topicPatch(typing, { ...topicForm(typing), limitPerSecs: null })).toThrow(/both/);
  });
});

describe('eventLimit', () => {
  it('is no limit when both inputs are empty', () => {
    expect(eventLimit(null, null)).toEqual({ ok: true, limit: null });
    expect(eventLimit(undefined, Number.NaN)).toEqual({ ok: true, limit: null });
  });

  it('takes whole numbers within the server bounds, edges included', () => {
    expect(eventLimit(1, 1)).toEqual({ ok: true, limit: { count: 1, per_secs: 1 } });
    expect(eventLimit(60, 60)).toEqual({ ok: true, limit: { count: 60, per_secs: 60 } });
    expect(eventLimit(4_294_967_295, 86_400)).toEqual({ ok: true, limit: { count: 4_294_967_295, per_secs: 86_400 } });
  });

  it('needs both inputs', () => {
    expect(eventLimit(5, null)).toEqual({ ok: false, error: 'Give both the number of events and the seconds, or neither for no limit of its own.' });
    expect(eventLimit(undefined, 5)).toMatchObject({ ok: false });
  });

  it('refuses a count below 1, fractional or beyond u32', () => {
    const error = 'The number of events must be a whole number from 1 to 4,294,967,295.';
    for (const c of [0, -1, 1.5, 4_294_967_296]) expect(eventLimit(c, 10), String(c)).toEqual({ ok: false, error });
  });

  it('refuses seconds outside 1 to 86,400 or fractional', () => {
    const error = 'The seconds must be a whole number from 1 to 86,400 (a day).';
    for (const p of [0, -5, 0.5, 86_401]) expect(eventLimit(10, p), String(p)).toEqual({ ok: false, error });
  });
});

describe('limitHint', () => {
  it('says what the inputs set, or what to fix', () => {
    expect(limitHint(eventLimit(null, null))).toBe("No limit of its own: the app's rate applies.");
    expect(limitHint(eventLimit(1_000, 3_600))).toBe("At most 1,000 client events per 3,600 s on each connection, within the app's rate.");
    expect(limitHint(eventLimit(0, 1))).toBe('The number of events must be a whole number from 1 to 4,294,967,295.');
  });
});

describe('topicForm', () => {
  it('seeds from the topic; missing limits are empty', () => {
    expect(topicForm({ ...topic, retention: {} })).toEqual({
      description: 'chat room',
      external: true,
      authMode: 'public',
      maxMessages: null,
      maxAgeSecs: null,
      clientPublish: false,
      presence: false,
      limitCount: null,
      limitPerSecs: null,
    });
    expect(topicForm(typing)).toMatchObject({ clientPublish: true, presence: true, limitCount: 60, limitPerSecs: 60 });
  });
});

describe('describeClientEvents', () => {
  it("says whether clients may publish, under the app's rate or the topic's own", () => {
    expect(describeClientEvents(topic)).toBe('not allowed');
    expect(describeClientEvents({ ...topic, client_event_limit: { count: 5, per_secs: 1 } })).toBe('not allowed');
    expect(describeClientEvents({ client_publish: true, client_event_limit: null })).toBe("allowed (the app's rate)");
    expect(describeClientEvents({ client_publish: true })).toBe("allowed (the app's rate)");
    expect(describeClientEvents(typing)).toBe('allowed (at most 60 per 60 s per connection)');
    expect(describeClientEvents({ client_publish: true, client_event_limit: { count: 2_000, per_secs: 1 } })).toBe('allowed (at most 2,000 per second per connection)');
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
