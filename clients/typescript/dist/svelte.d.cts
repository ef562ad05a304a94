import { Readable } from 'svelte/store';
import { d as PiCloudError, Q as QueryValue, V as Validator, T as TopicMessage, a as ConnectionState, e as ResyncEvent, P as PiCloudClient } from './types-jpjO40G1.cjs';

/**
 * Svelte bindings: readable stores. The subscription starts with the store's first subscriber and
 * ends with its last (Svelte's `readable` start/stop), so a component that unmounts leaks nothing.
 */

interface TopicStoreOptions<T> {
    /** How many recent messages `messages` keeps (default 100; 0 keeps none, only `last`). */
    keep?: number;
    lastEventId?: string;
    validate?: Validator<T>;
    onResync?: (event: ResyncEvent) => void;
}
interface TopicState<T> {
    messages: TopicMessage<T>[];
    last: TopicMessage<T> | undefined;
    status: ConnectionState;
    error: PiCloudError | undefined;
}
declare function topicStore<T = unknown>(client: PiCloudClient, topics: string | readonly string[], options?: TopicStoreOptions<T>): Readable<TopicState<T>>;
interface EndpointStoreOptions<T> {
    query?: Record<string, QueryValue>;
    validate?: Validator<T>;
}
interface EndpointState<T> {
    data: T | undefined;
    error: PiCloudError | Error | undefined;
    loading: boolean;
}
/** GET `path` when the store gets its first subscriber; `refetch()` fetches again. */
declare function endpointStore<T = unknown>(client: PiCloudClient, path: string, options?: EndpointStoreOptions<T>): Readable<EndpointState<T>> & {
    refetch: () => void;
};

export { type EndpointState, type EndpointStoreOptions, type TopicState, type TopicStoreOptions, endpointStore, topicStore };
