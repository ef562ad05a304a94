// The `ws` package's WebSocket (Node 20 has no global one) connecting `*.localhost` names to
// 127.0.0.1, as browsers do: the URL, and so the Host header, stay `demo.localhost:<port>`. The
// WebSocket counterpart of ./localhost-fetch.ts; e2e clients get it as their `WebSocket` option.
import { lookup } from 'node:dns';
import WebSocket from 'ws';

export class LocalhostWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols, { lookup: (host, options, cb) => lookup(host.endsWith('.localhost') ? '127.0.0.1' : host, options, cb) });
  }
}
