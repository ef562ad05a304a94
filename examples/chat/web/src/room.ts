/**
 * One room's live feed: a @picloud/client subscription to the room's topic, with tokens from the
 * app's own /api/token. Framework-free, so the e2e test runs exactly this in Node.
 */
import { type ConnectionState, createClient, type FetchLike } from '@picloud/client';
import { fetchToken } from './api';
import { type ChatMessage, toChatMessage } from './messages';
import { topicOf } from './rooms';

export interface RoomOptions {
  /** The app's base URL: `location.origin` in the page. */
  url: string;
  room: string;
  /** Read when a token is minted (the token's subject), so a renamed reader needs no reconnect. */
  name: () => string;
  onMessage: (m: ChatMessage) => void;
  onState: (state: ConnectionState) => void;
  /** A problem worth showing: the client retrying (`fatal` false) or giving up. */
  onError?: (message: string, fatal: boolean) => void;
  fetch?: FetchLike;
}

/** Starts following the room; returns the function that stops. */
export function joinRoom(o: RoomOptions): () => void {
  const client = createClient({
    url: o.url,
    ...(o.fetch && { fetch: o.fetch }),
    getToken: () => fetchToken(o.url, o.room, o.name(), o.fetch),
  });
  o.onState('connecting');
  const unsubscribe = client.subscribe(
    topicOf(o.room),
    (m) => {
      const c = toChatMessage(m);
      if (c) o.onMessage(c);
    },
    {
      // From the start of what the topic retains: a fresh page shows the room's history, then
      // goes on live. After a break the client resumes from its last position by itself.
      lastEventId: '0',
      onStatus: (e) => o.onState(e.new),
      onError: (e) => o.onError?.(e.message, e.fatal),
    },
  );
  return () => {
    unsubscribe();
    client.close();
  };
}
