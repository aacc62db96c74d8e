// The native CLI, the reference the browser must match byte for byte.

import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

export const REPO = resolve(import.meta.dirname, '../../..');
export const CLI = resolve(process.env.FLINK_HA_CLI ?? `${REPO}/target/debug/flink-ha`);

export async function checkCli() {
  try {
    await stat(CLI);
  } catch {
    throw new Error(`no flink-ha CLI at ${CLI}: run scripts/test-web (it builds it) or set FLINK_HA_CLI`);
  }
}

/**
 * `flink-ha lint --format FORMAT [--input-format F] FILE` in `cwd`: its stdout. Exit
 * code 1 means error findings, which is an answer here; 2 is a failure.
 */
export async function cliLint(cwd, file, { format = 'json', inputFormat = 'auto' } = {}) {
  const args = ['lint', '--format', format, '--input-format', inputFormat, file];
  try {
    const { stdout } = await promisify(execFile)(CLI, args, { cwd, maxBuffer: 64 << 20 });
    return stdout;
  } catch (error) {
    if (error.code === 1) return error.stdout;
    throw new Error(`flink-ha ${args.join(' ')} (in ${cwd}) failed: ${error.stderr || error.message}`);
  }
}

export async function cliRules() {
  const { stdout } = await promisify(execFile)(CLI, ['rules', '--format', 'json']);
  return JSON.parse(stdout);
}
