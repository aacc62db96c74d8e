// Bundles the browser linter into dist/: index.html, app.js (one classic script that
// carries the worker and the Wasm module inside it) and app.css.
//
// Why one classic script: the page must work from file://, where Chrome refuses module
// scripts, module workers and fetch() of a .wasm file. So the wasm-bindgen output is
// inlined into the worker as base64, the worker is bundled as an IIFE and inlined into
// the page's script as a string, and the page starts it from a Blob URL.
//
// Input: the wasm-bindgen output directory (FLINK_HA_WEB_PKG, default
// ../target/flink-ha-web/pkg), made by scripts/build-web.

import { build } from 'esbuild';
import { copyFile, mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync, gzipSync } from 'node:zlib';

const webDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(webDir, '..');
const pkgDir = resolve(process.env.FLINK_HA_WEB_PKG ?? join(repoRoot, 'target/flink-ha-web/pkg'));
const distDir = join(webDir, 'dist');
const glue = join(pkgDir, 'flink_ha_web.js');
const wasm = join(pkgDir, 'flink_ha_web_bg.wasm');

async function mustExist(path, what) {
  try {
    await stat(path);
  } catch {
    throw new Error(`${what} not found at ${path}: run scripts/build-web (it builds the Wasm module first)`);
  }
}

/** The examples of examples.json with their text, read from the repository now. */
async function loadExamples() {
  const { examples } = JSON.parse(await readFile(join(webDir, 'examples.json'), 'utf8'));
  return Promise.all(
    examples.map(async ({ title, file, initial = false }) => ({
      title, initial, name: basename(file), text: await readFile(join(repoRoot, file), 'utf8'),
    })),
  );
}

const common = {
  bundle: true,
  minify: true,
  format: 'iife',
  // Browsers of the last ~3 years: CompressionStream('deflate-raw') sets the floor.
  target: ['chrome105', 'firefox113', 'safari16.4'],
  legalComments: 'none',
  logLevel: 'warning',
  // wasm-bindgen's glue names import.meta.url only for the fetch() path, which initSync
  // never takes; defining it keeps esbuild from warning about import.meta in an IIFE.
  define: { 'import.meta.url': '"about:blank"' },
};

/** Virtual modules: the Wasm glue and bytes, the worker's source, the examples. */
function virtualModules(examples) {
  const virtual = {
    // Deflated, then base64 (see src/worker.js for why).
    'flink-ha-wasm-deflated': async () =>
      `export default ${JSON.stringify(deflateRawSync(await readFile(wasm), { level: 9 }).toString('base64'))};`,
    'flink-ha-worker-source': async () => `export default ${JSON.stringify(await bundleWorker())};`,
    'flink-ha-examples': async () => `export default ${JSON.stringify(examples)};`,
  };
  return {
    name: 'flink-ha-virtual',
    setup(b) {
      b.onResolve({ filter: /^flink-ha-wasm$/ }, () => ({ path: glue }));
      b.onResolve({ filter: /^flink-ha-(wasm-deflated|worker-source|examples)$/ }, (args) => ({ path: args.path, namespace: 'flink-ha' }));
      b.onLoad({ filter: /.*/, namespace: 'flink-ha' }, async (args) => ({ contents: await virtual[args.path](), loader: 'js' }));
    },
  };
}

async function bundleWorker() {
  const result = await build({
    ...common,
    entryPoints: [join(webDir, 'src/worker.js')],
    write: false,
    plugins: [virtualModules([])],
  });
  return result.outputFiles[0].text;
}

async function main() {
  await mustExist(glue, 'the wasm-bindgen glue');
  await mustExist(wasm, 'the Wasm module');
  const examples = await loadExamples();
  await rm(distDir, { recursive: true, force: true });
  await mkdir(distDir, { recursive: true });
  await build({
    ...common,
    entryPoints: { app: join(webDir, 'src/main.js') },
    outdir: distDir,
    plugins: [virtualModules(examples)],
  });
  await copyFile(join(webDir, 'index.html'), join(distDir, 'index.html'));

  let raw = 0;
  let gz = 0;
  for (const file of (await readdir(distDir)).sort()) {
    const bytes = await readFile(join(distDir, file));
    const zipped = gzipSync(bytes, { level: 9 }).length;
    raw += bytes.length;
    gz += zipped;
    console.log(`  dist/${file.padEnd(12)} ${String(bytes.length).padStart(9)} B  ${String(zipped).padStart(8)} B gzipped`);
  }
  console.log(`  total ${String(raw).padStart(19)} B  ${String(gz).padStart(8)} B gzipped`);
}

main().catch((error) => {
  console.error(`build-web: ${error.message}`);
  process.exit(1);
});
