/**
 * React bindings: `<PiCloudProvider client>`, `useTopic`, `usePresence` and `useEndpoint`.
 *
 * Subscriptions live in effects and end in their cleanup, so StrictMode's mount → unmount → mount
 * leaves exactly one subscription; the client defers closing its stream by a tick, so that double
 * mount does not even reconnect.
 */
import { createContext, createElement, type ReactNode, useContext, useEffect, useRef, useState, useCallback } from 'react';
import { type ConnectionState, PiCloudError } from './codes';
import type { PiCloudClient, Presence, PresenceMember, QueryValue, ResyncEvent, TopicMessage, Validator } from './types';

const Ctx = createContext<PiCloudClient | null>(null);

export function PiCloudProvider(props: { client: PiCloudClient; children?: ReactNode }): ReactNode {
  return createElement(Ctx.Provider, { value: props.client }, props.children);
}

/** The client from `options.client`, else from the nearest `<PiCloudProvider>`. */
export function useClient(client?: PiCloudClient): PiCloudClient {
  const c = useContext(Ctx);
  const r = client ?? c;
  if (!r) throw new Error('@picloud/client/react: pass `client` or wrap the tree in <PiCloudProvider client={…}>');
  return r;
}

export interface UseTopicOptions<T> {
  client?: PiCloudClient | undefined;
  /** How many recent messages `messages` keeps (default 100; 0 keeps none, only `last`). */
  keep?: number | undefined;
  /** Subscribe only while true (default true). */
  enabled?: boolean | undefined;
  lastEventId?: string | undefined;
  validate?: Validator<T> | undefined;
  onMessage?: ((message: TopicMessage<T>) => void) | undefined;
  onResync?: ((event: ResyncEvent) => void) | undefined;
}

export interface TopicState<T> {
  /** The last `keep` messages, oldest first. */
  messages: TopicMessage<T>[];
  last: TopicMessage<T> | undefined;
  status: ConnectionState;
  /** The last `onError` error: fatal (status `closed`), or a failure being retried (cleared when the stream opens again). */
  error: PiCloudError | undefined;
}

export function useTopic<T = unknown>(topics: string | readonly string[], options: UseTopicOptions<T> = {}): TopicState<T> {
  const client = useClient(options.client);
  const opts = useRef(options);
  opts.current = options;
  const key = (typeof topics === 'string' ? [topics] : [...topics]).join('\n');
  const enabled = options.enabled !== false;
  const [state, setState] = useState<TopicState<T>>(() => ({ messages: [], last: undefined, status: client.state, error: undefined }));
  useEffect(() => {
    if (!enabled) return;
    const keep = opts.current.keep ?? 100;
    const merge = (p: Partial<TopicState<T>>) => setState((s) => ({ ...s, ...p }));
    setState({ messages: [], last: undefined, status: client.state, error: undefined });
    const un = client.subscribe<T>(
      key.split('\n'),
      (m) => {
        setState((s) => ({ ...s, last: m, messages: keep > 0 ? [...s.messages, m].slice(-keep) : s.messages, error: undefined }));
        opts.current.onMessage?.(m);
      },
      {
        ...(opts.current.lastEventId !== undefined && { lastEventId: opts.current.lastEventId }),
        ...(opts.current.validate && { validate: opts.current.validate }),
        // A retried failure sets `error`; the stream opening again clears it.
        onStatus: (e) => merge(e.new === 'open' ? { status: e.new, error: undefined } : { status: e.new }),
        onError: (error) => merge({ error }),
        onResync: (e) => opts.current.onResync?.(e),
      },
    );
    merge({ status: client.state });
    return un;
  }, [client, key, enabled]);
  return state;
}

export interface UseEndpointOptions<T> {
  client?: PiCloudClient | undefined;
  query?: Record<string, QueryValue> | undefined;
  validate?: Validator<T> | undefined;
  /** Fetch only while true (default true). */
  enabled?: boolean | undefined;
}

export interface EndpointState<T> {
  data: T | undefined;
  error: PiCloudError | Error | undefined;
  loading: boolean;
  /** Fetch again (e.g. after a resync). */
  refetch: () => void;
}

/** GET `path` on mount and whenever `path` or `query` change; aborted on unmount. */
export function useEndpoint<T = unknown>(path: string, options: UseEndpointOptions<T> = {}): EndpointState<T> {
  const client = useClient(options.client);
  const validate = useRef(options.validate);
  validate.current = options.validate;
  const q = JSON.stringify(options.query ?? {});
  const enabled = options.enabled !== false;
  const [n, setN] = useState(0);
  const refetch = useCallback(() => setN((x) => x + 1), []);
  const [state, setState] = useState<Omit<EndpointState<T>, 'refetch'>>({ data: undefined, error: undefined, loading: enabled });
  useEffect(() => {
    if (!enabled) return;
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    client
      .endpoint(path)
      .get<T>({ query: JSON.parse(q) as Record<string, QueryValue>, signal: ac.signal, ...(validate.current && { validate: validate.current }) })
      .then(
        (data) => ac.signal.aborted || setState({ data, error: undefined, loading: false }),
        (error: Error) => ac.signal.aborted || setState((s) => ({ ...s, error, loading: false })),
      );
    return () => ac.abort();
  }, [client, path, q, enabled, n]);
  return { ...state, refetch };
}

export interface UsePresenceOptions<T> {
  client?: PiCloudClient | undefined;
  /** Enter with this while mounted (and while `enabled`), updating when it changes (compared as JSON). */
  data?: T | undefined;
  /** Watch only while true (default true). */
  enabled?: boolean | undefined;
}

export interface PresenceState<T> {
  /** Who is there, one entry per `sub`. */
  members: PresenceMember<T>[];
  /** Whether this component entered. */
  entered: boolean;
  /** The last error: of the topic's subscription, or of enter / update / leave. */
  error: PiCloudError | undefined;
  enter: (data?: T) => Promise<void>;
  update: (data: T) => Promise<void>;
  leave: () => Promise<void>;
}

/**
 * Presence on `topic` while mounted: the members, and this component's own presence (entered with
 * `options.data`, or by hand with `enter`). Unmounting leaves; the client keeps one member per
 * user however many components and tabs enter.
 */
export function usePresence<T = unknown>(topic: string, options: UsePresenceOptions<T> = {}): PresenceState<T> {
  const client = useClient(options.client);
  const enabled = options.enabled !== false;
  const json = options.data === undefined ? undefined : JSON.stringify(options.data);
  const [handle, setHandle] = useState<Presence<T>>();
  const [state, setState] = useState<Omit<PresenceState<T>, 'enter' | 'update' | 'leave'>>({ members: [], entered: false, error: undefined });
  const ref = useRef(handle);
  ref.current = handle;
  useEffect(() => {
    if (!enabled) return;
    const p = client.presence<T>(topic);
    setHandle(p);
    setState({ members: p.members, entered: false, error: undefined });
    p.onChange((members) => setState((s) => ({ ...s, members })));
    p.onError((error) => setState((s) => ({ ...s, error })));
    return () => {
      p.close();
      setHandle((h) => (h === p ? undefined : h));
    };
  }, [client, topic, enabled]);
  /** Runs an operation on the current handle; `entered` follows it, a refusal becomes `error` (and rejects). */
  const run = useCallback(async (f: (p: Presence<T>) => Promise<void>) => {
    const p = ref.current;
    if (!p) throw new PiCloudError('closed', 'usePresence: not watching (unmounted or disabled)');
    const sync = (error?: PiCloudError) => ref.current === p && setState((s) => ({ ...s, entered: p.entered, ...(error && { error }) }));
    const r = f(p);
    sync();
    try {
      await r;
      sync();
    } catch (e) {
      sync(e instanceof PiCloudError ? e : new PiCloudError('network', String(e)));
      throw e;
    }
  }, []);
  useEffect(() => {
    if (handle && json !== undefined) run((p) => (p.entered ? p.update(JSON.parse(json) as T) : p.enter(JSON.parse(json) as T))).catch(() => {});
  }, [handle, json, run]);
  const enter = useCallback((data?: T) => run((p) => p.enter(data)), [run]);
  const update = useCallback((data: T) => run((p) => p.update(data)), [run]);
  const leave = useCallback(() => run((p) => p.leave()), [run]);
  return { ...state, enter, update, leave };
}
