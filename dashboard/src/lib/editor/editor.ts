/**
 * The script editor (CodeMirror 6, loaded only by the pages that edit scripts): Rhai highlighting,
 * line numbers, undo history, bracket matching, and the diagnostics the page gives it shown as lint
 * marks and gutter markers. The page runs the checker (debounced) and owns the list of diagnostics;
 * the editor only displays them. Tab is left to move focus (no tab trap): indentation comes from
 * Enter keeping the line's indentation.
 */
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { bracketMatching, indentUnit } from '@codemirror/language';
import { lintGutter, setDiagnostics, type Diagnostic as LintDiagnostic } from '@codemirror/lint';
import { Compartment, EditorState } from '@codemirror/state';
import { drawSelection, EditorView, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers } from '@codemirror/view';
import { look, shadowMount } from './base';

export interface EditorOptions {
  doc: string;
  /** The accessible name of the editable area. */
  label: string;
  readOnly: boolean;
  onChange: (doc: string) => void;
}

/** A problem to mark: its range in the document (UTF-16 offsets) and why. */
export interface Mark {
  from: number;
  to: number;
  message: string;
}

export interface EditorHandle {
  doc(): string;
  setDoc(doc: string): void;
  /** Replaces the marked problems (computed by the page for the current text). */
  setMarks(list: readonly Mark[]): void;
  setReadOnly(readOnly: boolean): void;
  destroy(): void;
}

const editable = (readOnly: boolean) => [
  EditorState.readOnly.of(readOnly),
  EditorView.editable.of(!readOnly),
  // A read-only view stays reachable by keyboard (to scroll and select).
  EditorView.contentAttributes.of(readOnly ? { tabindex: '0', 'aria-readonly': 'true' } : {}),
];

export function createEditor(host: HTMLElement, o: EditorOptions): EditorHandle {
  const { root, parent } = shadowMount(host);
  const mode = new Compartment();
  const view = new EditorView({
    root,
    parent,
    state: EditorState.create({
      doc: o.doc,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightActiveLine(),
        history(),
        drawSelection(),
        bracketMatching(),
        indentUnit.of('    '),
        keymap.of([...defaultKeymap, ...historyKeymap]),
        lintGutter(),
        look,
        EditorView.contentAttributes.of({ 'aria-label': o.label }),
        mode.of(editable(o.readOnly)),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) o.onChange(u.state.doc.toString());
        }),
      ],
    }),
  });
  return {
    doc: () => view.state.doc.toString(),
    setDoc(doc) {
      if (doc !== view.state.doc.toString()) view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: doc } });
    },
    setMarks(list) {
      const len = view.state.doc.length;
      const marks: LintDiagnostic[] = list.map((m) => ({ from: Math.min(m.from, len), to: Math.min(m.to, len), severity: 'error', message: m.message }));
      view.dispatch(setDiagnostics(view.state, marks));
    },
    setReadOnly(readOnly) {
      view.dispatch({ effects: mode.reconfigure(editable(readOnly)) });
    },
    destroy() {
      view.destroy();
      parent.remove();
    },
  };
}
