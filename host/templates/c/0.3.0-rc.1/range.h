/* Reads a key range of the view of kappa:processor@0.3.0-rc.1 in pages.
 *
 * kappa_processor_view_range(start, end, limit) returns at most `limit`
 * rows, and the rows it returns count against the instance's memory limit:
 * a plugin that asks for a whole large range at once fails. A
 * `kappa_range_t` reads a range page by page instead, and yields its rows
 * one by one: each page starts right after the last key of the one before
 * (that key followed by a zero byte), and a prefix ends at its last byte
 * below 255 raised by one. Written by `kappa plugin new`; it mirrors the
 * Rust crate `kappa-guest`.
 *
 *     kappa_range_t range;
 *     kappa_range_prefix(&range, (const uint8_t *)"w/", 2, 64);
 *     const kappa_processor_view_row_t *row;
 *     while (kappa_range_next(&range, &row)) { ... row->key, row->value ... }
 *     kappa_range_close(&range);
 *
 * A row is valid until the next call of kappa_range_next or
 * kappa_range_close. A page is read when the one before it is used up, so
 * the plugin's own writes of keys after the current page (and before the
 * end) are seen, and writes of keys within the current page are not. A
 * failed malloc aborts (a trap). */
#ifndef KAPPA_RANGE_H
#define KAPPA_RANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "processor.h"

typedef struct {
    processor_list_u8_t start; /* where the next page starts (malloc'ed) */
    bool has_end;
    processor_list_u8_t end; /* where the range ends, excluded (malloc'ed) */
    uint32_t page;
    kappa_processor_view_list_row_t rows; /* the current page */
    size_t next;                          /* its next row */
    bool more;                            /* whether a page may follow it */
} kappa_range_t;

/* The rows of the keys at or after `start` and before `end` (no upper bound
 * when `end` is NULL), in key order, read `page` rows at a time (at least
 * one). The bounds are copied. */
void kappa_range_open(kappa_range_t *range, const uint8_t *start, size_t start_len,
                      const uint8_t *end, size_t end_len, uint32_t page);

/* The rows of the keys that start with `prefix`, in key order. */
void kappa_range_prefix(kappa_range_t *range, const uint8_t *prefix, size_t len, uint32_t page);

/* Points `*row` at the next row and returns true; false after the last. */
bool kappa_range_next(kappa_range_t *range, const kappa_processor_view_row_t **row);

/* Frees what the range holds. */
void kappa_range_close(kappa_range_t *range);

#endif
