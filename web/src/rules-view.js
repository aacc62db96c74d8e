// The rule catalogue (the core's rules()): the target of every rule link.

import { el } from './dom.js';

export function renderRules(container, rules) {
  container.replaceChildren(
    ...rules.map((r) =>
      el('article', { id: `rule-${r.id}`, className: `rule-entry severity-${r.severity}`, tabIndex: -1 },
        el('h3', {}, el('span', { className: 'rule' }, r.id), ' ', r.title, ' ', el('span', { className: 'severity' }, r.severity)),
        el('p', {}, r.explanation),
      ),
    ),
  );
}

/** Scrolls to a rule's explanation and focuses it (for screen readers and keyboards). */
export function showRule(rule) {
  const target = document.getElementById(`rule-${rule}`);
  if (!target) return false;
  target.closest('details')?.setAttribute('open', '');
  target.scrollIntoView({ block: 'start' });
  target.focus({ preventScroll: true });
  return true;
}
