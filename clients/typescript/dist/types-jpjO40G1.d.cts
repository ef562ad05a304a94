/**
 * Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter"):
 * the delay before attempt `n` (0-based) is uniform in `[0, min(max, base * 2^n))`. Jitter spreads
 * a crowd of clients that lost the same server instead of having them all return at once.
 */
interface BackoffOptions {
    /** Base delay in ms before the server sent `retry:` (default 500). The server's `retry:` replaces it. */
    minMs?: number;
    /** Cap in ms (default 30000). */
    maxMs?: number;
}
declare function backoffDelay(attempt: number, base: number, max: number, random?: () => number): number;

/**
 * Protocol values, mirrored from `docs/protocol.md`: connection states, the error codes a server
 * answers with (before the stream or in its final `event: error`), and the codes this client adds.
 */
/** The connection state machine. `closed` is both "not started" and "gave up / closed by you". */
type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';
/** Error codes: the server's (HTTP answers and final `event: error`) and the client's own. */
declare const ErrorCode: {
    readonly InvalidTopic: "invalid_topic";
    readonly TooManyTopics: "too_many_topics";
    readonly InvalidLastEventId: "invalid_last_event_id";
    readonly UnknownHost: "unknown_host";
    readonly NotFound: "not_found";
    readonly Unauthorized: "unauthorized";
    readonly TokenExpired: "token_expired";
    readonly TopicClosed: "topic_closed";
    readonly ServerShutdown: "server_shutdown";
    readonly SlowConsumer: "slow_consumer";
    readonly Unavailable: "unavailable";
    readonly Network: "network";
    readonly Idle: "idle";
    readonly Http: "http";
    readonly InvalidMessage: "invalid_message";
    readonly TokenProvider: "token_provider";
    readonly TokenExpiring: "token_expiring";
    readonly TopicsChanged: "topics_changed";
    readonly Paused: "paused";
    readonly Closed: "closed";
};
/** One of {@link ErrorCode}'s values, or a code a newer server sends. */
type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode] | (string & {});
/** Every error this library reports or throws. */
declare class PiCloudError extends Error {
    /** A stable code from {@link ErrorCode}. */
    readonly code: ErrorCodeValue;
    /** The HTTP status when the error is an HTTP answer. */
    readonly status: number | undefined;
    /** True when the client stopped because of it (no further reconnect). */
    readonly fatal: boolean;
    /** The parsed response body (endpoint calls), when there was one. */
    readonly body: unknown;
    constructor(code: ErrorCodeValue, message: string, status?: number, fatal?: boolean, body?: unknown);
}

/** Anything with `parse(input)` that returns the value or throws: a Zod schema works as is. */
interface Validator<T> {
    parse(input: unknown): T;
}
/** Returns a subscriber token (or null for none); called again on 401 and before expiry. */
type GetToken = () => string | null | undefined | Promise<string | null | undefined>;
/** The subset of `fetch` this library uses. */
type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;
interface ClientOptions {
    /** The app's base URL, e.g. `https://demo.example.com` or `http://demo.localhost:8080`. */
    url: string;
    /** A fixed subscriber token: a 401 with it is final. */
    token?: string;
    /** A token provider: called at connect, on 401 and on `token_expiring` / `token_expired`. */
    getToken?: GetToken;
    /** The `fetch` to use (default: the global one, looked up at call time). */
    fetch?: FetchLike;
    /** Reconnect backoff bounds. */
    backoff?: BackoffOptions;
    /** Reconnect when nothing (not even a keepalive) arrived for this long; default 45000, 0 = never. */
    idleTimeoutMs?: number;
    /** Close the stream while the page is hidden: `true` after 5 s, or after this many ms. Default off. */
    pauseWhenHidden?: boolean | number;
    /** Share one upstream stream between the tabs of this origin (Web Locks + BroadcastChannel); default true. */
    shareAcrossTabs?: boolean;
    /** Extra key telling apart clients that must not share a stream (e.g. a user id when tokens differ). */
    shareKey?: string;
}
/** A message delivered to `onMessage`. */
interface TopicMessage<T = unknown> {
    topic: string;
    /** The topic's sequence number; `null` for an ephemeral message. */
    seq: number | null;
    message: T;
    /** RFC 3339 UTC with milliseconds. */
    publishedAt: string;
    /** The resume position after this message (pass it as `lastEventId` later); absent when ephemeral. */
    id?: string;
}
/** Messages `from..=to` of `topic` are gone: refetch your state. */
interface ResyncEvent {
    topic: string;
    from: number;
    to: number;
    reason: 'retention' | 'position_ahead' | (string & {});
}
/** A transition of the connection state machine. */
interface StatusEvent {
    old: ConnectionState;
    new: ConnectionState;
    /** Why (an {@link ErrorCode} value), when there is a reason. */
    code?: string;
}
interface SubscribeOptions<T = unknown> {
    /** Resume after this position (an `id` you kept): every later message is delivered. */
    lastEventId?: string;
    /** Validates each message; a rejected message is skipped and reported to `onError`. */
    validate?: Validator<T>;
    onStatus?: (event: StatusEvent) => void;
    onResync?: (event: ResyncEvent) => void;
    onError?: (error: PiCloudError) => void;
}
type Unsubscribe = () => void;
type QueryValue = string | number | boolean | null | undefined | readonly (string | number | boolean)[];
interface RequestOptions<T = unknown> {
    query?: Record<string, QueryValue>;
    /** Sent as JSON. */
    body?: unknown;
    validate?: Validator<T>;
    headers?: Record<string, string>;
    signal?: AbortSignal;
}
/** A script endpoint of the app. Resolves with the JSON answer (text if not JSON, undefined if empty). */
interface Endpoint {
    get<T = unknown>(options?: RequestOptions<T>): Promise<T>;
    post<T = unknown>(options?: RequestOptions<T>): Promise<T>;
    put<T = unknown>(options?: RequestOptions<T>): Promise<T>;
    delete<T = unknown>(options?: RequestOptions<T>): Promise<T>;
}
interface PiCloudClient {
    readonly url: string;
    /** The state of the (possibly shared) upstream connection. */
    readonly state: ConnectionState;
    subscribe<T = unknown>(topics: string | readonly string[], onMessage: (message: TopicMessage<T>) => void, options?: SubscribeOptions<T>): Unsubscribe;
    endpoint(path: string): Endpoint;
    /** Ends every subscription and the connection. */
    close(): void;
}

export { type BackoffOptions as B, type ClientOptions as C, type Endpoint as E, type FetchLike as F, type GetToken as G, type PiCloudClient as P, type QueryValue as Q, type RequestOptions as R, type StatusEvent as S, type TopicMessage as T, type Unsubscribe as U, type Validator as V, type ConnectionState as a, ErrorCode as b, type ErrorCodeValue as c, PiCloudError as d, type ResyncEvent as e, type SubscribeOptions as f, backoffDelay as g };
