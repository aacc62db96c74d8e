// The CodeMirror 6 editor: line numbers, YAML highlighting, and the lint extension's
// underlines, gutter markers and hover tooltips. Diagnostics are pushed in with
// setDiagnostics (not pulled by lint's `linter()`), because one lint answer feeds both
// the editor and the findings list and must be applied to both or to neither.

import { Compartment, EditorState } from '@codemirror/state';
import {
  EditorView, drawSelection, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, keymap, lineNumbers,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language';
import { yaml } from '@codemirror/lang-yaml';
import { lintGutter, lintKeymap, setDiagnostics } from '@codemirror/lint';
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search';
import { findingRange } from './positions.js';
import { nestsTooDeep } from './depth.js';
import { ruleLink } from './dom.js';

// Past MAX_HIGHLIGHTED_DEPTH (depth.js) the YAML language is switched off: CodeMirror's
// highlighter recurses once per tree level and overflows the stack on hostile nesting
// (the `ha001-deep-nesting` fixture). Highlighting is cosmetic.
const yamlLanguage = yaml();
const NO_LANGUAGE = [];
const language = new Compartment();

/** Switches highlighting off (or back on) in the transaction that changes the depth. */
const languageByDepth = EditorState.transactionExtender.of((tr) => {
  if (!tr.docChanged) return null;
  const plain = nestsTooDeep(tr.newDoc);
  const wasPlain = language.get(tr.startState) === NO_LANGUAGE;
  if (plain === wasPlain) return null;
  return { effects: language.reconfigure(plain ? NO_LANGUAGE : yamlLanguage) };
});

/**
 * Creates the editor in `parent`; `onChange()` runs after every edit of the text.
 * Tab is left to the browser (no indentWithTab) so keyboard users can leave the editor.
 */
export function createEditor(parent, { label, describedBy, onChange }) {
  return new EditorView({
    parent,
    state: EditorState.create({
      doc: '',
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        highlightActiveLine(),
        EditorView.lineWrapping, // long values stay readable on narrow screens
        highlightSelectionMatches(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        language.of(yamlLanguage),
        languageByDepth,
        lintGutter(),
        keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap, ...lintKeymap]),
        EditorView.contentAttributes.of({ 'aria-label': label, 'aria-describedby': describedBy }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) onChange();
        }),
      ],
    }),
  });
}

/** Replaces the whole text (one undoable change). */
export function setText(view, text) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text }, selection: { anchor: 0 } });
}

function renderDiagnostic(finding) {
  const box = document.createElement('div');
  box.className = 'diagnostic';
  const message = document.createElement('p');
  message.textContent = finding.message;
  box.append(message);
  if (finding.hint) {
    const hint = document.createElement('p');
    hint.className = 'hint';
    hint.textContent = `hint: ${finding.hint}`;
    box.append(hint);
  }
  box.append(ruleLink(finding.rule));
  return box;
}

/**
 * Shows `findings` (the core's, for the current text) as diagnostics. Findings without
 * a line (a missing key, an unreadable input) belong to the whole input: they are in
 * the findings list only, since no line of the editor is theirs.
 */
export function showFindings(view, findings) {
  const doc = view.state.doc;
  const diagnostics = [];
  for (const f of findings) {
    const range = findingRange(doc, f.line, f.column);
    if (!range) continue;
    diagnostics.push({
      ...range,
      severity: f.severity,
      source: f.rule,
      message: `${f.message}${f.hint ? ` (hint: ${f.hint})` : ''}`,
      renderMessage: () => renderDiagnostic(f),
    });
  }
  view.dispatch(setDiagnostics(view.state, diagnostics));
}

/** Moves the cursor to the finding's position, scrolls there and focuses the editor. */
export function jumpTo(view, line, column) {
  const range = findingRange(view.state.doc, line, column);
  if (!range) return;
  view.dispatch({ selection: { anchor: range.from }, effects: EditorView.scrollIntoView(range.from, { y: 'center' }) });
  view.focus();
}
