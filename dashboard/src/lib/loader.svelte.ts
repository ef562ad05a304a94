/**
 * A page's data as reactive state: `data` (the last good answer), `error` (the message of the last
 * failure, cleared by the next success), `loading`. Replaces each page's own try/catch/errorText.
 * A failed reload keeps the last data on screen (a list stays visible under its error) unless
 * `clearOnError`; when reloads overlap, only the latest one's answer counts.
 */
import { errorText } from './api/client';

export class Loader<T> {
  data = $state<T | null>(null);
  error = $state<string | null>(null);
  loading = $state(false);
  private gen = 0;

  constructor(
    private readonly fetch: () => Promise<T>,
    private readonly clearOnError = false,
  ) {}

  /** Loads again; never throws (the failure is in `error`). Bound: usable as `onMount(x.reload)`. */
  reload = async (): Promise<void> => {
    const gen = ++this.gen;
    this.loading = true;
    try {
      const data = await this.fetch();
      if (gen !== this.gen) return;
      this.data = data;
      this.error = null;
    } catch (e) {
      if (gen !== this.gen) return;
      if (this.clearOnError) this.data = null;
      this.error = errorText(e);
    } finally {
      if (gen === this.gen) this.loading = false;
    }
  };
}

export function loader<T>(fetch: () => Promise<T>, options: { clearOnError?: boolean } = {}): Loader<T> {
  return new Loader(fetch, options.clearOnError ?? false);
}
