// Builds the component {{name}}.wasm from index.js with componentize-js:
//
//   npm install && node build.mjs [OUT.wasm]     (or: npm run build)
//
// @bytecodealliance/componentize-js is resolved from node_modules, or from
// the package directory in $KAPPA_COMPONENTIZE_JS when that is set.
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, '{{name}}.wasm'));

let entry;
if (process.env.KAPPA_COMPONENTIZE_JS) {
  entry = join(process.env.KAPPA_COMPONENTIZE_JS, 'src', 'componentize.js');
} else {
  try {
    entry = createRequire(import.meta.url).resolve('@bytecodealliance/componentize-js');
  } catch {
    console.error('@bytecodealliance/componentize-js is not installed: run `npm install` first');
    process.exit(1);
  }
}
const { componentize } = await import(pathToFileURL(entry).href);

const { component } = await componentize({
  sourcePath: join(here, 'index.js'),
  witPath: join(here, 'wit'),
  worldName: 'processor',
  // A processor must not use a console, Math.random or crypto, Date.now or
  // fetch; without them the component also imports less.
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);
console.log(`built ${out} (${component.length} bytes)`);
