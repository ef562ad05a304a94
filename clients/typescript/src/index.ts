export { createClient } from './client';
export { ErrorCode, PiCloudError } from './codes';
export type { ConnectionState, ErrorCodeValue } from './codes';
export { backoffDelay } from './backoff';
export type { BackoffOptions } from './backoff';
export type {
  ClientOptions,
  Endpoint,
  FetchLike,
  GetToken,
  PiCloudClient,
  QueryValue,
  RequestOptions,
  ResyncEvent,
  StatusEvent,
  SubscribeOptions,
  TopicMessage,
  Unsubscribe,
  Validator,
} from './types';
