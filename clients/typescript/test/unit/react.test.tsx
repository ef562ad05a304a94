// @vitest-environment jsdom
// Shows the React hooks in a DOM (Testing Library): useTopic under StrictMode opens one request,
// renders status and messages, and aborts it on unmount; `enabled: false` subscribes to nothing;
// a failure being retried shows as `error` until the stream opens again; useEndpoint loads,
// refetches and reports errors.
import { act, cleanup, render, screen, waitFor } from '@testing-library/react';
import { StrictMode } from 'react';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type PiCloudClient } from '../../src/index';
import { PiCloudProvider, useEndpoint, useTopic } from '../../src/react';
import { errorAnswer, msg, mockSse } from '../support/mock-sse';

afterEach(cleanup);

function Topic({ enabled = true }: { enabled?: boolean }) {
  const { messages, status, error } = useTopic<string>(['a', 'b'], { enabled });
  return (
    <p data-testid="t">
      {status}|{messages.map((m) => m.message).join(',')}|{error?.code ?? ''}
    </p>
  );
}

function Count({ client }: { client: PiCloudClient }) {
  const { data, error, loading, refetch } = useEndpoint<{ n: number }>('/count', { client, query: { x: 1 } });
  return (
    <button type="button" data-testid="e" onClick={refetch}>
      {loading ? 'loading' : `${data?.n ?? ''}|${error?.message ?? ''}`}
    </button>
  );
}

describe('react', () => {
  it('useTopic: one request under StrictMode, live render, abort on unmount', async () => {
    const m = mockSse();
    const client = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    const view = render(
      <StrictMode>
        <PiCloudProvider client={client}>
          <Topic />
        </PiCloudProvider>
      </StrictMode>,
    );
    const r0 = await m.request(0);
    await act(async () => r0.push(`retry: 1\n\n${msg('a', 1, 'x')}${msg('b', 1, 'y')}`));
    await waitFor(() => expect(screen.getByTestId('t').textContent).toBe('open|x,y|'));
    expect(m.reqs).toHaveLength(1);
    view.unmount();
    await waitFor(() => expect(r0.aborted).toBe(true));
    expect(m.reqs).toHaveLength(1);
  });

  it('useTopic: a retried failure is the error until the stream opens', async () => {
    const m = mockSse((_, i) => (i === 0 ? errorAnswer(503, 'unavailable') : undefined));
    const client = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 200, maxMs: 200 } });
    render(
      <PiCloudProvider client={client}>
        <Topic />
      </PiCloudProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('t').textContent).toBe('reconnecting||unavailable'));
    const r1 = await m.request(1);
    await act(async () => r1.push('retry: 1\n\n'));
    await waitFor(() => expect(screen.getByTestId('t').textContent).toBe('open||'));
    client.close();
  });

  it('useTopic: enabled false subscribes to nothing', async () => {
    const m = mockSse();
    const client = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    render(
      <PiCloudProvider client={client}>
        <Topic enabled={false} />
      </PiCloudProvider>,
    );
    await new Promise((r) => setTimeout(r, 30));
    expect(m.reqs).toHaveLength(0);
    expect(screen.getByTestId('t').textContent).toBe('closed||');
  });

  it('useEndpoint: loads, refetches, reports errors', async () => {
    let n = 0;
    const client = createClient({
      url: 'http://x',
      fetch: async (url) => {
        expect(url).toBe('http://x/count?x=1');
        return ++n < 3
          ? new Response(JSON.stringify({ n }), { headers: { 'content-type': 'application/json' } })
          : new Response(JSON.stringify({ error: { code: 'boom', message: 'failed' } }), { status: 500, headers: { 'content-type': 'application/json' } });
      },
    });
    render(<Count client={client} />);
    await waitFor(() => expect(screen.getByTestId('e').textContent).toBe('1|'));
    act(() => screen.getByTestId('e').click());
    await waitFor(() => expect(screen.getByTestId('e').textContent).toBe('2|'));
    act(() => screen.getByTestId('e').click());
    await waitFor(() => expect(screen.getByTestId('e').textContent).toBe('2|failed'));
  });
});
