/**
 * The part of the Web Locks API the client uses (Node has BroadcastChannel but no navigator.locks):
 * exclusive locks granted in request order.
 * `hold()` keeps every lock taken (as by a page still unloading) until the function it returns is called.
 */
export function fakeLocks() {
  const queues = new Map<string, { cb: () => Promise<void>; resolve: (v: unknown) => void; reject: (e: unknown) => void }[]>();
  const held = new Set<string>();
  let blocked = false;
  const grant = (name: string) => {
    const q = queues.get(name) ?? [];
    if (blocked || held.has(name) || !q.length) return;
    const w = q.shift()!;
    held.add(name);
    w.cb().then(w.resolve, w.reject).finally(() => {
      held.delete(name);
      grant(name);
    });
  };
  return {
    hold() {
      blocked = true;
      return () => {
        blocked = false;
        for (const name of queues.keys()) grant(name);
      };
    },
    request(name: string, opts: { signal: AbortSignal }, cb: () => Promise<void>) {
      return new Promise((resolve, reject) => {
        const w = { cb, resolve, reject };
        queues.set(name, [...(queues.get(name) ?? []), w]);
        opts.signal.addEventListener('abort', () => {
          const q = queues.get(name)!;
          if (q.includes(w)) {
            q.splice(q.indexOf(w), 1);
            reject(new DOMException('aborted', 'AbortError'));
          }
        });
        queueMicrotask(() => grant(name));
      });
    },
  };
}
