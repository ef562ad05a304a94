/**
 * Svelte bindings: readable stores. The subscription starts with the store's first subscriber and
 * ends with its last (Svelte's `readable` start/stop), so a component that unmounts leaks nothing.
 */
import { type Readable, readable } from 'svelte/store';
import type { ConnectionState, PiCloudError } from './codes';
import type { PiCloudClient, QueryValue, ResyncEvent, TopicMessage, Validator } from './types';

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
