// Hostile input: a 5 MB paste, binary garbage and a YAML "billion laughs" bomb. The
// page must stay responsive (the lint runs in the worker; the main thread only slices,
// encodes and posts), say clearly what happened, and report what the CLI reports.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchChromium } from './support/browser.mjs';
import { checkCli, cliLint } from './support/cli.mjs';
import {
  afterLint, assertNoPageErrors, downloadText, editorText, openFile, openPage, paste, shownFindings,
} from './support/page.mjs';

const DIST = pathToFileURL(join(import.meta.dirname, '../dist/index.html')).href;
/** Longest main-thread stall allowed while a hostile input is linted. */
const MAX_STALL_MS = 250;

let browser;
let scratch;
before(async () => {
  await checkCli();
  browser = await launchChromium();
  scratch = await mkdtemp(join(tmpdir(), 'flink-ha-web-hostile-'));
});
after(async () => {
  await browser?.close();
  await rm(scratch, { recursive: true, force: true });
});

/** Starts a 10 ms heartbeat in the page that records its longest gap. */
const startHeartbeat = (page) => page.evaluate(() => {
  window.heartbeat = { last: performance.now(), maxGap: 0 };
  window.heartbeat.timer = setInterval(() => {
    const now = performance.now();
    window.heartbeat.maxGap = Math.max(window.heartbeat.maxGap, now - window.heartbeat.last);
    window.heartbeat.last = now;
  }, 10);
});
const stopHeartbeat = (page) => page.evaluate(() => {
  clearInterval(window.heartbeat.timer);
  return window.heartbeat.maxGap;
});

/** Types a key and checks that the editor shows it within `ms`: the page still answers. */
async function assertTypingWorks(page, ms = 1000) {
  const before = await editorText(page);
  await page.evaluate(() => window.flinkHa.view.dispatch({ selection: { anchor: 0 } }));
  await page.locator('.cm-content').focus();
  const started = Date.now();
  await page.keyboard.type('#');
  await page.waitForFunction((n) => window.flinkHa.view.state.doc.length === n + 1, before.length, { timeout: ms });
  console.log(`hostile: a keystroke reached the editor in ${Date.now() - started} ms`);
}

/** Checks the JSON download against the CLI on the same bytes under the same name. */
async function assertCliParity(page, name, bytes) {
  await writeFile(join(scratch, name), bytes);
  assert.equal(await downloadText(page, '#download-json'), await cliLint(scratch, name), `${name}: JSON = the CLI's`);
}

test('a 5 MB paste is refused with a clear message, and the page stays responsive', { timeout: 120_000 }, async () => {
  const page = await openPage(browser.context, DIST);
  const line = 'taskmanager.memory.process.size: 4096m # padding to make a very large paste\n';
  const text = line.repeat(Math.ceil(5_000_000 / line.length));
  const pasteStarted = Date.now();
  await paste(page, text);
  console.log(`hostile: CodeMirror took ${Date.now() - pasteStarted} ms to take a ${(text.length / 1e6).toFixed(1)} MB paste`);
  assert.equal((await editorText(page)).length, text.length, 'the paste is in the editor');

  await startHeartbeat(page);
  await afterLint(page, () => page.locator('#format').selectOption('config-yaml')); // a fresh lint, measured from here
  const stall = await stopHeartbeat(page);
  console.log(`hostile: 5 MB lint: longest main-thread stall ${stall.toFixed(0)} ms`);
  assert.ok(stall < MAX_STALL_MS, `the main thread stalled ${stall} ms`);

  assert.match(await page.locator('#notice').textContent(), /over 4 MiB, the most the linter reads: nothing was linted/);
  const findings = await shownFindings(page);
  assert.deepEqual(findings.map((f) => f.rule), ['HA001']);
  assert.match(findings[0].message, /input is over 4194304 bytes/);
  await assertTypingWorks(page);
  assertNoPageErrors(page);
  await page.close();
});

// A deterministic PRNG: a failure can be replayed.
function* randomBytes(seed) {
  let x = seed;
  for (;;) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    yield x & 0xff;
  }
}

test('binary garbage is reported as not UTF-8, as the CLI does', { timeout: 60_000 }, async () => {
  const page = await openPage(browser.context, DIST);
  const source = randomBytes(0x9e3779b9);
  const bytes = Buffer.from(Array.from({ length: 256 * 1024 }, () => source.next().value));
  await startHeartbeat(page);
  await openFile(page, { name: 'garbage.yaml', mimeType: 'application/octet-stream', buffer: bytes });
  const stall = await stopHeartbeat(page);
  console.log(`hostile: 256 KiB of random bytes: longest main-thread stall ${stall.toFixed(0)} ms`);
  assert.ok(stall < MAX_STALL_MS, `the main thread stalled ${stall} ms`);
  const findings = await shownFindings(page);
  assert.equal(findings[0].rule, 'HA001');
  assert.match(findings[0].message, /not UTF-8/);
  assert.match(await page.locator('#notice').textContent(), /not UTF-8/);
  await assertCliParity(page, 'garbage.yaml', bytes);

  // Garbage as text (control characters, NULs, stray surrogates decoded as U+FFFD).
  const garbage = Buffer.from(Array.from({ length: 64 * 1024 }, () => source.next().value)).toString('latin1');
  await afterLint(page, () => paste(page, garbage));
  assert.ok((await shownFindings(page)).length > 0, 'garbage text gets findings');
  await afterLint(page, () => page.fill('#name', 'garbage-text.yaml'));
  await assertCliParity(page, 'garbage-text.yaml', Buffer.from(garbage, 'utf8'));
  await assertTypingWorks(page);
  assertNoPageErrors(page);
  await page.close();
});

test('a billion-laughs bomb is stopped by the core, in the worker', { timeout: 60_000 }, async () => {
  const page = await openPage(browser.context, DIST);
  // 10 levels of 10 aliases each: 10^10 nodes if expanded.
  const levels = 'abcdefghij'.split('');
  const bomb = levels.map((name, i) => (i === 0
    ? `${name}: &${name} ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]`
    : `${name}: &${name} [${Array(10).fill(`*${levels[i - 1]}`).join(',')}]`)).join('\n') + '\n';
  await startHeartbeat(page);
  await afterLint(page, () => paste(page, bomb));
  const stall = await stopHeartbeat(page);
  console.log(`hostile: billion laughs: longest main-thread stall ${stall.toFixed(0)} ms, `
    + `lint ${await page.locator('#timing').textContent()}`);
  assert.ok(stall < MAX_STALL_MS, `the main thread stalled ${stall} ms`);
  const findings = await shownFindings(page);
  assert.equal(findings[0].rule, 'HA001');
  await assertCliParity(page, 'config.yaml', Buffer.from(bomb));
  await assertTypingWorks(page);
  assertNoPageErrors(page);
  await page.close();
});
