// The shared corpus (tests/fixtures/): which directories are lint input, and their files.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from './cli.mjs';

export const FIXTURES = join(REPO, 'tests/fixtures');

/**
 * Every fixture directory with its lint inputs (`*.yaml`, `*.yml`, sorted as
 * tests/fixtures.rs sorts them), and the excluded ones with the reason.
 */
export async function fixtureDirs() {
  const included = [];
  const excluded = [];
  for (const entry of (await readdir(FIXTURES, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory()) continue;
    const dir = join(FIXTURES, entry.name);
    const files = (await readdir(dir)).sort();
    if (files.includes('review.json')) {
      excluded.push({ name: entry.name, reason: 'an AdmissionReview (review.json), not lint input' });
      continue;
    }
    if (files.includes('inspect.json')) {
      excluded.push({ name: entry.name, reason: 'an inspection (inspect.json), not lint input' });
      continue;
    }
    included.push({ name: entry.name, dir, inputs: files.filter((f) => /\.ya?ml$/.test(f)) });
  }
  return { included, excluded };
}
