/**
 * The chat's rooms: one topic `room.<id>` each. picloud.toml creates the topics and the scripts
 * check the same list; test/unit/rooms.test.ts keeps all of them in step.
 */
export interface Room {
  id: string;
  label: string;
}

export const ROOMS: readonly Room[] = [
  { id: 'lobby', label: 'Lobby' },
  { id: 'random', label: 'Random' },
];

export const topicOf = (room: string): string => `room.${room}`;
