// @vitest-environment jsdom
// Shows `usePresence` in a DOM (Testing Library) over a fake WebSocket: under StrictMode's double
// mount it enters once with `data` and updates when `data` changes, renders the members as they
// change, exposes a refused `enter` as `error`, and leaves on unmount.
import { act, cleanup, render, screen, waitFor } from '@testing-library/react';
import { StrictMode, useState } from 'react';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from '../../src/index';
import { PiCloudProvider, usePresence } from '../../src/react';
import { mockWs } from '../support/mock-ws';

afterEach(cleanup);

function Room() {
  const [name, setName] = useState('ann');
  const { members, entered } = usePresence<{ name: string }>('room', { data: { name } });
  return (
    <section aria-label="room">
      <p>{entered ? 'in' : 'out'}</p>
      <ul aria-label="members">
        {members.map((m) => (
          <li key={m.sub}>{m.data.name}</li>
        ))}
      </ul>
      <button type="button" onClick={() => setName('Ann')}>
        rename
      </button>
    </section>
  );
}

function Manual() {
  const { error, enter } = usePresence('locked');
  return (
    <button type="button" onClick={() => enter('x').catch(() => {})}>
      {error ? `error: ${error.code}` : 'enter'}
    </button>
  );
}

describe('usePresence', () => {
  it('enters once under StrictMode, follows data and members, leaves on unmount', async () => {
    const w = mockWs();
    const client = createClient({ url: 'http://x', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false });
    const view = render(
      <StrictMode>
        <PiCloudProvider client={client}>
          <Room />
        </PiCloudProvider>
      </StrictMode>,
    );
    const s = await w.sock(0);
    await act(async () => s.open());
    const enter = await s.next('presence.enter', 'room');
    expect(enter.data).toEqual({ name: 'ann' });
    await act(async () => {
      await s.subscribeAll();
      s.reply(enter, { type: 'ok' });
      s.push({ type: 'presence', topic: 'room', event: 'join', member: { sub: 'u1', data: { name: 'ann' } } });
    });
    await waitFor(() => expect(screen.getAllByRole('listitem').map((li) => li.textContent)).toEqual(['ann']));
    expect(screen.getByText('in')).toBeTruthy();

    await act(async () => screen.getByRole('button', { name: 'rename' }).click());
    const upd = await s.next('presence.update', 'room');
    expect(upd.data).toEqual({ name: 'Ann' });
    await act(async () => {
      s.reply(upd, { type: 'ok' });
      s.push({ type: 'presence', topic: 'room', event: 'update', member: { sub: 'u1', data: { name: 'Ann' } } });
    });
    await waitFor(() => expect(screen.getAllByRole('listitem').map((li) => li.textContent)).toEqual(['Ann']));
    expect(s.sent.filter((f) => f.type === 'presence.enter')).toHaveLength(1);

    view.unmount();
    await s.next('presence.leave', 'room');
    await waitFor(() => expect(s.closedWith).toBe(1000));
  });

  it('shows a refused enter as error', async () => {
    const w = mockWs();
    const client = createClient({ url: 'http://x', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false });
    render(
      <PiCloudProvider client={client}>
        <Manual />
      </PiCloudProvider>,
    );
    const s = await w.sock(0);
    await act(async () => {
      s.open();
      await s.subscribeAll();
    });
    await act(async () => screen.getByRole('button', { name: 'enter' }).click());
    const f = await s.next('presence.enter', 'locked');
    await act(async () => s.reply(f, { type: 'error', code: 'forbidden', message: 'presence is off' }));
    await waitFor(() => expect(screen.getByRole('button', { name: 'error: forbidden' })).toBeTruthy());
    client.close();
  });
});
