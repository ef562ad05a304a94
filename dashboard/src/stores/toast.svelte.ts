/** Short notices ("Copied", "Topic deleted") shown in a polite live region; each fades after 4 s. */
export interface Toast {
  id: number;
  text: string;
  kind: 'info' | 'error';
}

class Toasts {
  list = $state<Toast[]>([]);
  private n = 0;

  show(text: string, kind: Toast['kind'] = 'info'): void {
    const id = ++this.n;
    this.list.push({ id, text, kind });
    setTimeout(() => this.dismiss(id), 4000);
  }

  dismiss(id: number): void {
    this.list = this.list.filter((t) => t.id !== id);
  }
}

export const toasts = new Toasts();
