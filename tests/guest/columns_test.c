/* Checks the column reader of the C starter (columns.c) natively: the events
 * of a batch, with and without keys, their headers, and each kind of
 * malformed batch refused with its reason; for the reader of 0.3.0
 * (KAPPA_COLUMNS_TOPICS), each event's topic too. Built and run by
 * tests/plugin_tooling.rs against the bindings a starter's build wrote:
 *
 *     cc -I PROJECT -I PROJECT/bindings columns_test.c PROJECT/columns.c
 *
 * Prints "ok" ("ok (topics)" for the reader of 0.3.0) and exits 0, or names the first failed check and exits 1. */
#include <stdio.h>
#include <string.h>

#include "columns.h"

static int failures = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
            failures++;                                                             \
        }                                                                           \
    } while (0)

static bool bytes_are(processor_list_u8_t bytes, const char *text) {
    return bytes.len == strlen(text) && memcmp(bytes.ptr, text, bytes.len) == 0;
}

static processor_string_t str(const char *text) {
    return (processor_string_t){(uint8_t *)text, strlen(text)};
}

int main(void) {
    uint64_t offsets[] = {7, 8, 9};
    int64_t timestamps[] = {100, -5, 300};
    int32_t key_lengths[] = {1, -1, 0};
    uint32_t value_lengths[] = {2, 3, 0};
    uint8_t data[] = "kv1nokey";
    kappa_processor_types_event_header_t headers[] = {
        {0, str("h1"), {(uint8_t *)"x", 1}},
        {0, str("h2"), {(uint8_t *)"y", 1}},
        {2, str("h3"), {(uint8_t *)"z", 1}},
    };
    processor_event_batch_t batch = {
        .partition = 4,
        .offsets = {offsets, 3},
        .timestamps = {timestamps, 3},
        .key_lengths = {key_lengths, 3},
        .value_lengths = {value_lengths, 3},
        .data = {data, 8},
        .headers = {headers, 3},
    };
    kappa_columns_t columns;
    kappa_event_t event;
    CHECK(kappa_columns_open(&columns, &batch));
    CHECK(kappa_columns_next(&columns, &event));
    CHECK(event.index == 0 && event.partition == 4 && event.offset == 7);
    CHECK(event.timestamp == 100 && event.has_key && bytes_are(event.key, "k"));
    CHECK(bytes_are(event.value, "v1"));
    CHECK(event.header_count == 2 && event.headers == &headers[0]);
    CHECK(kappa_columns_next(&columns, &event));
    CHECK(event.index == 1 && event.offset == 8 && event.timestamp == -5);
    CHECK(!event.has_key && event.key.len == 0 && bytes_are(event.value, "nok"));
    CHECK(event.header_count == 0);
    CHECK(kappa_columns_next(&columns, &event));
    CHECK(event.index == 2 && event.has_key && event.key.len == 0);
    CHECK(bytes_are(event.value, "") && event.header_count == 1);
    CHECK(event.headers == &headers[2]);
    CHECK(!kappa_columns_next(&columns, &event));
    CHECK(!kappa_columns_next(&columns, &event));

    /* An empty batch has no events. */
    processor_event_batch_t empty = {.partition = 0};
    CHECK(kappa_columns_open(&columns, &empty));
    CHECK(!kappa_columns_next(&columns, &event));

    /* Malformed batches are refused before the first event, with a reason. */
    processor_event_batch_t bad = batch;
    bad.timestamps.len = 2;
    CHECK(!kappa_columns_open(&columns, &bad));
#ifdef KAPPA_COLUMNS_TOPICS
    CHECK(strstr(columns.error, "columns of different lengths: 3 offsets, 0 topics, 2 timestamps"));
#else
    CHECK(strstr(columns.error, "columns of different lengths: 3 offsets, 2 timestamps"));
#endif
    bad = batch;
    int32_t below[] = {1, -2, 0};
    bad.key_lengths.ptr = below;
    CHECK(!kappa_columns_open(&columns, &bad));
    CHECK(strstr(columns.error, "event 1 has key length -2"));
    bad = batch;
    bad.data.len = 5;
    CHECK(!kappa_columns_open(&columns, &bad));
    CHECK(strstr(columns.error, "the value of event 1 (3 bytes at 3) reaches past the 5 bytes"));
    bad = batch;
    int32_t huge[] = {1, -1, 2147483647};
    bad.key_lengths.ptr = huge;
    CHECK(!kappa_columns_open(&columns, &bad));
    CHECK(strstr(columns.error, "the key of event 2"));
    bad = batch;
    kappa_processor_types_event_header_t unordered[] = {
        {2, str("a"), {NULL, 0}},
        {0, str("b"), {NULL, 0}},
    };
    bad.headers = (kappa_processor_types_list_event_header_t){unordered, 2};
    CHECK(!kappa_columns_open(&columns, &bad));
    CHECK(strstr(columns.error, "header 1 is of event 0, out of order"));
    kappa_processor_types_event_header_t past[] = {{3, str("a"), {NULL, 0}}};
    bad.headers = (kappa_processor_types_list_event_header_t){past, 1};
    CHECK(!kappa_columns_open(&columns, &bad));
    CHECK(strstr(columns.error, "header 0 is of event 3"));

#ifdef KAPPA_COLUMNS_TOPICS
    /* Without a topic column every event is of topic 0; with one, each event
     * has its own; a topic column of another length is refused. */
    CHECK(kappa_columns_open(&columns, &batch));
    CHECK(kappa_columns_next(&columns, &event) && event.topic == 0);
    uint32_t topics[] = {1, 0, 2};
    processor_event_batch_t merged = batch;
    merged.topics = (processor_list_u32_t){topics, 3};
    CHECK(kappa_columns_open(&columns, &merged));
    CHECK(kappa_columns_next(&columns, &event) && event.topic == 1 && event.offset == 7);
    CHECK(kappa_columns_next(&columns, &event) && event.topic == 0 && event.offset == 8);
    CHECK(kappa_columns_next(&columns, &event) && event.topic == 2 && event.offset == 9);
    merged.topics.len = 2;
    CHECK(!kappa_columns_open(&columns, &merged));
    CHECK(strstr(columns.error, "3 offsets, 2 topics, 3 timestamps"));
#endif

    if (failures == 0) {
#ifdef KAPPA_COLUMNS_TOPICS
        printf("ok (topics)\n");
#else
        printf("ok\n");
#endif
    }
    return failures == 0 ? 0 : 1;
}
