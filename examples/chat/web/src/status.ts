import type { ConnectionState } from '@picloud/client';

/** What the page says about its stream, for each state of the client's connection. */
export function statusLabel(state: ConnectionState): string {
  switch (state) {
    case 'connecting':
      return 'Connecting…';
    case 'open':
      return 'Live';
    case 'reconnecting':
      return 'Reconnecting…';
    case 'closed':
      return 'Disconnected';
  }
}
