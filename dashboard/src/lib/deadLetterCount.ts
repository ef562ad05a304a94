/** The navigation's count of waiting (not replayed) dead letters, from `GET …/dead-letters/count`. Pure. */

/** How often the navigation asks again while the tab is visible. */
export const DEAD_LETTER_POLL_MS = 7000;

/** What the link shows beside its name: nothing when none wait. */
export function waitingText(waiting: number): string {
  return waiting > 0 ? String(waiting) : '';
}
