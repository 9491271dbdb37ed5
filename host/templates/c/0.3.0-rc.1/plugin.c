/* {{name}}: a kappa processor plugin that counts the events of each key.
 *
 * For every event it adds one to the count of the event's key: the view maps
 * the key bytes to the count, as ASCII decimal. Events without a key are
 * counted per partition, under `(no key)/<partition>`. Replace the body of
 * `exports_processor_process` with your own logic.
 *
 * Contract 0.3.0-rc.1 gives each input partition a state of its own: a batch
 * of partition P reads and writes P's shard of the view only, so the host may
 * process the partitions on several threads at once. A key belongs to one
 * partition: a batch that writes a key another partition already holds is
 * refused. The events of one key are all in one partition, so rows under the
 * event's key are safe; a row for events of several partitions (a global
 * count) is kept once per partition, as `(no key)/<partition>` is here, and
 * the reader adds them up.
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
 * contract kappa:processor@{{contract}}, a release candidate), declares the types and functions
 * used here; columns.h reads the batch, which arrives in columns, event by
 * event. The memory rules of the bindings:
 * - the arguments of an export (`config`, `batch`) are the export's: free
 *   them before returning (processor_string_free, processor_event_batch_free);
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

/* Called with a batch of events of one partition, in offset order, in
 * columns: kappa_columns_open checks them and kappa_columns_next yields each
 * event (columns.h), its key, value and headers pointing into the batch. Its
 * reads and writes reach that partition's shard of the view only.
 *
 * All the writes of a batch reach the view together with the batch's
 * offsets, or none do: after an error (return false) or a trap nothing of the
 * batch is kept and the version stops there. A payload this plugin cannot
 * handle is refused with the invalid-event error:
 *     err->tag = KAPPA_PROCESSOR_TYPES_ERROR_INVALID_EVENT;
 *     err->val.invalid_event.offset = event.offset;
 *     processor_string_dup(&err->val.invalid_event.message, "why");
 *
 * Replays must rebuild the same view, so the outcome may depend only on the
 * events and the view: no clock (use event.timestamp), no randomness, no
 * files, no network. */
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
    }
    processor_event_batch_free(batch);
    return ok;
}
