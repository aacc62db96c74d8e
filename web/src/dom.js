// Small DOM helpers shared by the views.

/** `el('p', {className: 'x'}, 'text', child)`: an element with properties and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('aria-') || key === 'role' || key === 'for') node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/**
 * A link to a rule's explanation in the catalogue section. The page's click handler
 * (main.js) opens it without touching the URL fragment, which holds the shared input.
 */
export function ruleLink(rule, text = `About ${rule}`) {
  return el('a', { className: 'rule-link', href: `#rule-${rule}`, dataset: { ruleLink: rule } }, text);
}
