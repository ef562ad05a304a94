import { readable } from 'svelte/store';

// src/svelte.ts
function topicStore(client, topics, options = {}) {
  const keep = options.keep ?? 100;
  const init = { messages: [], last: void 0, status: client.state, error: void 0 };
  return readable(init, (set) => {
    let s = { ...init, status: client.state };
    const put = (p) => set(s = { ...s, ...p });
    const un = client.subscribe(topics, (m) => put({ last: m, messages: keep > 0 ? [...s.messages, m].slice(-keep) : s.messages }), {
      ...options.lastEventId !== void 0 && { lastEventId: options.lastEventId },
      ...options.validate && { validate: options.validate },
      ...options.onResync && { onResync: options.onResync },
      onStatus: (e) => put({ status: e.new }),
      onError: (error) => put({ error })
    });
    put({ status: client.state });
    return un;
  });
}
function endpointStore(client, path, options = {}) {
  let run;
  const store = readable({ data: void 0, error: void 0, loading: true }, (set, update) => {
    let ac;
    run = () => {
      ac?.abort();
      const a = ac = new AbortController();
      update((s) => ({ ...s, loading: true }));
      client.endpoint(path).get({ ...options, signal: a.signal }).then(
        (data) => a.signal.aborted || set({ data, error: void 0, loading: false }),
        (error) => a.signal.aborted || update((s) => ({ ...s, error, loading: false }))
      );
    };
    run();
    return () => {
      ac?.abort();
      run = void 0;
    };
  });
  return { subscribe: store.subscribe, refetch: () => run?.() };
}

export { endpointStore, topicStore };
//# sourceMappingURL=svelte.js.map
//# sourceMappingURL=svelte.js.map