/* {{name}}: a kappa processor plugin that counts the events of each key and
 * forgets a key that has been quiet for an hour of event time.
 *
 * For every event it adds one to the count of the event's key: the view maps
 * the key bytes to the count, as ASCII decimal. Events without a key are
 * counted per partition, under `(no key)/<partition>`. Each event also
 * (re)sets a timer named by the key for an hour after the event's timestamp
 * (kappa_processor_timers_set); when it fires, exports_processor_fire deletes
 * the count. Replace the bodies of `exports_processor_process` and
 * `exports_processor_fire` with your own logic.
 *
 * Contract 0.3.0 gives each input partition a state of its own (its shard of
 * the view), range reads of it, event-time timers, and several input topics:
 * - A batch of partition P reads and writes P's shard only, so the host may
 *   process the partitions on several threads at once. A key belongs to one
 *   partition: a batch that writes a key another partition already holds is
 *   refused. Rows under the event's key are safe; a row for events of several
 *   partitions (a global count) is kept once per partition, as
 *   `(no key)/<partition>` is here, and the reader adds them up.
 * - A timer fires right after the first event, from the one that set it on,
 *   whose timestamp brings the partition's event time (the largest timestamp
 *   so far) to the timer's moment. Timers are kept in the shard and committed
 *   with the batch, so a replay fires them exactly as the first run did.
 *   Nothing fires while no event comes.
 * - A version deployed with several `--topic`s gets every topic's events of
 *   the partition in one batch, in (timestamp, topic, offset) order;
 *   `event.topic` says which (0 for the first topic given).
 *
 * range.h reads the view by key range in pages. Every row under a prefix,
 * the batch's own writes included, in key order:
 *     kappa_range_t range;
 *     kappa_range_prefix(&range, (const uint8_t *)"w/", 2, 64);
 *     const kappa_processor_view_row_t *row;
 *     while (kappa_range_next(&range, &row)) { ... }
 *     kappa_range_close(&range);
 * kappa_processor_view_range itself returns at most `limit` rows, which
 * count against the plugin's memory limit: read a large range in pages, as
 * kappa_range_t does.
 *
 * bindings/processor.h, written by build.sh from wit/processor.wit (the
 * contract kappa:processor@{{contract}}), declares the types and functions used
 * here; columns.h reads the batch, which arrives in columns, event by event,
 * each event's topic included. The memory rules of the bindings:
 * - the arguments of an export (`config`, `batch`, `fired`) are the export's:
 *   free them before returning (processor_string_free,
 *   processor_event_batch_free, processor_list_timer_free);
 * - a list returned by an import (the value of kappa_processor_view_get) is
 *   the caller's: free it with processor_list_u8_free; what is passed to an
 *   import is only borrowed;
 * - the strings of a returned error must come from malloc (use
 *   processor_string_dup, never processor_string_set on a literal): the
 *   bindings free them once the host has copied them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "columns.h"
#include "processor.h"
#include "range.h"

/* How long a key may stay quiet before it is forgotten, in milliseconds of
 * event time. */
#define IDLE_MS (60LL * 60 * 1000)

static void fail(processor_error_t *err, uint8_t tag, const char *message) {
    err->tag = tag;
    /* invalid_config and internal are both a string at the same place. */
    processor_string_dup(tag == KAPPA_PROCESSOR_TYPES_ERROR_INTERNAL ? &err->val.internal
                                                                     : &err->val.invalid_config,
                         message);
}

/* Called once per instance, before any batch, with the configuration string
 * given at deploy (`kappa deploy --config`; empty when none). The host may
 * create an instance per thread and create one again at any time, so
 * anything that must survive belongs in the view, not in globals. Returning false with an invalid-config error
 * fails the deploy with that message. */
bool exports_processor_init(processor_string_t *config, processor_error_t *err) {
    bool blank = true;
    for (size_t i = 0; i < config->len; i++) {
        uint8_t c = config->ptr[i];
        blank = blank && (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    }
    processor_string_free(config);
    if (!blank) {
        fail(err, KAPPA_PROCESSOR_TYPES_ERROR_INVALID_CONFIG, "{{name}} takes no configuration");
        return false;
    }
    processor_string_t message;
    processor_string_set(&message, "{{name}} ready"); /* borrowed by the import */
    kappa_processor_logging_log(KAPPA_PROCESSOR_LOGGING_LEVEL_INFO, &message);
    return true;
}

/* Called with a batch of events of one partition, in columns:
 * kappa_columns_open checks them and kappa_columns_next yields each event
 * (columns.h), its topic, key, value and headers pointing into the batch. Its
 * reads and writes reach that partition's shard of the view only.
 *
 * All the writes and timer changes of a batch reach the shard together with
 * the batch's offsets, or none do: after an error (return false) or a trap
 * nothing of the batch is kept and the version stops there. A payload this
 * plugin cannot handle is refused with the invalid-event error:
 *     err->tag = KAPPA_PROCESSOR_TYPES_ERROR_INVALID_EVENT;
 *     err->val.invalid_event.topic = event.topic;
 *     err->val.invalid_event.offset = event.offset;
 *     processor_string_dup(&err->val.invalid_event.message, "why");
 *
 * Replays must rebuild the same view, so the outcome may depend only on the
 * events and the view: no clock (use event.timestamp), no randomness, no
 * files, no network. And it may not depend on where the host cuts the log
 * into batches: process the events in order, each one from the events before
 * it and the view, never from the events after it (the host may pass the
 * first events of a batch again, alone, to fire a timer right after them). */
bool exports_processor_process(processor_event_batch_t *batch, processor_error_t *err) {
    kappa_columns_t columns;
    bool ok = kappa_columns_open(&columns, batch);
    if (!ok) {
        /* Columns that disagree are a host bug, never the event's fault. */
        fail(err, KAPPA_PROCESSOR_TYPES_ERROR_INTERNAL, columns.error);
    }
    char unkeyed[32];
    int unkeyed_len = snprintf(unkeyed, sizeof unkeyed, "(no key)/%u", (unsigned)batch->partition);
    kappa_event_t event;
    while (ok && kappa_columns_next(&columns, &event)) {
        processor_list_u8_t key =
            event.has_key ? event.key : (processor_list_u8_t){(uint8_t *)unkeyed, (size_t)unkeyed_len};
        /* A write of this batch is visible to the reads that follow it, so a
         * key seen twice in one batch counts twice. */
        unsigned long long count = 0;
        processor_list_u8_t stored;
        if (kappa_processor_view_get(&key, &stored)) {
            for (size_t k = 0; ok && k < stored.len; k++) {
                uint8_t c = stored.ptr[k];
                ok = c >= '0' && c <= '9';
                count = count * 10 + (unsigned long long)(c - '0');
            }
            ok = ok && stored.len > 0;
            processor_list_u8_free(&stored);
            if (!ok) {
                fail(err, KAPPA_PROCESSOR_TYPES_ERROR_INTERNAL, "a stored count is not a number");
                break;
            }
        }
        char text[24];
        int len = snprintf(text, sizeof text, "%llu", count + 1);
        processor_list_u8_t value = {(uint8_t *)text, (size_t)len};
        kappa_processor_view_put(&key, &value);
        /* Setting a timer of the same name moves it: the key is forgotten an
         * hour after its last event. `event.index` is the event the timer
         * counts from. */
        int64_t at = event.timestamp > INT64_MAX - IDLE_MS ? INT64_MAX : event.timestamp + IDLE_MS;
        kappa_processor_timers_set(event.index, &key, at);
    }
    processor_event_batch_free(batch);
    return ok;
}

/* Called right after the event at which the timers in `fired` (each with its
 * `key` and `at`) fell due, with the partition's event time `time`. It reads
 * and writes the shard like exports_processor_process, and its writes are
 * committed with that event's batch. */
bool exports_processor_fire(uint32_t partition, int64_t time, processor_list_timer_t *fired,
                            processor_error_t *err) {
    (void)partition;
    (void)time;
    (void)err;
    for (size_t i = 0; i < fired->len; i++) {
        kappa_processor_view_delete(&fired->ptr[i].key);
    }
    processor_list_timer_free(fired);
    return true;
}
