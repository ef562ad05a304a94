/** The reader's name, remembered across visits. Storage may be off (private modes): then it is not. */
const KEY = 'picloud-chat:name';

export function loadName(storage: Pick<Storage, 'getItem'> | undefined = globalThis.localStorage): string {
  try {
    return storage?.getItem(KEY) ?? '';
  } catch {
    return '';
  }
}

export function saveName(name: string, storage: Pick<Storage, 'setItem'> | undefined = globalThis.localStorage): void {
  try {
    storage?.setItem(KEY, name);
  } catch {
    // Not remembered; the page works without it.
  }
}
