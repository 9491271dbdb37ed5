// The payments v2 processor as a component: binds the `processor` world of
// wit/processor-0.2.0 (the batch in columns) to the rules in batch.js and
// payments.js.
// columns.js is the column reader of `kappa plugin new --lang js`.
//
// A `result<_, error>` export returns normally for `ok` and throws the error
// variant ({tag, val}) for `err`.

import { get, put } from 'kappa:processor/view@0.2.0';
import { check, Malformed } from './columns.js';
import { loopConfig, processColumns } from './batch.js';
import { Corrupt, EventFailure, Invalid, parseConfig } from './payments.js';

// Set by `init`: plain configuration, never state the view should hold.
let config = null;

const view = { get, put };

export function init(text) {
  try {
    config = loopConfig(parseConfig(text));
  } catch (e) {
    if (e instanceof Invalid) throw { tag: 'invalid-config', val: e.message };
    throw { tag: 'internal', val: String(e) };
  }
}

export function process(batch) {
  if (config === null) throw { tag: 'internal', val: 'process called before init' };
  try {
    check(batch);
    processColumns(config, view, batch);
  } catch (e) {
    if (e instanceof EventFailure) throw { tag: 'invalid-event', val: { offset: e.offset, message: e.message } };
    // Columns that disagree are a host bug, never the event's fault.
    if (e instanceof Malformed || e instanceof Corrupt) throw { tag: 'internal', val: e.message };
    throw { tag: 'internal', val: String(e && e.stack ? `${e}\n${e.stack}` : e) };
  }
}
