// The page as a person uses it: findings on their lines and in the list, typing a fix,
// the format control, share links, rule explanations, keyboard use, accessibility
// (axe-core), a narrow screen, and a screenshot for the record (test-results/).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchChromium } from './support/browser.mjs';
import { checkCli, cliLint, cliRules, REPO } from './support/cli.mjs';
import {
  afterLint, assertNoPageErrors, comparable, downloadText, editorText, openPage, shownFindings,
} from './support/page.mjs';

const DIST = pathToFileURL(join(import.meta.dirname, '../dist/index.html')).href;
const RESULTS = join(import.meta.dirname, '../test-results');
const MISTAKES = join(REPO, 'samples/mistakes');

let browser;
before(async () => {
  await checkCli();
  browser = await launchChromium();
  await mkdir(RESULTS, { recursive: true });
});
after(async () => browser?.close());

test('the first example shows its findings on their lines and in the list', async () => {
  const page = await openPage(browser.context, DIST);
  assert.equal(await page.inputValue('#name'), 'config.yaml');
  assert.equal(await editorText(page), await readFile(join(MISTAKES, 'config.yaml'), 'utf8'));
  const native = JSON.parse(await cliLint(MISTAKES, 'config.yaml'));
  const shown = await shownFindings(page);
  assert.deepEqual(shown, native.files[0].findings.map(comparable));
  assert.equal(await page.locator('#summary').textContent(), '3 errors, 0 warnings, 0 infos');
  assert.match(await page.locator('#detected').textContent(), /Detected: Flink 2\.x config\.yaml/);

  // Gutter markers on exactly the lines with findings, one underline per finding.
  const markedLines = await page.evaluate(() => {
    const view = window.flinkHa.view;
    return [...document.querySelectorAll('.cm-gutter-lint .cm-gutterElement')]
      .filter((g) => g.querySelector('.cm-lint-marker-error'))
      .map((g) => view.state.doc.lineAt(view.lineBlockAtHeight(g.offsetTop).from).number);
  });
  assert.deepEqual(markedLines, shown.map((f) => f.line));
  assert.equal(await page.locator('.cm-lintRange-error').count(), 3);

  // Hover: the message, the hint and a link to the rule.
  await page.locator('.cm-lintRange-error', { hasText: 'kubernets' }).hover();
  const tooltip = page.locator('.cm-tooltip-lint');
  await tooltip.waitFor();
  assert.match(await tooltip.textContent(), /`kubernets` is not an HA type.*hint: did you mean `kubernetes`.*About HA109/s);
  await page.screenshot({ path: join(RESULTS, 'page-with-findings.png'), fullPage: true });
  assertNoPageErrors(page);
  await page.close();
});

test('typing a fix removes the finding, and a click in the list jumps to its line', async () => {
  const page = await openPage(browser.context, DIST);
  await page.locator('#findings li[data-rule="HA109"] button.jump').click();
  const cursorLine = () => page.evaluate(() => {
    const { state } = window.flinkHa.view;
    return state.doc.lineAt(state.selection.main.head).number;
  });
  assert.equal(await cursorLine(), 4, 'the list jumped to line 4');
  assert.ok(await page.evaluate(() => window.flinkHa.view.hasFocus), 'the editor has the focus');
  // `kubernets` → `kubernetes`: the missing letter goes before the final `s`.
  await afterLint(page, async () => {
    await page.keyboard.press('End');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.type('e');
  });
  const fixed = await editorText(page);
  assert.match(fixed, /^high-availability\.type: kubernetes$/m);
  const shown = await shownFindings(page);
  assert.ok(!shown.some((f) => f.rule === 'HA109'), 'HA109 is gone');
  assert.ok(['HA102', 'HA105'].every((r) => shown.some((f) => f.rule === r)), 'the other errors stay');
  // With a valid HA type, rules that need HA on may now apply: the CLI is the judge.
  const dir = await mkdtemp(join(tmpdir(), 'flink-ha-web-typed-'));
  await writeFile(join(dir, 'config.yaml'), fixed);
  assert.deepEqual(shown, JSON.parse(await cliLint(dir, 'config.yaml')).files[0].findings.map(comparable));
  assert.equal(await page.locator('.cm-lintRange-error').count(), shown.filter((f) => f.severity === 'error').length);
  assertNoPageErrors(page);
  await page.close();
});

test('the format is detected, shown, and can be overridden', async () => {
  const page = await openPage(browser.context, DIST);
  const text = 'kubernetes.cluster-id: orders-etl\nhigh-availability.type: "kubernetes"\n';
  await afterLint(page, () => page.evaluate((text) => {
    const view = window.flinkHa.view;
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
  }, text));
  assert.match(await page.locator('#detected').textContent(), /Detected: Flink 2\.x config\.yaml/);
  await afterLint(page, () => page.fill('#name', 'flink-conf.yaml'));
  assert.match(await page.locator('#detected').textContent(), /Detected: legacy flink-conf\.yaml/);
  assert.ok((await shownFindings(page)).some((f) => f.rule === 'HA004'), 'legacy reading keeps the quotes');
  await afterLint(page, () => page.selectOption('#format', 'config-yaml'));
  assert.match(await page.locator('#detected').textContent(), /Reading as Flink 2\.x config\.yaml \(chosen\)/);
  assert.ok(!(await shownFindings(page)).some((f) => f.rule === 'HA004'));

  // The override reaches the downloads exactly as --input-format reaches the CLI.
  const dir = await mkdtemp(join(tmpdir(), 'flink-ha-web-format-'));
  await writeFile(join(dir, 'flink-conf.yaml'), text);
  for (const format of ['config-yaml', 'kubernetes', 'flink-conf']) {
    await afterLint(page, () => page.selectOption('#format', format));
    assert.equal(await downloadText(page, '#download-json'), await cliLint(dir, 'flink-conf.yaml', { inputFormat: format }),
      `--input-format ${format}`);
  }
  assertNoPageErrors(page);
  await page.close();
});

test('a share link restores the input, its name and format', async () => {
  const page = await openPage(browser.context, DIST);
  const text = 'kubernetes.cluster-id: shared-cluster\nhigh-availability.type: kubernets # ünïcödé \u{1F600}\n';
  await afterLint(page, () => page.evaluate((text) => {
    const view = window.flinkHa.view;
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
  }, text));
  await afterLint(page, () => page.fill('#name', 'prod-flink-conf.yaml'));
  await afterLint(page, () => page.selectOption('#format', 'flink-conf'));
  const findings = await shownFindings(page);
  await page.click('#share');
  await page.locator('#share-link').waitFor({ state: 'visible' });
  const link = await page.inputValue('#share-link');
  assert.ok(link.startsWith(DIST + '#v1&'), link);
  assert.ok(!link.includes('shared-cluster'), 'the input is compressed into the link');

  const other = await openPage(browser.context, link);
  assert.equal(await editorText(other), text);
  assert.equal(await other.inputValue('#name'), 'prod-flink-conf.yaml');
  assert.equal(await other.inputValue('#format'), 'flink-conf');
  assert.deepEqual(await shownFindings(other), findings);

  // A damaged link says so instead of showing an empty editor silently.
  const damaged = await openPage(browser.context, link.slice(0, -12));
  assert.match(await damaged.locator('#notice').textContent(), /share link cannot be opened: the link is damaged/);
  for (const p of [page, other, damaged]) {
    assertNoPageErrors(p);
    await p.close();
  }
});

test('every rule is explained, and finding links open the explanation', async () => {
  const page = await openPage(browser.context, DIST);
  const catalogue = await cliRules();
  const shown = await page.locator('#rule-list article').evaluateAll((articles) =>
    articles.map((a) => ({ id: a.id, text: a.querySelector('p').textContent })));
  assert.deepEqual(shown, catalogue.map((r) => ({ id: `rule-${r.id}`, text: r.explanation })));

  const hashBefore = await page.evaluate(() => location.hash);
  await page.locator('#findings li[data-rule="HA105"] a.rule-link').click();
  const rule = page.locator('#rule-HA105');
  assert.ok(await rule.isVisible(), 'the explanation is shown');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'rule-HA105', 'and focused');
  assert.equal(await page.evaluate(() => location.hash), hashBefore, 'the fragment (shared input) is kept');
  assertNoPageErrors(page);
  await page.close();
});

test('keyboard only: reach the list, jump to a finding, leave the editor with Tab', async () => {
  const page = await openPage(browser.context, DIST);
  // Tab from the editor goes on to the findings (no Tab trap in the editor).
  await page.locator('.cm-content').focus();
  await page.keyboard.press('Tab');
  let focused = await page.evaluate(() => document.activeElement.closest('li')?.dataset.rule ?? document.activeElement.id);
  assert.equal(focused, 'HA102', 'Tab leaves the editor for the first finding');
  await page.keyboard.press('Tab'); // its rule link
  await page.keyboard.press('Tab'); // the next finding
  focused = await page.evaluate(() => document.activeElement.closest('li')?.dataset.rule);
  assert.equal(focused, 'HA109');
  await page.keyboard.press('Enter');
  const line = await page.evaluate(() => {
    const { state, hasFocus } = window.flinkHa.view;
    return hasFocus && state.doc.lineAt(state.selection.main.head).number;
  });
  assert.equal(line, 4, 'Enter on a finding puts the cursor on its line');
  assertNoPageErrors(page);
  await page.close();
});

test('axe-core finds no accessibility violations', async () => {
  const page = await openPage(browser.context, DIST);
  const axe = createRequire(import.meta.url)('axe-core');
  // Evaluated over the DevTools protocol: the page's CSP rightly refuses inline scripts.
  await page.evaluate(axe.source);
  await page.evaluate(() => document.querySelector('#rules details').setAttribute('open', ''));
  const violations = await page.evaluate(async () => (await window.axe.run(document)).violations
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`));
  assert.deepEqual(violations, []);
  await page.close();
});

test('a narrow screen gets one column and no sideways scrolling', async () => {
  const page = await openPage(browser.context, DIST, { viewport: { width: 360, height: 740 } });
  const layout = await page.evaluate(() => ({
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    editor: document.querySelector('#editor-section').getBoundingClientRect(),
    findings: document.querySelector('#findings-section').getBoundingClientRect(),
  }));
  assert.ok(layout.overflow <= 0, `the page is ${layout.overflow} px wider than the screen`);
  assert.ok(layout.findings.top >= layout.editor.bottom, 'the findings are under the editor');
  await page.screenshot({ path: join(RESULTS, 'page-narrow.png'), fullPage: true });
  assertNoPageErrors(page);
  await page.close();
});
