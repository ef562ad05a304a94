/**
 * Svelte bindings: readable stores. The subscription starts with the store's first subscriber and
 * ends with its last (Svelte's `readable` start/stop), so a component that unmounts leaks nothing.
 */
import { type Readable, readable } from 'svelte/store';
import { type ConnectionState, PiCloudError } from './codes';
import type { PiCloudClient, Presence, PresenceMember, QueryValue, ResyncEvent, TopicMessage, Validator } from './types';

export interface TopicStoreOptions<T> {
  /** How many recent messages `messages` keeps (default 100; 0 keeps none, only `last`). */
  keep?: number | undefined;
  lastEventId?: string | undefined;
  validate?: Validator<T> | undefined;
  onResync?: ((event: ResyncEvent) => void) | undefined;
}

export interface TopicState<T> {
  messages: TopicMessage<T>[];
  last: TopicMessage<T> | undefined;
  status: ConnectionState;
  /** The last `onError` error: fatal (status `closed`), or a failure being retried (cleared when the stream opens again). */
  error: PiCloudError | undefined;
}

export function topicStore<T = unknown>(
  client: PiCloudClient,
  topics: string | readonly string[],
  options: TopicStoreOptions<T> = {},
): Readable<TopicState<T>> {
  const keep = options.keep ?? 100;
  const init: TopicState<T> = { messages: [], last: undefined, status: client.state, error: undefined };
  return readable(init, (set) => {
    let s = { ...init, status: client.state };
    const put = (p: Partial<TopicState<T>>) => set((s = { ...s, ...p }));
    const un = client.subscribe<T>(topics, (m) => put({ last: m, messages: keep > 0 ? [...s.messages, m].slice(-keep) : s.messages }), {
      ...(options.lastEventId !== undefined && { lastEventId: options.lastEventId }),
      ...(options.validate && { validate: options.validate }),
      ...(options.onResync && { onResync: options.onResync }),
      // A retried failure sets `error`; the stream opening again clears it.
      onStatus: (e) => put(e.new === 'open' ? { status: e.new, error: undefined } : { status: e.new }),
      onError: (error) => put({ error }),
    });
    put({ status: client.state });
    return un;
  });
}

export interface EndpointStoreOptions<T> {
  query?: Record<string, QueryValue> | undefined;
  validate?: Validator<T> | undefined;
}

export interface EndpointState<T> {
  data: T | undefined;
  error: PiCloudError | Error | undefined;
  loading: boolean;
}

/** GET `path` when the store gets its first subscriber; `refetch()` fetches again. */
export function endpointStore<T = unknown>(
  client: PiCloudClient,
  path: string,
  options: EndpointStoreOptions<T> = {},
): Readable<EndpointState<T>> & { refetch: () => void } {
  let run: (() => void) | undefined;
  const store = readable<EndpointState<T>>({ data: undefined, error: undefined, loading: true }, (set, update) => {
    let ac: AbortController | undefined;
    run = () => {
      ac?.abort();
      const a = (ac = new AbortController());
      update((s) => ({ ...s, loading: true }));
      client
        .endpoint(path)
        .get<T>({ ...options, signal: a.signal })
        .then(
          (data) => a.signal.aborted || set({ data, error: undefined, loading: false }),
          (error: Error) => a.signal.aborted || update((s) => ({ ...s, error, loading: false })),
        );
    };
    run();
    return () => {
      ac?.abort();
      run = undefined;
    };
  });
  return { subscribe: store.subscribe, refetch: () => run?.() };
}

export interface PresenceStoreOptions<T> {
  /** Enter with this while the store has subscribers. */
  data?: T | undefined;
}

export interface PresenceState<T> {
  members: PresenceMember<T>[];
  /** Whether this store entered. */
  entered: boolean;
  /** The last error: of the topic's subscription, or of enter / update / leave. */
  error: PiCloudError | undefined;
}

export interface PresenceStore<T> extends Readable<PresenceState<T>> {
  /** These act while the store has a subscriber (else they reject with `closed`). */
  enter(data?: T): Promise<void>;
  update(data: T): Promise<void>;
  leave(): Promise<void>;
}

/**
 * Presence on `topic`: the members, and this store's own presence. Watching starts with the first
 * store subscriber and ends (leaving, if entered) with the last.
 */
export function presenceStore<T = unknown>(client: PiCloudClient, topic: string, options: PresenceStoreOptions<T> = {}): PresenceStore<T> {
  let handle: Presence<T> | undefined;
  let put: ((p: Partial<PresenceState<T>>) => void) | undefined;
  const run = async (f: (p: Presence<T>) => Promise<void>) => {
    const p = handle;
    if (!p) throw new PiCloudError('closed', 'presenceStore: no subscriber');
    const r = f(p);
    const sync = (error?: PiCloudError) => handle === p && put?.({ entered: p.entered, ...(error && { error }) });
    sync();
    try {
      await r;
      sync();
    } catch (e) {
      sync(e instanceof PiCloudError ? e : new PiCloudError('network', String(e)));
      throw e;
    }
  };
  const store = readable<PresenceState<T>>({ members: [], entered: false, error: undefined }, (set) => {
    let s: PresenceState<T> = { members: [], entered: false, error: undefined };
    put = (p) => set((s = { ...s, ...p }));
    const p = (handle = client.presence<T>(topic));
    p.onChange((members) => put?.({ members }));
    p.onError((error) => put?.({ error }));
    if (options.data !== undefined) run((h) => h.enter(options.data)).catch(() => {});
    return () => {
      p.close();
      handle = put = undefined;
    };
  });
  return {
    subscribe: store.subscribe,
    enter: (data) => run((p) => p.enter(data)),
    update: (data) => run((p) => p.update(data)),
    leave: () => run((p) => p.leave()),
  };
}
