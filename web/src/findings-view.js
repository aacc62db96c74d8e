// The findings list beside the editor: one entry per finding with severity, rule id,
// position, message and hint; the position is a button that moves the editor there.

import { el, ruleLink } from './dom.js';

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** "2 errors, 1 warning, 0 infos" from the CLI's summary. */
export function summaryText(summary) {
  return [
    plural(summary.errors, 'error', 'errors'),
    plural(summary.warnings, 'warning', 'warnings'),
    plural(summary.infos, 'info', 'infos'),
  ].join(', ');
}

/** Renders `findings` into the list element; `onJump(line, column)` on activation. */
export function renderFindings(list, findings, onJump) {
  list.replaceChildren(
    ...findings.map((f) => {
      const subject = f.key ?? f.path;
      const where = f.line ? `line ${f.line}, column ${f.column}` : 'whole input';
      const heading = [
        el('span', { className: 'severity' }, f.severity),
        el('span', { className: 'rule' }, f.rule),
        el('span', { className: 'where' }, f.line ? `${f.line}:${f.column}` : 'input'),
      ];
      // The button's name is its visible text plus where it goes, for screen readers.
      const head = f.line
        ? el('button', { type: 'button', className: 'jump' },
            ...heading, el('span', { className: 'visually-hidden' }, `: go to ${where}`))
        : el('div', { className: 'jump' }, ...heading);
      if (f.line) head.addEventListener('click', () => onJump(f.line, f.column));
      return el('li', {
        className: `finding severity-${f.severity}`,
        dataset: { rule: f.rule, severity: f.severity, line: f.line ?? '', column: f.column ?? '' },
      },
        head,
        el('p', { className: 'message' }, f.message, subject ? el('code', { className: 'subject' }, ` (${subject})`) : null),
        f.hint ? el('p', { className: 'hint' }, `hint: ${f.hint}`) : null,
        ruleLink(f.rule, `${f.rule} explained`),
      );
    }),
  );
}
