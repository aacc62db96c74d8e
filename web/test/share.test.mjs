// Share links carry no secrets: the values of sensitive keys are masked before the
// input goes into the link. Plain Node, no browser and no packages needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeShare, encodeShare, MASK, maskSecrets } from '../src/share.js';

const PEM_BODY = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj';

test('values of sensitive keys are masked, in every format, and the rest is kept', () => {
  const input = [
    'kubernetes.cluster-id: orders-etl',
    's3.secret-key: hunter2-SECRET',
    's3.access-key: AKIAEXAMPLE # not a secret to Flink',
    'security.ssl.rest.keystore-password: "pw-123"',
    'fs.azure.account.key.myaccount.blob.core.windows.net: azure-key-value',
    'metrics.reporter.dghttp.apikey: dd-api-key',
    's3.secret-key: -----BEGIN PRIVATE KEY-----',
    `  ${PEM_BODY}`,
    '-----END PRIVATE KEY-----',
    'fs:',
    '  azure:',
    '    account.key.other: nested-azure-key',
    'some.cert: |',
    '  -----BEGIN PRIVATE KEY-----',
    `  ${PEM_BODY}`,
    '  -----END PRIVATE KEY-----',
    'data:',
    '  flink-conf.yaml: |',
    '    high-availability.type: kubernetes',
    '    s3.secret-key: in-a-configmap',
    '  password: |',
    '    block-secret-line',
    'rest.port: 8081',
    '',
  ].join('\n');
  const { text, masked } = maskSecrets(input);
  for (const secret of ['hunter2', 'pw-123', 'azure-key-value', 'dd-api-key', PEM_BODY, 'PRIVATE KEY',
    'nested-azure-key', 'in-a-configmap', 'block-secret-line']) {
    assert.ok(!text.includes(secret), `${secret} left in:\n${text}`);
  }
  for (const kept of ['kubernetes.cluster-id: orders-etl', 's3.access-key: AKIAEXAMPLE', 's3.secret-key: ' + MASK,
    'high-availability.type: kubernetes', 'rest.port: 8081', 'fs:', '  azure:', 'data:']) {
    assert.ok(text.includes(kept), `${kept} missing:\n${text}`);
  }
  assert.equal(text.split('\n').length, input.split('\n').length, 'line numbers stay');
  assert.ok(masked >= 9, `masked ${masked}`);
  assert.deepEqual(maskSecrets('a: b\n'), { text: 'a: b\n', masked: 0 });
});

test('a share link of a config with a secret does not carry it', async () => {
  const fragment = await encodeShare({ text: 's3.secret-key: hunter2-SECRET\n', name: 'flink-conf.yaml', format: 'flink-conf' });
  const shared = await decodeShare(fragment);
  assert.equal(shared.text, `s3.secret-key: ${MASK}\n`);
});
