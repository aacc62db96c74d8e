// The browser linter: wires the editor, the worker, the findings list and the controls.
// Everything happens in this tab: the input is linted by the policy core compiled to
// Wasm in a Web Worker, and nothing is sent anywhere (the page's CSP forbids it).

import './style.css';
import examples from 'flink-ha-examples';
import { LinterClient } from './linter-client.js';
import { createEditor, jumpTo, setText, showFindings } from './editor.js';
import { renderFindings, summaryText } from './findings-view.js';
import { renderRules, showRule } from './rules-view.js';
import { decodeShare, encodeShare, MASK, maskSecrets } from './share.js';
import { download } from './download.js';
import { displayText, documentBytes, formatBytes, isUtf8, readFileBytes } from './input.js';
import { el } from './dom.js';

/** Quiet time after the last keystroke before linting: fast typists see no flicker. */
const LINT_DELAY_MS = 200;

const FORMAT_LABELS = {
  'flink-conf': 'legacy flink-conf.yaml',
  'config-yaml': 'Flink 2.x config.yaml',
  kubernetes: 'Kubernetes manifests',
};

const $ = (id) => document.getElementById(id);
const ui = {
  name: $('name'), format: $('format'), detected: $('detected'), example: $('example'),
  load: $('load-example'), open: $('open-file'), share: $('share'), shareLink: $('share-link'),
  downloadJson: $('download-json'), downloadSarif: $('download-sarif'), notice: $('notice'),
  summary: $('summary'), timing: $('timing'), findings: $('findings'), rules: $('rule-list'),
  editor: $('editor'), version: $('version'),
};

const client = new LinterClient();
let maxInputBytes = 4 * 1024 * 1024; // replaced by the core's own limit once it answers
// A file loaded as bytes is linted as those bytes (which may not be UTF-8) until the
// text is edited; `doc` is the editor document it was shown as.
let pinned = null;
// Every change of what is to be linted bumps `inputGeneration`; a lint answer is
// applied only if nothing changed since it was asked for. Both numbers are mirrored on
// <body> so tests (and curious people) can tell when the findings are current.
let inputGeneration = 0;
let lintTimer = 0;

const view = createEditor(ui.editor, {
  label: 'Flink configuration or Kubernetes manifests to lint',
  describedBy: 'editor-help',
  onChange: () => {
    if (pinned && pinned.doc !== view.state.doc) pinned = null;
    scheduleLint(LINT_DELAY_MS);
  },
});

// Two kinds of notice share one alert box: `lint` notices describe the current input
// (too large, not UTF-8) and are replaced by every lint; `action` notices report what a
// person did (a broken share link, a copied link) and stay until the next action.
const notices = { lint: null, action: null };

function setNotice(source, text, kind = 'error') {
  notices[source] = text ? { text, kind } : null;
  const shown = [notices.action, notices.lint].filter(Boolean);
  ui.notice.replaceChildren(...shown.map((n) => el('p', { className: `notice-${n.kind}` }, n.text)));
  ui.notice.hidden = shown.length === 0;
}

function currentInput() {
  const name = ui.name.value.trim() || 'config.yaml';
  const format = ui.format.value;
  const bytes = pinned ? pinned.bytes.slice() : documentBytes(view.state.doc, maxInputBytes);
  return { name, format, bytes };
}

function scheduleLint(delay) {
  inputGeneration += 1;
  document.body.dataset.inputGeneration = inputGeneration;
  clearTimeout(lintTimer);
  lintTimer = setTimeout(runLint, delay);
}

async function runLint() {
  const generation = inputGeneration;
  const { name, format, bytes } = currentInput();
  const size = bytes.length;
  document.body.dataset.linting = 'true';
  let answer;
  try {
    answer = await client.lint(name, bytes, format);
  } catch (error) {
    if (generation !== inputGeneration) return;
    setNotice('lint', `Could not lint: ${error.message}.`);
    finishLint(generation);
    return;
  }
  if (generation !== inputGeneration) return; // a newer input is on its way
  const run = JSON.parse(answer.json);
  const findings = run.files[0]?.findings ?? [];
  showFindings(view, findings);
  renderFindings(ui.findings, findings, (line, column) => jumpTo(view, line, column));
  ui.summary.textContent = summaryText(run.summary);
  ui.timing.textContent = `linted in ${answer.ms.toFixed(1)} ms`;
  showDetected(format, answer.detected);
  if (size > maxInputBytes) {
    setNotice('lint', `The input is over ${formatBytes(maxInputBytes)}, the most the linter reads: nothing was linted. `
      + 'A ConfigMap holds at most 1 MiB; lint the configuration files themselves, not an archive or a dump.');
  } else if (pinned && !pinned.utf8) {
    setNotice('lint', 'The file is not UTF-8: the editor shows undecodable bytes as \uFFFD, and the findings are for the '
      + 'file as it is. Editing the text lints the text instead.', 'info');
  } else {
    setNotice('lint', '');
  }
  finishLint(generation);
}

function finishLint(generation) {
  document.body.dataset.linting = 'false';
  document.body.dataset.lintedGeneration = generation;
}

function showDetected(format, detected) {
  if (format !== 'auto') ui.detected.textContent = `Reading as ${FORMAT_LABELS[format]} (chosen).`;
  else if (detected) ui.detected.textContent = `Detected: ${FORMAT_LABELS[detected]}.`;
  else ui.detected.textContent = 'Detected: nothing (the input is not read; see the finding).';
  ui.detected.dataset.format = format === 'auto' ? (detected ?? '') : format;
}

/** Puts text (and optionally raw bytes it came from) in the editor under `name`. */
function loadInput({ text, name, format = 'auto', bytes = null }) {
  ui.name.value = name;
  ui.format.value = format;
  setText(view, text);
  pinned = bytes ? { bytes, doc: view.state.doc, utf8: isUtf8(bytes) } : null;
  scheduleLint(0);
}

// ---- controls -------------------------------------------------------------------

ui.name.addEventListener('input', () => scheduleLint(LINT_DELAY_MS));
ui.format.addEventListener('change', () => scheduleLint(0));

for (const [index, example] of examples.entries()) {
  ui.example.append(el('option', { value: String(index) }, example.title));
}
ui.load.addEventListener('click', () => {
  const example = examples[Number(ui.example.value)];
  if (!example) return;
  setNotice('action', '');
  loadInput({ text: example.text, name: example.name });
});

ui.open.addEventListener('change', async () => {
  const file = ui.open.files?.[0];
  if (!file) return;
  const bytes = await readFileBytes(file, maxInputBytes);
  setNotice('action', '');
  loadInput({ text: displayText(bytes), name: file.name, bytes });
  ui.open.value = ''; // opening the same file again is a change too
});

ui.share.addEventListener('click', async () => {
  const text = view.state.doc.toString();
  const fragment = await encodeShare({ text, name: ui.name.value, format: ui.format.value });
  if (!fragment) {
    setNotice('action', 'The input is too large to share as a link; download it or share the file instead.');
    return;
  }
  history.replaceState(null, '', `#${fragment}`);
  ui.shareLink.value = location.href;
  ui.shareLink.hidden = false;
  ui.shareLink.select();
  const { masked } = maskSecrets(text);
  const secrets = masked
    ? ` Values of sensitive keys (passwords, secret keys, tokens, private keys; ${masked} line${masked === 1 ? '' : 's'}) are replaced by ${MASK} in the link.`
    : '';
  try {
    await navigator.clipboard.writeText(location.href);
    setNotice('action', `Link copied. The input is inside the link itself and was not uploaded.${secrets}`, 'info');
  } catch {
    setNotice('action', 'The link is in the box above (the browser did not allow copying it). '
      + `The input is inside the link itself and was not uploaded.${secrets}`, 'info');
  }
});

async function downloadFindings(kind) {
  const { name, format, bytes } = currentInput();
  const base = name.replace(/[^\w.-]+/g, '_');
  try {
    if (kind === 'json') {
      const { json } = await client.lint(name, bytes, format);
      download(`${base}.flink-ha.json`, json, 'application/json');
    } else {
      const { sarif } = await client.sarif(name, bytes, format);
      download(`${base}.flink-ha.sarif`, sarif, 'application/sarif+json');
    }
  } catch (error) {
    setNotice('action', `Could not create the ${kind.toUpperCase()} file: ${error.message}.`);
  }
}
ui.downloadJson.addEventListener('click', () => downloadFindings('json'));
ui.downloadSarif.addEventListener('click', () => downloadFindings('sarif'));

// Rule links open the catalogue entry without replacing the fragment (the shared input).
document.addEventListener('click', (event) => {
  const link = event.target.closest?.('a[data-rule-link]');
  if (link && showRule(link.dataset.ruleLink)) event.preventDefault();
});

async function loadFromFragment() {
  let shared;
  try {
    shared = await decodeShare(location.hash);
  } catch (error) {
    setNotice('action', `This share link cannot be opened: ${error.message}.`);
    return false;
  }
  if (!shared) return false;
  setNotice('action', '');
  loadInput(shared);
  return true;
}
window.addEventListener('hashchange', loadFromFragment);

// A console API for scripting and measurement: the editor (CodeMirror's EditorView) and
// lint timings taken inside the worker.
window.flinkHa = {
  view,
  version: () => client.ready.then((hello) => hello.version),
  async bench(text, { name = 'config.yaml', format = 'auto', runs = 200, batches = 25 } = {}) {
    const { perLintMs } = await client.bench(name, new TextEncoder().encode(text), format, runs, batches);
    const sorted = [...perLintMs].sort((a, b) => a - b);
    return { medianMs: sorted[Math.floor(sorted.length / 2)], perLintMs };
  },
};

async function start() {
  const anchor = location.hash.startsWith('#rule-') ? location.hash.slice(6) : null;
  if (!(await loadFromFragment())) {
    const first = examples.find((e) => e.initial) ?? examples[0];
    loadInput({ text: first.text, name: first.name });
  }
  try {
    const hello = await client.ready;
    maxInputBytes = hello.maxInputBytes;
    ui.version.textContent = `policy ${hello.version}`;
    renderRules(ui.rules, hello.rules);
    if (anchor) showRule(anchor);
  } catch (error) {
    setNotice('action', `The linter could not start: ${error.message}.`);
  }
}
start();
