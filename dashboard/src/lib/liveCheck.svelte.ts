/**
 * Diagnostics as you type: each change of the source (re)starts a short timer (250 ms), then the
 * wasm checker runs on the latest source, in the page, nothing sent. `diagnostics` are for
 * `checked` (the source they describe): a page can tell whether they are current. A run that a
 * newer one overtook is dropped. `ms`: how long the last check took (shown for the curious).
 */
import { errorText } from './api/client';
import type { Checker, Diagnostic, ScriptLimits } from './checker';
import { sortDiagnostics } from './diagnostics';

export const CHECK_DELAY_MS = 250;

export class LiveCheck {
  diagnostics = $state.raw<Diagnostic[]>([]);
  checked = $state<string | null>(null);
  error = $state<string | null>(null);
  ms = $state<number | null>(null);
  /** The app's limit overrides, when known: a deploy is checked under them. */
  limits: ScriptLimits | undefined = undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private gen = 0;

  constructor(
    private readonly load: () => Promise<Checker>,
    private readonly delay = CHECK_DELAY_MS,
  ) {}

  /** The source changed: check it once it has been still for `delay`. */
  update(source: string): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(source), this.delay);
  }

  /** Checks now (the timer's job; also the first check of a loaded source). */
  async run(source: string): Promise<void> {
    clearTimeout(this.timer);
    const gen = ++this.gen;
    try {
      const checker = await this.load();
      if (gen !== this.gen) return;
      const t0 = performance.now();
      const list = checker.checkScript(source, this.limits);
      this.ms = performance.now() - t0;
      this.diagnostics = sortDiagnostics(list);
      this.checked = source;
      this.error = null;
    } catch (e) {
      if (gen !== this.gen) return;
      this.error = `The in-browser checker is not available (${errorText(e)}); the server still checks before a deploy.`;
    }
  }

  /** Whether the diagnostics describe `source` (no edit since the last check). */
  isCurrent(source: string): boolean {
    return this.checked === source;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.gen++;
  }
}
