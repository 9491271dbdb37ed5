// Builds the component {{name}}.wasm from index.js with componentize-js:
//
//   npm install && node build.mjs [--aot] [OUT.wasm]
//   (or: npm run build, npm run build:aot)
//
// @bytecodealliance/componentize-js is resolved from node_modules, or from
// the package directory in $KAPPA_COMPONENTIZE_JS when that is set.
//
// --aot compiles the JavaScript ahead of time with weval (componentize-js's
// `enableAot`). The engine has no JIT inside WebAssembly; weval specialises
// its interpreter to this code, which made kappa's payments example about 1.2
// times as fast. The component is a few MB larger and takes as long to build. weval is the binary in $WEVAL_BIN when that is set (for instance
// from `cargo install weval@0.5.0`), else componentize-js downloads its
// pinned release from GitHub on first use.
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const aot = args[0] === '--aot';
if (aot) args.shift();
if (args.length > 1 || args.some((a) => a.startsWith('--'))) {
  console.error('usage: node build.mjs [--aot] [OUT.wasm]');
  process.exit(2);
}
const out = resolve(args[0] ?? join(here, '{{name}}.wasm'));

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
  enableAot: aot,
  wevalBin: aot ? process.env.WEVAL_BIN : undefined,
  // A processor must not use a console, Math.random or crypto, Date.now or
  // fetch; without them the component also imports less.
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);
console.log(`built ${out} (${component.length} bytes${aot ? ', compiled ahead of time' : ''})`);
