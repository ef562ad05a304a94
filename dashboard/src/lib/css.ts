/**
 * Sets CSS properties through the CSSOM (`element.style.setProperty`), which a strict CSP
 * (`style-src 'self'`, no 'unsafe-inline') allows, unlike `style="…"` attributes. Used as a Svelte
 * action: `use:css={{ height: '120px' }}`.
 */
export function css(node: HTMLElement, props: Record<string, string>) {
  let prev: Record<string, string> = {};
  const apply = (p: Record<string, string>) => {
    for (const k of Object.keys(prev)) if (!(k in p)) node.style.removeProperty(k);
    for (const [k, v] of Object.entries(p)) if (prev[k] !== v) node.style.setProperty(k, v);
    prev = { ...p };
  };
  apply(props);
  return { update: apply };
}
