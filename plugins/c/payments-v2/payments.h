/* Version 2 of the example payments processor, in C: the same rules and
 * byte-identical rows as the Rust plugins/rust/payments-v2 (and the Python and
 * JavaScript versions beside it).
 *
 * Rows (compact JSON, fields in this order, integers only):
 * - account/<account>: {"txns":N,"total_cents":S,"flagged":F}
 * - flag/<txn>: {"account":"..","amount_cents":N,"rule":"..","timestamp":T}
 * - window/<account>: the account's recent event times, ascending: [t1,t2,..]
 *
 * Rules: large-amount when amount_cents >= large_cents (default 1000000);
 * else velocity when this is at least the max_txns-th payment (default 4) of
 * the account with an event time in (timestamp - window_ms, timestamp]
 * (default window 60000 ms).
 *
 * Payloads are accepted and refused exactly as the Rust version does
 * (serde_json into a struct with four required fields); only the error
 * messages differ.
 *
 * This file and payments.c know nothing of the bindings: the view is reached
 * through the function pointers of `pay_view`, so the rules also compile and
 * run natively. Memory: every buffer given out (a view value from `get`, a
 * message in `pay_failure`) is malloc'ed and owned by whoever receives it. */
#ifndef KAPPA_PAYMENTS_H
#define KAPPA_PAYMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The configuration given at deploy. */
typedef struct {
    uint64_t large_cents;
    uint64_t window_ms;
    uint32_t max_txns;
} pay_config;

/* The view of the running version. `get` returns whether `key` is present
 * and then sets *value (malloc'ed, freed by the caller) and *value_len. */
typedef struct {
    void *ctx;
    bool (*get)(void *ctx, const uint8_t *key, size_t key_len, uint8_t **value,
                size_t *value_len);
    void (*put)(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                size_t value_len);
} pay_view;

/* The parts of an event the rules read, borrowed from the event. */
typedef struct {
    uint64_t offset;
    int64_t timestamp;
    bool has_key;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
} pay_event;

typedef enum {
    PAY_OK = 0,
    /* The event at `offset` cannot be processed. */
    PAY_INVALID_EVENT,
    /* Anything else, such as a corrupt row of the view. */
    PAY_INTERNAL,
} pay_status;

/* Why a batch failed. `message` is malloc'ed, NUL-terminated, owned by the
 * caller. */
typedef struct {
    pay_status status;
    uint64_t offset;
    char *message;
} pay_failure;

/* Parses the `init` string (UTF-8): blank for the defaults, else a JSON
 * object of known fields (or an array of them in declaration order). On
 * failure returns false and sets *message (malloc'ed). */
bool pay_parse_config(const uint8_t *text, size_t len, pay_config *out, char **message);

/* Applies a batch of events to `view`: flags as they are raised, then each
 * touched account's row and window, in first-touch order. Returns PAY_OK, or
 * the failure (filled in `*failure`). */
pay_status pay_process_batch(const pay_config *config, const pay_view *view,
                             const pay_event *events, size_t count, pay_failure *failure);

#endif
