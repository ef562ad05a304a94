export { createClient } from './client';
export { ErrorCode, PiCloudError } from './codes';
export type { ConnectionState, ErrorCodeValue } from './codes';
export { backoffDelay } from './backoff';
export { readStream as readEventStream } from './transport/sse';
export type { StreamHandlers as EventStreamHandlers } from './transport/sse';
export type { WebSocketConstructor, WebSocketLike } from './transport/ws';
export type { BackoffOptions } from './backoff';
export type {
  ClientOptions,
  Endpoint,
  FetchLike,
  GetToken,
  PiCloudClient,
  PositionEvent,
  Presence,
  PresenceEvent,
  PresenceMember,
  QueryValue,
  RequestOptions,
  ResyncEvent,
  StatusEvent,
  SubscribeOptions,
  TokenExpiringEvent,
  TopicMessage,
  Transport,
  Unsubscribe,
  Validator,
} from './types';
