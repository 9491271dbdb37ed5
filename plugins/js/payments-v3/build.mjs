// Builds the component with componentize-js's JavaScript API:
//   node build.mjs [--aot] OUT.wasm
// (NODE_PATH or a node_modules above must hold @bytecodealliance/componentize-js.)
//
// --aot compiles the JavaScript ahead of time with weval (componentize-js's
// `enableAot`): SpiderMonkey has no JIT inside Wasm, and weval specialises
// its interpreter to this module's code, about 1.2 times the events per
// second of the payments example (BENCHMARKS.md, section 2). weval is the
// binary in $WEVAL_BIN when that is set, else componentize-js downloads its
// pinned release from GitHub on first use.
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const aot = args[0] === '--aot';
const out = aot ? args[1] : args[0];
if (!out || args.length !== (aot ? 2 : 1)) {
  console.error('usage: node build.mjs [--aot] OUT.wasm');
  process.exit(2);
}
// Resolved from KAPPA_COMPONENTIZE_JS (the package directory) when set.
const from = process.env.KAPPA_COMPONENTIZE_JS
  ? join(process.env.KAPPA_COMPONENTIZE_JS, 'src', 'componentize.js')
  : createRequire(import.meta.url).resolve('@bytecodealliance/componentize-js');
const { componentize } = await import(from);
// The module imports payments v2's payments.js by relative path, and the
// engine reads modules only below the entry module's directory (with --aot,
// weval gives it no other): so the build reads a copy of both directories
// under one entry module that re-exports app.js.
const staged = await mkdtemp(join(tmpdir(), 'payments-v3-js-'));
await cp(here, join(staged, 'payments-v3'), { recursive: true, dereference: true });
await cp(join(here, '..', 'payments-v2', 'payments.js'), join(staged, 'payments-v2', 'payments.js'));
await writeFile(join(staged, 'index.js'), "export * from './payments-v3/app.js';\n");
let component;
try {
  ({ component } = await componentize({
    sourcePath: join(staged, 'index.js'),
    witPath: join(here, 'wit'),
    worldName: 'processor',
    enableAot: aot,
    wevalBin: aot ? process.env.WEVAL_BIN : undefined,
    // No console, no Math.random/crypto, no Date.now, no fetch: a processor
    // must not use them, and without them the component imports less.
    disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
  }));
} finally {
  await rm(staged, { recursive: true, force: true });
}
await writeFile(out, component);
