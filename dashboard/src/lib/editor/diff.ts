/**
 * A read-only side-by-side diff of two script versions (`@codemirror/merge`'s MergeView), its own
 * chunk: loaded when a diff is first opened. Unchanged stretches are collapsed.
 */
import { EditorState } from '@codemirror/state';
import { EditorView, lineNumbers } from '@codemirror/view';
import { MergeView } from '@codemirror/merge';
import { look, shadowMount } from './base';

export interface DiffSide {
  doc: string;
  /** The accessible name of this side's text. */
  label: string;
}

const side = (s: DiffSide) => ({
  doc: s.doc,
  extensions: [
    lineNumbers(),
    look,
    EditorState.readOnly.of(true),
    EditorView.editable.of(false),
    EditorView.contentAttributes.of({ 'aria-label': s.label, 'aria-readonly': 'true', tabindex: '0' }),
  ],
});

/** Shows `a` (left) against `b` (right) in `host`; returns a function that removes it. */
export function createDiff(host: HTMLElement, a: DiffSide, b: DiffSide): () => void {
  const { root, parent } = shadowMount(host);
  const view = new MergeView({ a: side(a), b: side(b), parent, root, collapseUnchanged: { margin: 3, minSize: 6 }, gutter: true });
  return () => {
    view.destroy();
    parent.remove();
  };
}
