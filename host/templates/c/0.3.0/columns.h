/* Reads a batch of kappa:processor@0.3.0 event by event.
 *
 * Contract 0.3.0 hands `process` its events in columns (`event-batch`): one
 * list per field, and the keys and values of all events back to back in
 * `data`, as 0.2.0 does, with one more column: `topics`, the index of each
 * event's topic among the version's topics (0 for the first given at
 * deploy). `kappa_columns_open` checks that the columns agree, and
 * `kappa_columns_next` then yields one `kappa_event_t` per event, its key,
 * value and headers borrowed from the batch (nothing is copied: they live as
 * long as the batch, until processor_event_batch_free). Written by
 * `kappa plugin new`; it mirrors the Rust crate `kappa-guest`.
 *
 *     kappa_columns_t columns;
 *     if (!kappa_columns_open(&columns, batch)) { ... columns.error ... }
 *     kappa_event_t event;
 *     while (kappa_columns_next(&columns, &event)) { ... }
 */
#ifndef KAPPA_COLUMNS_H
#define KAPPA_COLUMNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "processor.h"

/* This reader gives each event's topic (`kappa_event_t.topic`). */
#define KAPPA_COLUMNS_TOPICS 1

/* One event of a batch. */
typedef struct {
    uint32_t index;     /* index in the batch (the `event` of its headers) */
    uint32_t topic;     /* index of its topic among the version's topics */
    uint32_t partition;
    uint64_t offset;
    int64_t timestamp;  /* event time, ms since the Unix epoch */
    bool has_key;       /* false when the event has no key (not an empty one) */
    processor_list_u8_t key;   /* in the batch's data; {NULL, 0} without a key */
    processor_list_u8_t value; /* in the batch's data */
    /* The event's headers, in the order the producer gave them: `headers`
     * points into the batch's header list (name, value), `header_count` of
     * them. */
    const kappa_processor_types_event_header_t *headers;
    size_t header_count;
} kappa_event_t;

/* A reader of one batch's columns. */
typedef struct {
    const processor_event_batch_t *batch;
    size_t next;     /* index of the next event */
    size_t position; /* where its key starts in data */
    size_t header;   /* its first header in headers */
    /* Why `kappa_columns_open` refused the batch (NUL-terminated). */
    char error[160];
} kappa_columns_t;

/* Starts reading `batch`. Returns false, with the reason in `columns->error`,
 * when the columns disagree: lists of different lengths (the topic column may
 * also be empty: every event of topic 0), a key length below
 * -1, a key or value reaching past `data`, headers out of event order or of
 * an event the batch lacks. That is a host bug, never the event's fault. */
bool kappa_columns_open(kappa_columns_t *columns, const processor_event_batch_t *batch);

/* Fills `event` with the next event and returns true; false after the last. */
bool kappa_columns_next(kappa_columns_t *columns, kappa_event_t *event);

#endif
