// Parity: the page shows, and lets you download, exactly what the native CLI reports.
//
// Every input file of every lint fixture is opened in the page through its "Open a
// file" control, then
//  - the findings list must equal the fixture's expected.json (rule, severity, line,
//    column, message, key/path, hint). A directory with several inputs is a bundle
//    natively; the page lints one input at a time, and bundling only ever adds the
//    cross-document rules (HA4xx, src/bundle.rs), so each file must show its entry of
//    expected.json minus HA4xx findings, and its own HA4xx findings, if any, must come
//    from the file alone (checked against the CLI on that one file);
//  - the JSON and SARIF downloads must be byte-identical to `flink-ha lint --format
//    json|sarif FILE` run on that file alone.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchChromium } from './support/browser.mjs';
import { checkCli, cliLint } from './support/cli.mjs';
import { fixtureDirs } from './support/fixtures.mjs';
import {
  assertNoPageErrors, comparable, downloadText, openFile, openPage, shownFindings,
} from './support/page.mjs';

const DIST = join(import.meta.dirname, '../dist/index.html');
const isBundleRule = (f) => f.rule.startsWith('HA4');

let browser;
before(async () => {
  await checkCli();
  browser = await launchChromium();
});
after(async () => browser?.close());

const { included, excluded } = await fixtureDirs();

test('the corpus has lint fixtures to compare', () => {
  assert.ok(included.length >= 25, `only ${included.length} lint fixtures`);
  console.log(`parity: ${included.length} fixture directories, ${included.reduce((n, d) => n + d.inputs.length, 0)} input files`);
  for (const { name, reason } of excluded) console.log(`parity: excluded ${name}: ${reason}`);
});

for (const fixture of included) {
  test(`fixture ${fixture.name}`, { timeout: 120_000 }, async () => {
    // A tab per fixture: headless Chromium silently drops every 11th download of a tab
    // (seen with plain blob-link downloads too), and no fixture has more than 5 inputs.
    const page = await openPage(browser.context, pathToFileURL(DIST).href);
    const expected = JSON.parse(await readFile(join(fixture.dir, 'expected.json'), 'utf8'));
    assert.deepEqual(expected.files.map((f) => f.path), fixture.inputs, 'expected.json lists the inputs');
    for (const input of fixture.inputs) {
      await openFile(page, join(fixture.dir, input));
      assert.equal(await page.inputValue('#name'), input, 'the file name is taken from the file');
      const shown = await shownFindings(page);
      const native = JSON.parse(await cliLint(fixture.dir, input));
      const nativeAlone = native.files[0].findings.map(comparable);
      const inBundle = expected.files.find((f) => f.path === input).findings.map(comparable);

      if (fixture.inputs.length === 1) {
        assert.deepEqual(shown, inBundle, `${fixture.name}/${input}: shown findings = expected.json`);
      } else {
        assert.deepEqual(shown.filter((f) => !isBundleRule(f)), inBundle.filter((f) => !isBundleRule(f)),
          `${fixture.name}/${input}: shown findings = expected.json (without the bundle rules)`);
      }
      assert.deepEqual(shown, nativeAlone, `${fixture.name}/${input}: shown findings = the CLI's on this file`);

      assert.equal(await downloadText(page, '#download-json'), await cliLint(fixture.dir, input),
        `${fixture.name}/${input}: JSON download = flink-ha lint --format json`);
      assert.equal(await downloadText(page, '#download-sarif'), await cliLint(fixture.dir, input, { format: 'sarif' }),
        `${fixture.name}/${input}: SARIF download = flink-ha lint --format sarif`);
    }
    assertNoPageErrors(page);
    await page.close();
  });
}
