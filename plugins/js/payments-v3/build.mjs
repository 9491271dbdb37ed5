// Builds the component with componentize-js's JavaScript API:
//   node build.mjs OUT.wasm
// (NODE_PATH or a node_modules above must hold @bytecodealliance/componentize-js.)
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT.wasm');
  process.exit(2);
}
// Resolved from KAPPA_COMPONENTIZE_JS (the package directory) when set.
const from = process.env.KAPPA_COMPONENTIZE_JS
  ? join(process.env.KAPPA_COMPONENTIZE_JS, 'src', 'componentize.js')
  : createRequire(import.meta.url).resolve('@bytecodealliance/componentize-js');
const { componentize } = await import(from);
const { component } = await componentize({
  sourcePath: join(here, 'app.js'),
  witPath: join(here, 'wit'),
  worldName: 'processor',
  // No console, no Math.random/crypto, no Date.now, no fetch: a processor
  // must not use them, and without them the component imports less.
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);
