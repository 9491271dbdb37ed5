/* Checks the range reader of the C starter of contract 0.3.0-rc.1 (range.c)
 * natively, over a kappa_processor_view_range of its own: prefix ends, and
 * pages that read every row of a prefix once, in order. Built and run by
 * tests/plugin_tooling.rs against the bindings a starter's build wrote:
 *
 *     cc -I PROJECT -I PROJECT/bindings range_test.c PROJECT/range.c
 *
 * Prints "ok" and exits 0, or names the first failed check and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "range.h"

static int failures = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* The view: sorted keys (with their lengths, as keys hold zero bytes). */
static const char *KEYS[] = {"a", "p", "p\0", "p/1", "p/2", "p/3", "p\xff", "q"};
static const size_t LENS[] = {1, 1, 2, 3, 3, 3, 2, 1};
#define NKEYS 8

/* The calls made: each start and limit. */
static char starts[16][8];
static size_t start_lens[16];
static uint32_t limits[16];
static size_t calls = 0;

static int compare(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static processor_list_u8_t dup(const char *bytes, size_t len) {
    processor_list_u8_t out = {malloc(len + 1), len};
    memcpy(out.ptr, bytes, len);
    return out;
}

void kappa_processor_view_range(processor_list_u8_t *start, processor_list_u8_t *end,
                                uint32_t limit, kappa_processor_view_list_row_t *ret) {
    if (calls < 16 && start->len <= 8) {
        memcpy(starts[calls], start->ptr, start->len);
        start_lens[calls] = start->len;
        limits[calls] = limit;
    }
    calls++;
    ret->ptr = malloc(NKEYS * sizeof *ret->ptr);
    ret->len = 0;
    for (size_t i = 0; i < NKEYS && ret->len < limit; i++) {
        const uint8_t *key = (const uint8_t *)KEYS[i];
        if (compare(key, LENS[i], start->ptr, start->len) >= 0 &&
            (end == NULL || compare(key, LENS[i], end->ptr, end->len) < 0)) {
            ret->ptr[ret->len++] =
                (kappa_processor_view_row_t){dup(KEYS[i], LENS[i]), dup(KEYS[i], LENS[i])};
        }
    }
}

static bool is(const char *bytes, size_t len, size_t call) {
    return start_lens[call] == len && memcmp(starts[call], bytes, len) == 0;
}

/* Reads the prefix in pages of `page`, checking the keys, and returns how
 * many rows came. */
static size_t read_prefix(const char *prefix, size_t len, uint32_t page) {
    kappa_range_t range;
    kappa_range_prefix(&range, (const uint8_t *)prefix, len, page);
    const kappa_processor_view_row_t *row;
    size_t n = 0;
    while (kappa_range_next(&range, &row)) {
        /* Rows of "p": KEYS[1..7), in order, value equal to key. */
        CHECK(n + 1 < NKEYS && row->key.len == LENS[n + 1]);
        CHECK(memcmp(row->key.ptr, KEYS[n + 1], row->key.len) == 0);
        CHECK(row->value.len == row->key.len);
        n++;
    }
    CHECK(!kappa_range_next(&range, &row));
    kappa_range_close(&range);
    return n;
}

int main(void) {
    calls = 0;
    CHECK(read_prefix("p", 1, 2) == 6);
    /* Three full pages, then an empty one that says there are no more. */
    CHECK(calls == 4);
    CHECK(is("p", 1, 0) && is("p\0\0", 3, 1) && is("p/2\0", 4, 2) && is("p\xff\0", 3, 3));
    CHECK(limits[0] == 2);
    /* A page shorter than asked for is the last: no call after it. */
    calls = 0;
    CHECK(read_prefix("p", 1, 4) == 6 && calls == 2);

    /* The end of a prefix: its last byte below 255 raised by one. */
    kappa_range_t range;
    kappa_range_prefix(&range, (const uint8_t *)"a\xff\xff", 3, 8);
    CHECK(range.has_end && range.end.len == 1 && range.end.ptr[0] == 'b');
    kappa_range_close(&range);
    kappa_range_prefix(&range, (const uint8_t *)"\xff\xff", 2, 8);
    CHECK(!range.has_end);
    kappa_range_close(&range);

    /* Everything, a page of 0 reading 1 row at a time. */
    calls = 0;
    kappa_range_open(&range, (const uint8_t *)"", 0, NULL, 0, 0);
    const kappa_processor_view_row_t *row;
    size_t n = 0;
    while (kappa_range_next(&range, &row)) {
        n++;
    }
    kappa_range_close(&range);
    CHECK(n == NKEYS && calls == NKEYS + 1 && limits[0] == 1);

    if (failures == 0) {
        printf("ok\n");
    }
    return failures == 0 ? 0 : 1;
}
