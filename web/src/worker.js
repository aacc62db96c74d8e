// The Web Worker that owns the policy core. Linting runs here so that no input, however
// large or hostile, can freeze the page: the main thread only posts bytes and waits,
// and it can terminate this worker if an answer takes too long.
//
// Built as a classic script (IIFE) with the Wasm module inlined, because the page must
// also work from file://, where Chrome refuses both module workers and fetch() of a
// .wasm file. The module is inlined deflated, then base64-encoded: base64 of raw Wasm
// defeats gzip (its 3-to-4 byte mapping hides repeats), so the page would transfer
// ~40 % more; base64 of already-compressed bytes costs almost nothing under gzip.

import { initSync, lint, lintSarif, detectFormat, rules, maxInputBytes, version, lintBatch } from 'flink-ha-wasm';
import wasmDeflatedBase64 from 'flink-ha-wasm-deflated';

function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const ready = inflate(decodeBase64(wasmDeflatedBase64)).then((module) => initSync({ module }));

const operations = {
  hello: () => ({ rules: JSON.parse(rules()), version: version(), maxInputBytes: maxInputBytes() }),
  lint: ({ name, bytes, format }) => {
    const started = performance.now();
    const json = lint(name, bytes, format);
    return { json, detected: detectFormat(name, bytes) ?? null, ms: performance.now() - started };
  },
  sarif: ({ name, bytes, format }) => ({ sarif: lintSarif(name, bytes, format) }),
  // Median-able timings: each sample is the mean of one batch of `runs` lints.
  bench: ({ name, bytes, format, runs, batches }) => {
    lintBatch(name, bytes, format, runs); // warm-up: first calls grow the Wasm memory
    const perLintMs = [];
    for (let b = 0; b < batches; b++) {
      const started = performance.now();
      lintBatch(name, bytes, format, runs);
      perLintMs.push((performance.now() - started) / runs);
    }
    return { perLintMs };
  },
};

self.onmessage = async ({ data }) => {
  const { id, op, args } = data;
  try {
    await ready; // messages keep their order: each waits on the same promise
    const operation = operations[op];
    if (!operation) throw new Error(`unknown operation ${op}`);
    self.postMessage({ id, ok: true, result: operation(args) });
  } catch (error) {
    self.postMessage({ id, ok: false, error: String(error?.message ?? error) });
  }
};
