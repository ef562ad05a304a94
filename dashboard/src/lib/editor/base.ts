/**
 * What the script editor and the diff view share: mounting CodeMirror inside a shadow root, the
 * Rhai language, an accessible highlight style and the look.
 *
 * Why a shadow root: CodeMirror injects its styles with style-mod, which in a document uses a
 * `<style>` element — refused by the dashboard's CSP (`style-src 'self'`, no 'unsafe-inline') —
 * but in a shadow root uses a constructed stylesheet (`adoptedStyleSheets`), which the CSP allows.
 * The shadow root is open, so the accessibility tree, axe-core and test locators see inside it.
 */
import { HighlightStyle, StreamLanguage, syntaxHighlighting } from '@codemirror/language';
import type { Extension } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { tags as t } from '@lezer/highlight';
import { rhai } from './rhai';

/** A shadow root on `host` (reused if there is one) and a fresh element in it for a view. */
export function shadowMount(host: HTMLElement): { root: ShadowRoot; parent: HTMLElement } {
  const root = host.shadowRoot ?? host.attachShadow({ mode: 'open' });
  const parent = document.createElement('div');
  root.append(parent);
  return { root, parent };
}

export const rhaiLanguage = StreamLanguage.define(rhai);

// CodeMirror's default colours include some under 4.5:1 on white (e.g. `${` at #e40); these all
// reach it (axe-core's color-contrast).
const highlight = HighlightStyle.define([
  { tag: t.keyword, color: '#7a1a8c' },
  { tag: t.bool, color: '#1a3fa6' },
  { tag: t.number, color: '#116329' },
  { tag: [t.string, t.character], color: '#a31515' },
  { tag: t.special(t.string), color: '#8a3a00', fontWeight: '600' },
  { tag: t.comment, color: '#6b5b00', fontStyle: 'italic' },
  { tag: t.definition(t.variableName), color: '#1f4fbf', fontWeight: '600' },
  { tag: t.function(t.variableName), color: '#0b5f73' },
  { tag: [t.operator, t.brace], color: '#4a4f57' },
]);

const theme = EditorView.theme({
  '&': { border: '1px solid #dde1e6', borderRadius: '6px', background: '#fff', color: '#1d232b', fontSize: '13px' },
  '&.cm-focused': { outline: '2px solid #2456c7', outlineOffset: '1px' },
  '.cm-scroller': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace', lineHeight: '1.5' },
  '.cm-gutters': { background: '#f6f7f9', color: '#5b6673', borderRight: '1px solid #dde1e6' },
  '.cm-activeLine': { background: '#f3f6fc' },
  '.cm-activeLineGutter': { background: '#e8eefb', color: '#1d232b' },
});

export const look: Extension = [rhaiLanguage, syntaxHighlighting(highlight), theme];
