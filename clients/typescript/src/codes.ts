/**
 * Protocol values, mirrored from `docs/protocol.md`: connection states, the error codes a server
 * answers with (before the stream or in its final `event: error`), and the codes this client adds.
 */

/** The connection state machine. `closed` is both "not started" and "gave up / closed by you". */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Error codes: the server's (HTTP answers and final `event: error`) and the client's own. */
export const ErrorCode = {
  // Answers before the stream (HTTP status in brackets).
  InvalidTopic: 'invalid_topic', // 400
  TooManyTopics: 'too_many_topics', // 400
  InvalidLastEventId: 'invalid_last_event_id', // 400
  UnknownHost: 'unknown_host', // 404
  NotFound: 'not_found', // 404: missing or not external_subscribable
  Unauthorized: 'unauthorized', // 401
  QuotaExceeded: 'quota_exceeded', // 429: the app's connection quota (retried, after Retry-After)
  // Final `event: error` codes (Unavailable also answers 503 before the stream).
  TokenExpired: 'token_expired',
  TokenRevoked: 'token_revoked', // the token's secret was retired (or the app deleted)
  TopicClosed: 'topic_closed',
  ServerShutdown: 'server_shutdown',
  SlowConsumer: 'slow_consumer',
  Unavailable: 'unavailable',
  // Answers to WebSocket requests (the connection stays open).
  BadRequest: 'bad_request',
  Forbidden: 'forbidden', // the topic does not allow client events / presence, or the token lacks `publish` / `sub`
  AlreadySubscribed: 'already_subscribed',
  PayloadTooLarge: 'payload_too_large',
  RateLimited: 'rate_limited', // `retryAfterMs` says when to send again
  // The client's own.
  Network: 'network', // fetch failed or the stream broke
  Idle: 'idle', // no byte (not even a keepalive) for `idleTimeoutMs`
  Http: 'http', // an unexpected answer (no PiCloud error body)
  InvalidMessage: 'invalid_message', // `validate` rejected a message
  TokenProvider: 'token_provider', // getToken() threw
  TokenExpiring: 'token_expiring', // reconnecting with a fresh token before expiry
  TopicsChanged: 'topics_changed', // re-opened to add topics
  Paused: 'paused', // closed while the page is hidden
  Closed: 'closed', // closed by the application
  Upgrade: 'upgrade', // an `auto` connection moved from SSE to WebSocket (presence or client events used)
  Unsupported: 'unsupported', // no WebSocket here (pass the `WebSocket` option), or `transport: 'sse'`
  NotEntered: 'not_entered', // presence `update()` before `enter()`
} as const;

/** One of {@link ErrorCode}'s values, or a code a newer server sends. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode] | (string & {});

/** Every error this library reports or throws. */
export class PiCloudError extends Error {
  /** A stable code from {@link ErrorCode}. */
  readonly code: ErrorCodeValue;
  /** The HTTP status when the error is an HTTP answer. */
  readonly status: number | undefined;
  /**
   * True when the client stopped because of it: the state is `closed`, no further reconnect (or,
   * reported to one topic's subscriptions over WebSocket, that topic was refused and stopped).
   * False for a connection failure the client retries (the state is `reconnecting`), and for
   * `token_provider` / `invalid_message`.
   */
  readonly fatal: boolean;
  /** The parsed response body (endpoint calls), when there was one. */
  readonly body: unknown;
  /** `rate_limited`: send again after this many ms (nothing was sent). */
  retryAfterMs?: number;

  /** `cause`: the underlying error, e.g. the `TypeError` of a failed `fetch` (whose own `cause` says DNS, refused, reset…). */
  constructor(code: ErrorCodeValue, message: string, status?: number, fatal = false, body?: unknown, cause?: unknown) {
    super(message);
    this.name = 'PiCloudError';
    this.code = code;
    this.status = status;
    this.fatal = fatal;
    this.body = body;
    // Set by hand: `super(message, { cause })` is ignored by pre-ES2022 engines.
    if (cause !== undefined) this.cause = cause;
  }
}
