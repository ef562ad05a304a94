'use strict';

var react = require('react');

// src/react.ts
var Ctx = react.createContext(null);
function PiCloudProvider(props) {
  return react.createElement(Ctx.Provider, { value: props.client }, props.children);
}
function useClient(client) {
  const c = react.useContext(Ctx);
  const r = client ?? c;
  if (!r) throw new Error("@picloud/client/react: pass `client` or wrap the tree in <PiCloudProvider client={\u2026}>");
  return r;
}
function useTopic(topics, options = {}) {
  const client = useClient(options.client);
  const opts = react.useRef(options);
  opts.current = options;
  const key = (typeof topics === "string" ? [topics] : [...topics]).join("\n");
  const enabled = options.enabled !== false;
  const [state, setState] = react.useState(() => ({ messages: [], last: void 0, status: client.state, error: void 0 }));
  react.useEffect(() => {
    if (!enabled) return;
    const keep = opts.current.keep ?? 100;
    const merge = (p) => setState((s) => ({ ...s, ...p }));
    setState({ messages: [], last: void 0, status: client.state, error: void 0 });
    const un = client.subscribe(
      key.split("\n"),
      (m) => {
        setState((s) => ({ ...s, last: m, messages: keep > 0 ? [...s.messages, m].slice(-keep) : s.messages, error: void 0 }));
        opts.current.onMessage?.(m);
      },
      {
        ...opts.current.lastEventId !== void 0 && { lastEventId: opts.current.lastEventId },
        ...opts.current.validate && { validate: opts.current.validate },
        onStatus: (e) => merge({ status: e.new }),
        onError: (error) => merge({ error }),
        onResync: (e) => opts.current.onResync?.(e)
      }
    );
    merge({ status: client.state });
    return un;
  }, [client, key, enabled]);
  return state;
}
function useEndpoint(path, options = {}) {
  const client = useClient(options.client);
  const validate = react.useRef(options.validate);
  validate.current = options.validate;
  const q = JSON.stringify(options.query ?? {});
  const enabled = options.enabled !== false;
  const [n, setN] = react.useState(0);
  const refetch = react.useCallback(() => setN((x) => x + 1), []);
  const [state, setState] = react.useState({ data: void 0, error: void 0, loading: enabled });
  react.useEffect(() => {
    if (!enabled) return;
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    client.endpoint(path).get({ query: JSON.parse(q), signal: ac.signal, ...validate.current && { validate: validate.current } }).then(
      (data) => ac.signal.aborted || setState({ data, error: void 0, loading: false }),
      (error) => ac.signal.aborted || setState((s) => ({ ...s, error, loading: false }))
    );
    return () => ac.abort();
  }, [client, path, q, enabled, n]);
  return { ...state, refetch };
}

exports.PiCloudProvider = PiCloudProvider;
exports.useClient = useClient;
exports.useEndpoint = useEndpoint;
exports.useTopic = useTopic;
//# sourceMappingURL=react.cjs.map
//# sourceMappingURL=react.cjs.map