// @vitest-environment happy-dom
// The inline two-click confirmation: the first click only opens it, Cancel closes it without acting,
// Confirm runs the action once (the button disabled meanwhile) and closes; a failed action leaves it
// open to try again, showing nothing of its own (the page shows the error); `busy` disables Confirm.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mount, unmount as unmountIt } from 'svelte';
import ConfirmInline from './ConfirmInline.svelte';

type Props = { verb: string; label: string; confirmLabel: string; confirmText?: string; busy?: boolean; onconfirm: () => unknown };

let mounted: ReturnType<typeof mount> | null = null;

function show(props: Props) {
  document.body.innerHTML = '<div id="app"></div>';
  mounted = mount(ConfirmInline, { target: document.getElementById('app')!, props });
}

/** Each button as [accessible name, visible text, disabled]. */
const buttons = () =>
  [...document.querySelectorAll('button')].map((b) => [b.getAttribute('aria-label') ?? b.textContent?.trim(), b.textContent?.trim(), b.disabled]);
const button = (name: string) => {
  const b = [...document.querySelectorAll('button')].find((x) => (x.getAttribute('aria-label') ?? x.textContent?.trim()) === name);
  if (!b) throw new Error(`no button ${name} in ${document.body.innerHTML}`);
  return b;
};
const click = (name: string) => button(name).dispatchEvent(new MouseEvent('click', { bubbles: true, cancelable: true, button: 0 }));
const until = (f: () => boolean) =>
  vi.waitFor(
    () => {
      if (!f()) throw new Error(`not yet: ${document.body.innerHTML}`);
    },
    { timeout: 2000, interval: 5 },
  );

afterEach(() => {
  if (mounted) void unmountIt(mounted);
  mounted = null;
});

const backup = (onconfirm: () => unknown, extra: Partial<Props> = {}): Props => ({
  verb: 'Delete',
  label: 'Delete backup b.tar.gz',
  confirmLabel: 'Confirm delete of b.tar.gz',
  confirmText: 'Confirm delete',
  onconfirm,
  ...extra,
});

describe('ConfirmInline', () => {
  it('opens on the first click, and Cancel closes it without acting', async () => {
    const onconfirm = vi.fn();
    show(backup(onconfirm));
    expect(buttons()).toEqual([['Delete backup b.tar.gz', 'Delete', false]]);
    click('Delete backup b.tar.gz');
    await until(() => buttons().length === 2);
    expect(buttons()).toEqual([
      ['Confirm delete of b.tar.gz', 'Confirm delete', false],
      ['Cancel', 'Cancel', false],
    ]);
    expect(button('Confirm delete of b.tar.gz').className).toBe('small danger');
    click('Cancel');
    await until(() => buttons().length === 1);
    expect(buttons()).toEqual([['Delete backup b.tar.gz', 'Delete', false]]);
    expect(onconfirm).not.toHaveBeenCalled();
  });

  it('runs the action once on Confirm, disabled while it runs, then closes', async () => {
    let release!: () => void;
    const onconfirm = vi.fn(() => new Promise<void>((r) => (release = r)));
    show({ verb: 'Revoke', label: 'Revoke key k1', confirmLabel: 'Confirm revoke', onconfirm });
    click('Revoke key k1');
    await until(() => buttons().length === 2);
    // Without confirmText the label is the text: no separate aria-label.
    expect(button('Confirm revoke').hasAttribute('aria-label')).toBe(false);
    click('Confirm revoke');
    await until(() => button('Confirm revoke').disabled);
    click('Confirm revoke');
    expect(onconfirm).toHaveBeenCalledOnce();
    release();
    await until(() => buttons().length === 1);
    expect(buttons()).toEqual([['Revoke key k1', 'Revoke', false]]);
    expect(onconfirm).toHaveBeenCalledOnce();
  });

  it('closes after a synchronous action too', async () => {
    const onconfirm = vi.fn(() => 'done');
    show(backup(onconfirm));
    click('Delete backup b.tar.gz');
    await until(() => buttons().length === 2);
    click('Confirm delete of b.tar.gz');
    await until(() => buttons().length === 1);
    expect(onconfirm).toHaveBeenCalledOnce();
  });

  it('stays open when the action fails, showing nothing itself, and can be tried again', async () => {
    let fail!: (e: Error) => void;
    const onconfirm = vi
      .fn<() => Promise<void>>()
      .mockImplementationOnce(() => new Promise((_, reject) => (fail = reject)))
      .mockResolvedValueOnce(undefined);
    show(backup(onconfirm));
    click('Delete backup b.tar.gz');
    await until(() => buttons().length === 2);
    click('Confirm delete of b.tar.gz');
    await until(() => button('Confirm delete of b.tar.gz').disabled);
    fail(new Error('server said no'));
    await until(() => !button('Confirm delete of b.tar.gz').disabled);
    expect(onconfirm).toHaveBeenCalledOnce();
    expect(buttons()).toEqual([
      ['Confirm delete of b.tar.gz', 'Confirm delete', false],
      ['Cancel', 'Cancel', false],
    ]);
    expect(document.body.textContent).not.toContain('server said no');
    expect(document.querySelector('[role=alert]')).toBeNull();
    click('Confirm delete of b.tar.gz');
    await until(() => buttons().length === 1);
    expect(onconfirm).toHaveBeenCalledTimes(2);
  });

  it('keeps Confirm disabled while busy', async () => {
    const onconfirm = vi.fn();
    show(backup(onconfirm, { busy: true }));
    click('Delete backup b.tar.gz');
    await until(() => buttons().length === 2);
    expect(button('Confirm delete of b.tar.gz').disabled).toBe(true);
    click('Confirm delete of b.tar.gz');
    await new Promise((r) => setTimeout(r, 20));
    expect(onconfirm).not.toHaveBeenCalled();
    expect(buttons().length).toBe(2);
  });
});
