// Unit tests of the page's pure modules, in Node (no browser needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Text } from '@codemirror/state';
import { columnToOffset, findingRange } from '../src/positions.js';
import { decodeShare, encodeShare, MAX_FRAGMENT_CHARS } from '../src/share.js';
import { MAX_HIGHLIGHTED_DEPTH, nestsTooDeep } from '../src/depth.js';

test('columns count characters, not UTF-16 units', () => {
  assert.equal(columnToOffset('abc', 1), 0);
  assert.equal(columnToOffset('abc', 3), 2);
  // U+1F600 is two UTF-16 units: column 3 (the `x`) is at offset 3.
  assert.equal(columnToOffset('\u{1F600}:x', 3), 3);
  assert.equal(columnToOffset('ab', 99), 2, 'clamped to the line end');
});

test('finding ranges run from the column to the end of the content', () => {
  const doc = Text.of(['a: 1', 'high-availability.type: kubernets   ', '']);
  assert.deepEqual(findingRange(doc, 2, 25), { from: 5 + 24, to: 5 + 33 });
  assert.deepEqual(findingRange(doc, 1, 1), { from: 0, to: 4 });
  assert.deepEqual(findingRange(doc, 3, 1), { from: 42, to: 42 }, 'empty line: a point');
  assert.equal(findingRange(doc, undefined, undefined), null, 'no position: not in the editor');
  assert.deepEqual(findingRange(doc, 9, 1), { from: 42, to: 42 }, 'past the end: the last line');
});

test('share links round-trip text, name and format', async () => {
  const text = 'kubernetes.cluster-id: Orders_ETL\n# ünïcödé \u{1F600} & = # ?\n'.repeat(50);
  const fragment = await encodeShare({ text, name: 'flink-conf.yaml', format: 'flink-conf' });
  assert.match(fragment, /^v1&/);
  assert.ok(fragment.length < text.length / 4, 'repetitive text compresses');
  assert.deepEqual(await decodeShare(`#${fragment}`), { text, name: 'flink-conf.yaml', format: 'flink-conf' });
});

test('share links refuse what they cannot carry and report damage', async () => {
  assert.equal(await decodeShare('#rule-HA109'), null, 'an anchor is not a share link');
  const fragment = await encodeShare({ text: 'a: b\n'.repeat(1000), name: 'c.yaml', format: 'auto' });
  await assert.rejects(decodeShare(fragment.slice(0, -8)), /damaged/);
  const random = crypto.getRandomValues(new Uint8Array(MAX_FRAGMENT_CHARS));
  const incompressible = Array.from(random, (b) => String.fromCharCode(33 + (b % 90))).join('');
  assert.equal(await encodeShare({ text: incompressible, name: 'c.yaml', format: 'auto' }), null);
});

test('highlighting goes off past the depth bound, by brackets or by indentation', () => {
  const brackets = (n) => Text.of([`a: ${'['.repeat(n)}${']'.repeat(n)}`]);
  assert.equal(nestsTooDeep(brackets(MAX_HIGHLIGHTED_DEPTH)), false);
  assert.equal(nestsTooDeep(brackets(MAX_HIGHLIGHTED_DEPTH + 1)), true);
  // Closed brackets do not add up across a document.
  assert.equal(nestsTooDeep(Text.of(Array(500).fill('k: [[1], {a: 2}]'))), false);
  const indented = (levels) => Text.of(Array.from({ length: levels }, (_, i) => `${'  '.repeat(i)}k${i}:`));
  assert.equal(nestsTooDeep(indented(MAX_HIGHLIGHTED_DEPTH)), false);
  assert.equal(nestsTooDeep(indented(MAX_HIGHLIGHTED_DEPTH + 2)), true);
  assert.equal(nestsTooDeep(Text.of(['high-availability.type: kubernetes'])), false);
});
