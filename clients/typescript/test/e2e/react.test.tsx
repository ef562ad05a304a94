// @vitest-environment jsdom
// Shows the React hook with a DOM (Testing Library, jsdom) against the real server: under
// StrictMode's double mount `useTopic` holds exactly one server-side connection, renders live
// messages and status, and unmounting closes the connection.
import { act, cleanup, render, screen } from '@testing-library/react';
import { StrictMode } from 'react';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/index';
import { PiCloudProvider, useTopic } from '../../src/react';
import { appFetch, PiCloud, until } from '../support/picloud';

let pc: PiCloud;
beforeAll(async () => {
  pc = await PiCloud.start();
  await pc.createApp();
  await pc.createTopic('chat');
});
afterAll(async () => {
  cleanup();
  await pc?.destroy();
});

function Chat() {
  const { messages, last, status } = useTopic<{ text: string }>('chat', { keep: 10 });
  return (
    <div>
      <p data-testid="status">{status}</p>
      <p data-testid="last">{last?.message.text ?? ''}</p>
      <ul>
        {messages.map((m) => (
          <li key={m.seq}>{m.message.text}</li>
        ))}
      </ul>
    </div>
  );
}

describe('useTopic', () => {
  it('renders live messages with one connection under StrictMode', async () => {
    const client = createClient({ url: pc.appUrl(), fetch: appFetch });
    const view = render(
      <StrictMode>
        <PiCloudProvider client={client}>
          <Chat />
        </PiCloudProvider>
      </StrictMode>,
    );
    await until(() => screen.getByTestId('status').textContent === 'open', 'status open');
    await pc.connections(1);
    await act(async () => {
      await pc.publish('chat', { text: 'one' });
      await pc.publish('chat', { text: 'two' });
    });
    await until(() => screen.getByTestId('last').textContent === 'two', 'the last message');
    expect(screen.getAllByRole('listitem').map((li) => li.textContent)).toEqual(['one', 'two']);
    expect((await pc.realtimeHealth()).connections).toBe(1);
    view.unmount();
    await pc.connections(0);
    expect(client.state).toBe('closed');
  });
});
