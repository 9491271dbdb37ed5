/* The payments v2 processor as a component: binds the `processor` world of
 * wit/processor-0.2.0, the batch in columns (through the bindings `wit-bindgen
 * c` writes), to the rules in payments.c.
 *
 * Ownership, as the canonical ABI and the bindings define it: the arguments
 * of an export belong to it and are freed here before returning; a list
 * returned by an import belongs to the caller; the strings of a returned
 * error are malloc'ed here and freed by the bindings after the host has
 * copied them. */
#include <stdlib.h>
#include <string.h>

#include "payments.h"
#include "processor.h"

/* Set by `init`: plain configuration, never state the view should hold. */
static pay_config config;
static bool configured = false;

/* A string the bindings free after the call: malloc'ed, never a literal. */
static processor_string_t owned(char *message) {
    processor_string_t s = {(uint8_t *)message, strlen(message)};
    return s;
}

static void internal(processor_error_t *err, const char *message) {
    err->tag = KAPPA_PROCESSOR_TYPES_ERROR_INTERNAL;
    processor_string_dup(&err->val.internal, message);
}

bool exports_processor_init(processor_string_t *text, processor_error_t *err) {
    char *message = NULL;
    bool ok = pay_parse_config(text->ptr, text->len, &config, &message);
    processor_string_free(text);
    if (!ok) {
        err->tag = KAPPA_PROCESSOR_TYPES_ERROR_INVALID_CONFIG;
        err->val.invalid_config = owned(message);
        return false;
    }
    configured = true;
    return true;
}

/* The view of this version, through the imported `view` interface. */
static bool view_get(void *ctx, const uint8_t *key, size_t key_len, uint8_t **value,
                     size_t *value_len) {
    (void)ctx;
    processor_list_u8_t k = {(uint8_t *)key, key_len}, v;
    if (!kappa_processor_view_get(&k, &v)) {
        return false;
    }
    /* Allocated by the bindings with malloc (through cabi_realloc): ours. */
    *value = v.ptr;
    *value_len = v.len;
    return true;
}

static void view_put(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                     size_t value_len) {
    (void)ctx;
    processor_list_u8_t k = {(uint8_t *)key, key_len}, v = {(uint8_t *)value, value_len};
    kappa_processor_view_put(&k, &v);
}

/* The events of a batch of contract 0.2.0 as the rules take them, each key
 * and value pointing into `data` (no copy); NULL, with `*message` set, when
 * the columns disagree (a host bug, never the event's fault). */
static pay_event *batch_events(const processor_event_batch_t *batch, const char **message) {
    size_t n = batch->offsets.len;
    if (batch->timestamps.len != n || batch->key_lengths.len != n ||
        batch->value_lengths.len != n) {
        *message = "malformed event batch: columns of different lengths";
        return NULL;
    }
    pay_event *in = malloc((n ? n : 1) * sizeof *in);
    if (in == NULL) {
        abort();
    }
    size_t position = 0, size = batch->data.len;
    for (size_t i = 0; i < n; i++) {
        int32_t key_length = batch->key_lengths.ptr[i];
        uint32_t value_length = batch->value_lengths.ptr[i];
        size_t key_len = key_length > 0 ? (size_t)key_length : 0;
        if (key_length < -1 || key_len > size - position ||
            value_length > size - position - key_len) {
            free(in);
            *message = "malformed event batch: a key or value reaches past the data";
            return NULL;
        }
        in[i] = (pay_event){
            .offset = batch->offsets.ptr[i],
            .timestamp = batch->timestamps.ptr[i],
            .has_key = key_length >= 0,
            .key = batch->data.ptr + position,
            .key_len = key_len,
            .value = batch->data.ptr + position + key_len,
            .value_len = value_length,
        };
        position += key_len + value_length;
    }
    return in;
}

bool exports_processor_process(processor_event_batch_t *batch, processor_error_t *err) {
    if (!configured) {
        processor_event_batch_free(batch);
        internal(err, "process called before init");
        return false;
    }
    const char *malformed = NULL;
    pay_event *in = batch_events(batch, &malformed);
    if (in == NULL) {
        processor_event_batch_free(batch);
        internal(err, malformed);
        return false;
    }
    pay_view view = {NULL, view_get, view_put};
    pay_failure failure = {PAY_OK, 0, NULL};
    pay_status status = pay_process_batch(&config, &view, in, batch->offsets.len, &failure);
    free(in);
    processor_event_batch_free(batch);
    if (status == PAY_INVALID_EVENT) {
        err->tag = KAPPA_PROCESSOR_TYPES_ERROR_INVALID_EVENT;
        err->val.invalid_event.offset = failure.offset;
        err->val.invalid_event.message = owned(failure.message);
        return false;
    }
    if (status == PAY_INTERNAL) {
        err->tag = KAPPA_PROCESSOR_TYPES_ERROR_INTERNAL;
        err->val.internal = owned(failure.message);
        return false;
    }
    return true;
}
