// The payments v2 processor as a component: binds the `processor` world of
// wit/processor-0.1.0 to the rules in payments.js.
//
// A `result<_, error>` export returns normally for `ok` and throws the error
// variant ({tag, val}) for `err`.

import { get, put } from 'kappa:processor/view@0.1.0';
import { Corrupt, EventFailure, Invalid, parseConfig, processBatch } from './payments.js';

// Set by `init`: plain configuration, never state the view should hold.
let config = null;

const view = { get, put };

export function init(text) {
  try {
    config = parseConfig(text);
  } catch (e) {
    if (e instanceof Invalid) throw { tag: 'invalid-config', val: e.message };
    throw { tag: 'internal', val: String(e) };
  }
}

export function process(events) {
  if (config === null) throw { tag: 'internal', val: 'process called before init' };
  try {
    processBatch(config, view, events);
  } catch (e) {
    if (e instanceof EventFailure) throw { tag: 'invalid-event', val: { offset: e.offset, message: e.message } };
    if (e instanceof Corrupt) throw { tag: 'internal', val: e.message };
    throw { tag: 'internal', val: String(e && e.stack ? `${e}\n${e.stack}` : e) };
  }
}
