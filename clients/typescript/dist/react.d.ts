import { ReactNode } from 'react';
import { d as PiCloudError, P as PiCloudClient, T as TopicMessage, a as ConnectionState, Q as QueryValue, V as Validator, e as ResyncEvent } from './types-jpjO40G1.js';

/**
 * React bindings: `<PiCloudProvider client>`, `useTopic` and `useEndpoint`.
 *
 * Subscriptions live in effects and end in their cleanup, so StrictMode's mount → unmount → mount
 * leaves exactly one subscription; the client defers closing its stream by a tick, so that double
 * mount does not even reconnect.
 */

declare function PiCloudProvider(props: {
    client: PiCloudClient;
    children?: ReactNode;
}): ReactNode;
/** The client from `options.client`, else from the nearest `<PiCloudProvider>`. */
declare function useClient(client?: PiCloudClient): PiCloudClient;
interface UseTopicOptions<T> {
    client?: PiCloudClient;
    /** How many recent messages `messages` keeps (default 100; 0 keeps none, only `last`). */
    keep?: number;
    /** Subscribe only while true (default true). */
    enabled?: boolean;
    lastEventId?: string;
    validate?: Validator<T>;
    onMessage?: (message: TopicMessage<T>) => void;
    onResync?: (event: ResyncEvent) => void;
}
interface TopicState<T> {
    /** The last `keep` messages, oldest first. */
    messages: TopicMessage<T>[];
    last: TopicMessage<T> | undefined;
    status: ConnectionState;
    error: PiCloudError | undefined;
}
declare function useTopic<T = unknown>(topics: string | readonly string[], options?: UseTopicOptions<T>): TopicState<T>;
interface UseEndpointOptions<T> {
    client?: PiCloudClient;
    query?: Record<string, QueryValue>;
    validate?: Validator<T>;
    /** Fetch only while true (default true). */
    enabled?: boolean;
}
interface EndpointState<T> {
    data: T | undefined;
    error: PiCloudError | Error | undefined;
    loading: boolean;
    /** Fetch again (e.g. after a resync). */
    refetch: () => void;
}
/** GET `path` on mount and whenever `path` or `query` change; aborted on unmount. */
declare function useEndpoint<T = unknown>(path: string, options?: UseEndpointOptions<T>): EndpointState<T>;

export { type EndpointState, PiCloudProvider, type TopicState, type UseEndpointOptions, type UseTopicOptions, useClient, useEndpoint, useTopic };
