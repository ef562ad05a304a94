import { C as ClientOptions, P as PiCloudClient } from './types-jpjO40G1.js';
export { B as BackoffOptions, a as ConnectionState, E as Endpoint, b as ErrorCode, c as ErrorCodeValue, F as FetchLike, G as GetToken, d as PiCloudError, Q as QueryValue, R as RequestOptions, e as ResyncEvent, S as StatusEvent, f as SubscribeOptions, T as TopicMessage, U as Unsubscribe, V as Validator, g as backoffDelay } from './types-jpjO40G1.js';

declare function createClient(options: ClientOptions): PiCloudClient;

export { ClientOptions, PiCloudClient, createClient };
