// The payments v3 processor as a component: binds the `processor` world of
// wit/processor-0.3.0 (timers, `fire`, the topic of each event) to the rules
// in payments_v3.js, which reads payloads with payments v2's payments.js.
//
// A `result<_, error>` export returns normally for `ok` and throws the error
// variant ({tag, val}) for `err`.

import { get, put, delete as del, range } from 'kappa:processor/view@0.3.0';
import { set } from 'kappa:processor/timers@0.3.0';
import { check, Malformed } from './columns.js';
import { EventFailure, Internal, Invalid, expire, parseConfig, processBatch } from './payments_v3.js';

// Set by `init`: plain configuration, never state the view should hold.
let config = null;

const view = { get, put, delete: del, range };
const timers = { set };

function internal(e) {
  if (e instanceof Malformed || e instanceof Internal) return { tag: 'internal', val: e.message };
  return { tag: 'internal', val: String(e && e.stack ? `${e}\n${e.stack}` : e) };
}

export function init(text) {
  try {
    config = parseConfig(text);
  } catch (e) {
    if (e instanceof Invalid) throw { tag: 'invalid-config', val: e.message };
    throw internal(e);
  }
}

export function process(batch) {
  if (config === null) throw { tag: 'internal', val: 'process called before init' };
  try {
    // Columns that disagree are a host bug, never the event's fault.
    check(batch);
    processBatch(config, view, timers, batch);
  } catch (e) {
    if (e instanceof EventFailure) {
      throw { tag: 'invalid-event', val: { topic: e.topic, offset: e.offset, message: e.message } };
    }
    throw internal(e);
  }
}

export function fire(partition, time, fired) {
  try {
    expire(view, fired.map((timer) => timer.key));
  } catch (e) {
    throw internal(e);
  }
}
