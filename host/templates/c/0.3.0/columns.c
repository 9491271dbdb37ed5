/* Reads a batch of kappa:processor@0.3.0 event by event: see columns.h. */
#include "columns.h"

#include <stdio.h>

bool kappa_columns_open(kappa_columns_t *columns, const processor_event_batch_t *batch) {
    columns->batch = batch;
    columns->next = 0;
    columns->position = 0;
    columns->header = 0;
    columns->error[0] = '\0';
    size_t n = batch->offsets.len;
    if (batch->timestamps.len != n || batch->key_lengths.len != n ||
        batch->value_lengths.len != n || (batch->topics.len != 0 && batch->topics.len != n)) {
        snprintf(columns->error, sizeof columns->error,
                 "malformed event batch: columns of different lengths: %zu offsets, "
                 "%zu topics, %zu timestamps, %zu key lengths, %zu value lengths",
                 n, batch->topics.len, batch->timestamps.len, batch->key_lengths.len,
                 batch->value_lengths.len);
        return false;
    }
    size_t size = batch->data.len;
    size_t position = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t key_length = batch->key_lengths.ptr[i];
        if (key_length < -1) {
            snprintf(columns->error, sizeof columns->error,
                     "malformed event batch: event %zu has key length %d", i, (int)key_length);
            return false;
        }
        size_t lengths[2] = {key_length < 0 ? 0 : (size_t)key_length,
                             batch->value_lengths.ptr[i]};
        for (int part = 0; part < 2; part++) {
            if (lengths[part] > size - position) {
                snprintf(columns->error, sizeof columns->error,
                         "malformed event batch: the %s of event %zu (%zu bytes at %zu) "
                         "reaches past the %zu bytes of data",
                         part == 0 ? "key" : "value", i, lengths[part], position, size);
                return false;
            }
            position += lengths[part];
        }
    }
    for (size_t h = 0; h < batch->headers.len; h++) {
        uint32_t event = batch->headers.ptr[h].event;
        if (event >= n || (h > 0 && event < batch->headers.ptr[h - 1].event)) {
            snprintf(columns->error, sizeof columns->error,
                     "malformed event batch: header %zu is of event %u, out of order or "
                     "past the batch's %zu events",
                     h, (unsigned)event, n);
            return false;
        }
    }
    return true;
}

bool kappa_columns_next(kappa_columns_t *columns, kappa_event_t *event) {
    const processor_event_batch_t *batch = columns->batch;
    size_t i = columns->next;
    if (i >= batch->offsets.len) {
        return false;
    }
    uint8_t *data = batch->data.ptr;
    int32_t key_length = batch->key_lengths.ptr[i];
    event->index = (uint32_t)i;
    event->topic = batch->topics.len == 0 ? 0 : batch->topics.ptr[i];
    event->partition = batch->partition;
    event->offset = batch->offsets.ptr[i];
    event->timestamp = batch->timestamps.ptr[i];
    event->has_key = key_length >= 0;
    if (event->has_key) {
        event->key = (processor_list_u8_t){data + columns->position, (size_t)key_length};
        columns->position += (size_t)key_length;
    } else {
        event->key = (processor_list_u8_t){NULL, 0};
    }
    size_t value_length = batch->value_lengths.ptr[i];
    event->value = (processor_list_u8_t){data + columns->position, value_length};
    columns->position += value_length;
    size_t first = columns->header;
    while (columns->header < batch->headers.len && batch->headers.ptr[columns->header].event == i) {
        columns->header++;
    }
    event->headers = batch->headers.ptr + first;
    event->header_count = columns->header - first;
    columns->next = i + 1;
    return true;
}
