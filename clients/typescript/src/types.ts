import type { BackoffOptions } from './backoff';
import type { ConnectionState, PiCloudError } from './codes';
import type { WebSocketConstructor } from './transport/ws';

/** Anything with `parse(input)` that returns the value or throws: a Zod schema works as is. */
export interface Validator<T> {
  parse(input: unknown): T;
}

/** Returns a subscriber token (or null for none); called again on 401 and before expiry. */
export type GetToken = () => string | null | undefined | Promise<string | null | undefined>;

/** The subset of `fetch` this library uses. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** `auto`: SSE until the page uses presence or client events, then WebSocket. */
export type Transport = 'auto' | 'sse' | 'ws';

export interface ClientOptions {
  /** The app's base URL, e.g. `https://demo.example.com` or `http://demo.localhost:8080`. */
  url: string;
  /** A fixed subscriber token: a 401 with it is final. */
  token?: string | undefined;
  /** A token provider: called at connect, on 401 and on `token_expiring` / `token_expired` / `token_revoked`. */
  getToken?: GetToken | undefined;
  /** The `fetch` to use (default: the global one, looked up at call time). */
  fetch?: FetchLike | undefined;
  /** Reconnect backoff bounds. */
  backoff?: BackoffOptions | undefined;
  /** Reconnect when nothing (not even a keepalive) arrived for this long; default 45000, 0 = never. */
  idleTimeoutMs?: number | undefined;
  /** Close the stream while the page is hidden: `true` after 5 s, or after this many ms. Default off. Implies `shareAcrossTabs: false`. */
  pauseWhenHidden?: boolean | number | undefined;
  /** Share one upstream stream between the tabs of this origin (Web Locks + BroadcastChannel); default true. Falls back to one per tab where either API is missing (Node, old browsers). */
  shareAcrossTabs?: boolean | undefined;
  /** Extra key telling apart clients that must not share a stream (e.g. a user id when tokens differ). */
  shareKey?: string | undefined;
  /** The stream URL for a set of topics; default `${url}/realtime?topic=a&topic=b`. For another SSE endpoint with the same frames (e.g. the admin API's topic stream); give such clients their own `shareKey` or `shareAcrossTabs: false`. */
  streamUrl?: ((topics: readonly string[]) => string) | undefined;
  /** `auto` (default): SSE until `publish` or `presence()` is used, then WebSocket (resuming every topic from its position); `sse`; `ws`. */
  transport?: Transport | undefined;
  /** The WebSocket constructor (default: the global one, looked up at connect time). Node 20 has none: pass the `ws` package's. */
  WebSocket?: WebSocketConstructor | undefined;
}

/** A message delivered to `onMessage`. */
export interface TopicMessage<T = unknown> {
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
export interface ResyncEvent {
  topic: string;
  from: number;
  to: number;
  reason: 'retention' | 'position_ahead' | (string & {});
}

/** The stream's position for `topic`, announced when a stream (re)opens: later messages have higher seqs. */
export interface PositionEvent {
  topic: string;
  /** The topic's seq the stream starts after (0 for a topic with no messages yet). */
  position: number;
}

/** The server's warning that the stream's token expires soon (`event: token_expiring`). */
export interface TokenExpiringEvent {
  /** Seconds until the token expires and the stream ends with `token_expired`. */
  expiresIn: number;
}

/** A presence member: a token's `sub`, however many tabs and connections it has. */
export interface PresenceMember<T = unknown> {
  sub: string;
  /** What it entered with or last updated to (`null` when it entered without data). */
  data: T;
}

/** A presence frame: a member joined, left, or changed its data. */
export interface PresenceEvent<T = unknown> {
  topic: string;
  event: 'join' | 'leave' | 'update';
  member: PresenceMember<T>;
}

/** `client.presence(topic)`: who is on a topic (with `presence: true`), and this page's own presence. */
export interface Presence<T = unknown> {
  readonly topic: string;
  /** Who is there now, one entry per `sub`; a new array after every change. */
  readonly members: PresenceMember<T>[];
  /** Whether this handle has entered (and not left). */
  readonly entered: boolean;
  onJoin(cb: (member: PresenceMember<T>) => void): Unsubscribe;
  onLeave(cb: (member: PresenceMember<T>) => void): Unsubscribe;
  onUpdate(cb: (member: PresenceMember<T>) => void): Unsubscribe;
  /** `members` changed (an event, or the list read after each (re)connect). */
  onChange(cb: (members: PresenceMember<T>[]) => void): Unsubscribe;
  /** The topic's subscription failed (e.g. `not_found`, `unauthorized`), or the connection is retrying. */
  onError(cb: (error: PiCloudError) => void): Unsubscribe;
  /** Enters with `data` (at most 1 KiB of JSON); entering again changes it. Resolves when the server took it. */
  enter(data?: T): Promise<void>;
  /** Changes this member's data (an `update` event, never a leave and join). */
  update(data: T): Promise<void>;
  leave(): Promise<void>;
  /** Leaves (if entered) and stops watching. */
  close(): void;
}

/** A transition of the connection state machine. */
export interface StatusEvent {
  old: ConnectionState;
  new: ConnectionState;
  /** Why (an {@link ErrorCode} value), when there is a reason. */
  code?: string;
}

export interface SubscribeOptions<T = unknown> {
  /** Resume after this position (an `id` you kept): every later message is delivered. */
  lastEventId?: string | undefined;
  /** Validates each message; a rejected message is skipped and reported to `onError`. */
  validate?: Validator<T> | undefined;
  onStatus?: ((event: StatusEvent) => void) | undefined;
  onResync?: ((event: ResyncEvent) => void) | undefined;
  onError?: ((error: PiCloudError) => void) | undefined;
  /** Called for each subscribed topic when the stream announces its position (`event: position`, at the start of every stream, reconnects included), after the client took it as its resume position. */
  onPosition?: ((event: PositionEvent) => void) | undefined;
  /** Called when the server warns the token expires soon. With `getToken` the client then reconnects with a fresh token; with a fixed token the stream ends at expiry. */
  onTokenExpiring?: ((event: TokenExpiringEvent) => void) | undefined;
  /** Presence events of the subscribed topics (those with `presence: true`), on both transports. */
  onPresence?: ((event: PresenceEvent) => void) | undefined;
}

export type Unsubscribe = () => void;

export type QueryValue = string | number | boolean | null | undefined | readonly (string | number | boolean)[];

export interface RequestOptions<T = unknown> {
  query?: Record<string, QueryValue> | undefined;
  /** Sent as JSON. */
  body?: unknown;
  validate?: Validator<T> | undefined;
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

/** A script endpoint of the app. Resolves with the JSON answer (text if not JSON, undefined if empty). */
export interface Endpoint {
  get<T = unknown>(options?: RequestOptions<T>): Promise<T>;
  post<T = unknown>(options?: RequestOptions<T>): Promise<T>;
  put<T = unknown>(options?: RequestOptions<T>): Promise<T>;
  delete<T = unknown>(options?: RequestOptions<T>): Promise<T>;
}

export interface PiCloudClient {
  readonly url: string;
  /** The state of the (possibly shared) upstream connection. */
  readonly state: ConnectionState;
  subscribe<T = unknown>(
    topics: string | readonly string[],
    onMessage: (message: TopicMessage<T>) => void,
    options?: SubscribeOptions<T>,
  ): Unsubscribe;
  endpoint(path: string): Endpoint;
  /**
   * Sends a client event (an ephemeral message, seq `null`) to the topic's subscribers over the
   * WebSocket (an `auto` client moves to it). Rejects with a PiCloudError: `forbidden`,
   * `rate_limited` (`retryAfterMs`), `payload_too_large`, `not_found`…
   */
  publish(topic: string, data: unknown): Promise<void>;
  /** Who is on `topic`, and this page's presence there (an `auto` client moves to WebSocket). */
  presence<T = unknown>(topic: string): Presence<T>;
  /** Ends every subscription and the connection. */
  close(): void;
}

/** A message as it comes off the wire (before validation). @internal */
export type RawMessage = TopicMessage<unknown>;

/** Where a connection reports. @internal */
export interface Sink {
  message(m: RawMessage): void;
  resync(e: ResyncEvent): void;
  status(e: StatusEvent): void;
  /** `topic`: an error of that topic only (a refused WebSocket subscribe); else the connection's. */
  error(e: PiCloudError, topic?: string): void;
  position(e: PositionEvent): void;
  expiring(e: TokenExpiringEvent): void;
  presence(e: PresenceEvent): void;
}
