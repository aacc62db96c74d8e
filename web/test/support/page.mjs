// Driving the page: open it, wait for findings that belong to the current input, read
// them back from the DOM, take the downloads.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

/**
 * Opens `url` in a new tab and waits for the first lint; page errors are collected in
 * `page.errors` (tests assert it stays empty).
 */
export async function openPage(context, url, { viewport } = {}) {
  const page = watchErrors(await context.newPage());
  if (viewport) await page.setViewportSize(viewport);
  await page.goto(url);
  await page.waitForFunction(() => document.querySelectorAll('#rule-list article').length > 0);
  await waitLinted(page, 0);
  return page;
}

/** Collects the page's uncaught errors and console errors in `page.errors`. */
export function watchErrors(page) {
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') page.errors.push(`console: ${message.text()}`);
  });
  return page;
}

const generation = (page) => page.evaluate(() => Number(document.body.dataset.inputGeneration ?? 0));

/** Waits until the findings shown are those of an input newer than `after`. */
export async function waitLinted(page, after, timeout = 20_000) {
  await page.waitForFunction(
    (after) => {
      const { inputGeneration, lintedGeneration, linting } = document.body.dataset;
      return Number(inputGeneration) > after && inputGeneration === lintedGeneration && linting === 'false';
    },
    after,
    { timeout },
  );
}

/** Runs `action` (which changes the input) and waits for its findings. */
export async function afterLint(page, action) {
  const before = await generation(page);
  await action();
  await waitLinted(page, before);
}

/** Loads a file through the page's "Open a file" control. */
export function openFile(page, files) {
  return afterLint(page, () => page.setInputFiles('#open-file', files));
}

/** The findings list, in the shape of the CLI's JSON findings. */
export function shownFindings(page) {
  return page.locator('#findings li').evaluateAll((items) =>
    items.map((li) => {
      const message = li.querySelector('.message');
      const subject = message.querySelector('.subject')?.textContent.trim().replace(/^\((.*)\)$/, '$1') ?? null;
      const hint = li.querySelector('.hint')?.textContent.replace(/^hint: /, '') ?? '';
      return {
        rule: li.dataset.rule,
        severity: li.dataset.severity,
        line: li.dataset.line ? Number(li.dataset.line) : null,
        column: li.dataset.column ? Number(li.dataset.column) : null,
        message: message.firstChild.textContent,
        subject,
        hint,
      };
    }),
  );
}

/**
 * A CLI JSON finding in the same shape as shownFindings(). An empty key (a line with
 * nothing before its colon) is shown as no subject, so it compares as none.
 */
export function comparable(f) {
  return {
    rule: f.rule, severity: f.severity, line: f.line ?? null, column: f.column ?? null,
    message: f.message, subject: (f.key ?? f.path) || null, hint: f.hint,
  };
}

/** Clicks a download button; the downloaded file's text. */
export async function downloadText(page, button) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  return readFile(await download.path(), 'utf8');
}

/** The editor's whole text. */
export function editorText(page) {
  return page.evaluate(() => window.flinkHa.view.state.doc.toString());
}

/** Replaces the editor's text as a paste would (CodeMirror's own paste handling). */
export function paste(page, text) {
  return page.evaluate((text) => {
    const content = document.querySelector('.cm-content');
    content.focus();
    const { view } = window.flinkHa;
    view.dispatch({ selection: { anchor: 0, head: view.state.doc.length } });
    const data = new DataTransfer();
    data.setData('text/plain', text);
    content.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }, text);
}

export function assertNoPageErrors(page) {
  assert.deepEqual(page.errors, [], 'the page logged errors');
}
