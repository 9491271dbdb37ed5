/* The range probe of tests/polyglot.rs in C: the plugin.c of a starter of
 * `kappa plugin new --lang c --contract 0.3.0-rc.1`, reading the view with
 * that starter's range.h. It runs the view commands its events spell, as
 * plugins/rust/range-probe does (keys and values in hex):
 *
 * - `put KEY VALUE`, `del KEY`: a write or a deletion;
 * - `range START END LIMIT`: one view.range call (`END` is `-` for none);
 * - `prefix PREFIX PAGE`: every row under PREFIX, read with
 *   kappa_range_prefix in pages of PAGE rows.
 *
 * A read writes what it returned under `out/<offset as 20 digits>`:
 * `KEY=VALUE` pairs in hex, comma-separated, in the order returned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "columns.h"
#include "processor.h"
#include "range.h"

/* A growable byte buffer; a failed malloc aborts (a trap). */
typedef struct {
    uint8_t *ptr;
    size_t len, cap;
} buffer_t;

static void push(buffer_t *b, const uint8_t *bytes, size_t len) {
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2 + 16;
        b->ptr = realloc(b->ptr, b->cap);
        if (b->ptr == NULL) {
            abort();
        }
    }
    memcpy(b->ptr + b->len, bytes, len);
    b->len += len;
}

static void push_hex(buffer_t *b, const uint8_t *bytes, size_t len) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        uint8_t pair[2] = {(uint8_t)digits[bytes[i] >> 4], (uint8_t)digits[bytes[i] & 15]};
        push(b, pair, 2);
    }
}

static void push_row(buffer_t *out, const processor_list_u8_t *key, const processor_list_u8_t *value) {
    if (out->len > 0) {
        push(out, (const uint8_t *)",", 1);
    }
    push_hex(out, key->ptr, key->len);
    push(out, (const uint8_t *)"=", 1);
    push_hex(out, value->ptr, value->len);
}

static int nibble(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The bytes a hex word spells, into `b` (emptied first); false if it is not hex. */
static bool unhex(const processor_list_u8_t *word, buffer_t *b) {
    b->len = 0;
    if (word->len % 2 != 0) {
        return false;
    }
    for (size_t i = 0; i < word->len; i += 2) {
        int high = nibble(word->ptr[i]), low = nibble(word->ptr[i + 1]);
        if (high < 0 || low < 0) {
            return false;
        }
        uint8_t byte = (uint8_t)(high * 16 + low);
        push(b, &byte, 1);
    }
    return true;
}

static bool number(const processor_list_u8_t *word, uint32_t *n) {
    uint64_t value = 0;
    for (size_t i = 0; i < word->len; i++) {
        if (word->ptr[i] < '0' || word->ptr[i] > '9' || value > UINT32_MAX) {
            return false;
        }
        value = value * 10 + (word->ptr[i] - '0');
    }
    *n = (uint32_t)value;
    return word->len > 0 && value <= UINT32_MAX;
}

static bool is(const processor_list_u8_t *word, const char *text) {
    return word->len == strlen(text) && memcmp(word->ptr, text, word->len) == 0;
}

static processor_list_u8_t list(buffer_t *b) {
    return (processor_list_u8_t){b->ptr, b->len};
}

/* Runs one command of `n` words; false when it cannot be read. `*read`
 * says whether it was a read, its rows then listed in `out`. */
static bool run(processor_list_u8_t *words, size_t n, bool *read, buffer_t *out) {
    buffer_t a = {NULL, 0, 0}, b = {NULL, 0, 0};
    bool ok = false;
    uint32_t limit = 0;
    *read = false;
    if (n == 3 && is(&words[0], "put") && unhex(&words[1], &a) && unhex(&words[2], &b)) {
        processor_list_u8_t key = list(&a), value = list(&b);
        kappa_processor_view_put(&key, &value);
        ok = true;
    } else if (n == 2 && is(&words[0], "del") && unhex(&words[1], &a)) {
        processor_list_u8_t key = list(&a);
        kappa_processor_view_delete(&key);
        ok = true;
    } else if (n == 4 && is(&words[0], "range") && unhex(&words[1], &a) &&
               (is(&words[2], "-") || unhex(&words[2], &b)) && number(&words[3], &limit)) {
        processor_list_u8_t start = list(&a), end = list(&b);
        kappa_processor_view_list_row_t rows;
        kappa_processor_view_range(&start, is(&words[2], "-") ? NULL : &end, limit, &rows);
        for (size_t i = 0; i < rows.len; i++) {
            push_row(out, &rows.ptr[i].key, &rows.ptr[i].value);
        }
        kappa_processor_view_list_row_free(&rows);
        *read = ok = true;
    } else if (n == 3 && is(&words[0], "prefix") && unhex(&words[1], &a) &&
               number(&words[2], &limit)) {
        kappa_range_t range;
        kappa_range_prefix(&range, a.ptr, a.len, limit);
        const kappa_processor_view_row_t *row;
        while (kappa_range_next(&range, &row)) {
            push_row(out, &row->key, &row->value);
        }
        kappa_range_close(&range);
        *read = ok = true;
    }
    free(a.ptr);
    free(b.ptr);
    return ok;
}

bool exports_processor_init(processor_string_t *config, processor_error_t *err) {
    (void)err;
    processor_string_free(config);
    return true;
}

bool exports_processor_process(processor_event_batch_t *batch, processor_error_t *err) {
    kappa_columns_t columns;
    bool ok = kappa_columns_open(&columns, batch);
    if (!ok) {
        err->tag = KAPPA_PROCESSOR_TYPES_ERROR_INTERNAL;
        processor_string_dup(&err->val.internal, columns.error);
    }
    kappa_event_t event;
    while (ok && kappa_columns_next(&columns, &event)) {
        /* The words of the command, pointing into the event's value. */
        processor_list_u8_t words[5];
        size_t n = 0, i = 0;
        while (i < event.value.len && n < 5) {
            while (i < event.value.len && event.value.ptr[i] == ' ') i++;
            size_t start = i;
            while (i < event.value.len && event.value.ptr[i] != ' ') i++;
            if (i > start) {
                words[n++] = (processor_list_u8_t){event.value.ptr + start, i - start};
            }
        }
        buffer_t out = {NULL, 0, 0};
        bool read = false;
        ok = i >= event.value.len && n > 0 && run(words, n, &read, &out);
        if (!ok) {
            err->tag = KAPPA_PROCESSOR_TYPES_ERROR_INVALID_EVENT;
            err->val.invalid_event.offset = event.offset;
            processor_string_dup(&err->val.invalid_event.message, "unknown command");
        } else if (read) {
            char key[32];
            int len = snprintf(key, sizeof key, "out/%020llu", (unsigned long long)event.offset);
            processor_list_u8_t k = {(uint8_t *)key, (size_t)len}, v = list(&out);
            kappa_processor_view_put(&k, &v);
        }
        free(out.ptr);
    }
    processor_event_batch_free(batch);
    return ok;
}
