/* Reads a key range of the view of kappa:processor@0.3.0-rc.1 in pages: see
 * range.h. */
#include "range.h"

#include <stdlib.h>
#include <string.h>

static processor_list_u8_t copy(const uint8_t *bytes, size_t len, size_t extra) {
    processor_list_u8_t out = {malloc(len + extra + 1), len};
    if (out.ptr == NULL) {
        abort();
    }
    if (len > 0) {
        memcpy(out.ptr, bytes, len);
    }
    return out;
}

/* Frees the rows of the current page (as processor_list_row_free would). */
static void free_rows(kappa_range_t *range) {
    for (size_t i = 0; i < range->rows.len; i++) {
        free(range->rows.ptr[i].key.ptr);
        free(range->rows.ptr[i].value.ptr);
    }
    free(range->rows.ptr);
    range->rows = (kappa_processor_view_list_row_t){NULL, 0};
    range->next = 0;
}

void kappa_range_open(kappa_range_t *range, const uint8_t *start, size_t start_len,
                      const uint8_t *end, size_t end_len, uint32_t page) {
    range->start = copy(start, start_len, 0);
    range->has_end = end != NULL;
    range->end = end != NULL ? copy(end, end_len, 0) : (processor_list_u8_t){NULL, 0};
    range->page = page > 0 ? page : 1;
    range->rows = (kappa_processor_view_list_row_t){NULL, 0};
    range->next = 0;
    range->more = true;
}

void kappa_range_prefix(kappa_range_t *range, const uint8_t *prefix, size_t len, uint32_t page) {
    /* The end: the prefix with its last byte below 255 raised by one and the
     * bytes after it dropped; none when there is no such byte. */
    size_t end_len = len;
    while (end_len > 0 && prefix[end_len - 1] == UINT8_MAX) {
        end_len--;
    }
    if (end_len == 0) {
        kappa_range_open(range, prefix, len, NULL, 0, page);
        return;
    }
    kappa_range_open(range, prefix, len, prefix, end_len, page);
    range->end.ptr[end_len - 1]++;
}

bool kappa_range_next(kappa_range_t *range, const kappa_processor_view_row_t **row) {
    if (range->next >= range->rows.len) {
        if (!range->more) {
            return false;
        }
        free_rows(range);
        kappa_processor_view_range(&range->start, range->has_end ? &range->end : NULL,
                                   range->page, &range->rows);
        /* A full page may have rows after it; a short one is the last. */
        range->more = range->rows.len >= range->page;
        if (range->more) {
            const processor_list_u8_t *last = &range->rows.ptr[range->rows.len - 1].key;
            free(range->start.ptr);
            range->start = copy(last->ptr, last->len, 1);
            range->start.ptr[range->start.len++] = 0;
        }
        if (range->rows.len == 0) {
            return false;
        }
    }
    *row = &range->rows.ptr[range->next++];
    return true;
}

void kappa_range_close(kappa_range_t *range) {
    free_rows(range);
    free(range->start.ptr);
    free(range->end.ptr);
    range->start = range->end = (processor_list_u8_t){NULL, 0};
    range->more = false;
}
