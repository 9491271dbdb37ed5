/* The payments v2 rules (see payments.h): a JSON reader over bytes that
 * accepts and refuses exactly what serde_json does for the payload and the
 * configuration, the velocity window, and the rows of the view.
 *
 * No printf and no floats: integers are formatted by hand, so the component
 * links only the few parts of libc it uses (malloc, memcpy, memcmp). An
 * allocation that fails aborts, which the host sees as a trap.
 *
 * One file, longer than the others of the project, on purpose: like
 * payments.py and payments.js it holds the whole of the rules, reader
 * included, so that the three read side by side; its sections follow theirs. */
#include "payments.h"

#include <stdlib.h>
#include <string.h>

#define I64_MAX_MAG ((uint64_t)INT64_MAX)
/* The largest window accepted: the largest integer every language of the
 * examples represents exactly. */
#define MAX_WINDOW_MS ((UINT64_C(1) << 53) - 1)

/* ------------------------------------------------------------------------ */
/* Growable byte buffers. */

typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
} buf;

static void *xrealloc(void *p, size_t size) {
    void *q = realloc(p, size ? size : 1);
    if (q == NULL) {
        abort();
    }
    return q;
}

static void buf_reserve(buf *b, size_t more) {
    if (b->cap - b->len >= more) {
        return;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < more) {
        cap *= 2;
    }
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void buf_bytes(buf *b, const void *data, size_t len) {
    buf_reserve(b, len);
    if (len) {
        memcpy(b->p + b->len, data, len);
    }
    b->len += len;
}

static void buf_str(buf *b, const char *s) { buf_bytes(b, s, strlen(s)); }

static void buf_byte(buf *b, uint8_t c) { buf_bytes(b, &c, 1); }

static void buf_u64(buf *b, uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_reserve(b, n);
    while (n) {
        b->p[b->len++] = (uint8_t)digits[--n];
    }
}

static void buf_i64(buf *b, int64_t v) {
    if (v < 0) {
        buf_byte(b, '-');
        buf_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        buf_u64(b, (uint64_t)v);
    }
}

/* `s` as a JSON string, escaped as serde_json escapes it. */
static void buf_json_string(buf *b, const uint8_t *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    buf_byte(b, '"');
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        switch (c) {
        case '"': buf_str(b, "\\\""); break;
        case '\\': buf_str(b, "\\\\"); break;
        case '\b': buf_str(b, "\\b"); break;
        case '\f': buf_str(b, "\\f"); break;
        case '\n': buf_str(b, "\\n"); break;
        case '\r': buf_str(b, "\\r"); break;
        case '\t': buf_str(b, "\\t"); break;
        default:
            if (c < 0x20) {
                buf_str(b, "\\u00");
                buf_byte(b, (uint8_t)hex[c >> 4]);
                buf_byte(b, (uint8_t)hex[c & 15]);
            } else {
                buf_byte(b, c);
            }
        }
    }
    buf_byte(b, '"');
}

/* The contents as a NUL-terminated string; the buffer is left empty. */
static char *buf_take_cstr(buf *b) {
    buf_byte(b, 0);
    char *s = (char *)b->p;
    *b = (buf){0};
    return s;
}

static void buf_free(buf *b) {
    free(b->p);
    *b = (buf){0};
}

/* ------------------------------------------------------------------------ */
/* UTF-8, checked as Rust's str::from_utf8 checks it. */

static bool valid_utf8(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return false;
        }
        if (len - i <= need) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += need + 1;
    }
    return true;
}

static void buf_codepoint(buf *b, uint32_t cp) {
    if (cp < 0x80) {
        buf_byte(b, (uint8_t)cp);
    } else if (cp < 0x800) {
        buf_byte(b, (uint8_t)(0xC0 | (cp >> 6)));
        buf_byte(b, (uint8_t)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        buf_byte(b, (uint8_t)(0xE0 | (cp >> 12)));
        buf_byte(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3F)));
        buf_byte(b, (uint8_t)(0x80 | (cp & 0x3F)));
    } else {
        buf_byte(b, (uint8_t)(0xF0 | (cp >> 18)));
        buf_byte(b, (uint8_t)(0x80 | ((cp >> 12) & 0x3F)));
        buf_byte(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3F)));
        buf_byte(b, (uint8_t)(0x80 | (cp & 0x3F)));
    }
}

/* Whether the UTF-8 text is only what Rust's str::trim removes (the Unicode
 * White_Space property). */
static bool blank(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        uint8_t c = s[i];
        size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (len - i < n) {
            return false;
        }
        cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < n; k++) {
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        bool white = (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
                     cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
                     cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
        if (!white) {
            return false;
        }
        i += n;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* A JSON reader over bytes. Strings that are read are checked for UTF-8 and
 * lone surrogates, skipped values only for JSON grammar (as serde_json does);
 * integers keep their text so that no 64-bit value goes through a float.
 * Every function returns false after setting `err`. */

typedef struct {
    const uint8_t *b;
    size_t n;
    size_t i;
    const char *what;
    char *err;
} reader;

/* Sets the error (the first one wins) to `message` as is. */
static bool invalid(reader *r, buf *message) {
    if (r->err == NULL) {
        r->err = buf_take_cstr(message);
    } else {
        buf_free(message);
    }
    return false;
}

static bool invalid_str(reader *r, const char *message) {
    buf m = {0};
    buf_str(&m, message);
    return invalid(r, &m);
}

/* A grammar error at the current byte. */
static bool fail(reader *r, const char *message) {
    buf m = {0};
    buf_str(&m, r->what);
    buf_str(&m, " is not JSON: ");
    buf_str(&m, message);
    buf_str(&m, " at byte ");
    buf_u64(&m, r->i);
    return invalid(r, &m);
}

/* Skips whitespace; the next byte, or -1 at the end. */
static int ws(reader *r) {
    while (r->i < r->n) {
        uint8_t c = r->b[r->i];
        if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
            return c;
        }
        r->i++;
    }
    return -1;
}

static bool expect(reader *r, uint8_t byte, const char *message) {
    if (ws(r) != byte) {
        return fail(r, message);
    }
    r->i++;
    return true;
}

static bool end(reader *r) { return ws(r) == -1 || fail(r, "trailing characters"); }

static bool hex4(reader *r, size_t at, uint32_t *unit) {
    uint32_t v = 0;
    for (size_t k = at; k < at + 4; k++) {
        uint8_t h = k < r->n ? r->b[k] : 0;
        uint8_t l = h | 0x20;
        if (h >= '0' && h <= '9') {
            v = v * 16 + (uint32_t)(h - '0');
        } else if (l >= 'a' && l <= 'f') {
            v = v * 16 + (uint32_t)(l - 'a' + 10);
        } else {
            r->i = k;
            return fail(r, "invalid \\u escape");
        }
    }
    *unit = v;
    return true;
}

static bool append_raw(reader *r, buf *out, size_t from, size_t to) {
    if (!valid_utf8(r->b + from, to - from)) {
        r->i = from;
        return fail(r, "invalid UTF-8 in a string");
    }
    buf_bytes(out, r->b + from, to - from);
    return true;
}

/* Reads a string after its opening quote: decoded into `out`, or only
 * checked for grammar when `out` is NULL. */
static bool string(reader *r, buf *out) {
    size_t i = r->i, start = i;
    for (;;) {
        if (i >= r->n) {
            r->i = i;
            return fail(r, "unterminated string");
        }
        uint8_t c = r->b[i];
        if (c == '"') {
            if (out && !append_raw(r, out, start, i)) {
                return false;
            }
            r->i = i + 1;
            return true;
        }
        if (c == '\\') {
            if (out && !append_raw(r, out, start, i)) {
                return false;
            }
            uint8_t e = i + 1 < r->n ? r->b[i + 1] : 0;
            if (e == 'u') {
                uint32_t unit;
                if (!hex4(r, i + 2, &unit)) {
                    return false;
                }
                i += 6;
                if (out) {
                    uint32_t cp = unit;
                    if (unit >= 0xDC00 && unit <= 0xDFFF) {
                        r->i = i;
                        return fail(r, "lone surrogate in a string");
                    }
                    if (unit >= 0xD800 && unit <= 0xDBFF) {
                        uint32_t low = 0;
                        if (i + 1 < r->n && r->b[i] == '\\' && r->b[i + 1] == 'u') {
                            if (!hex4(r, i + 2, &low)) {
                                return false;
                            }
                        }
                        if (low < 0xDC00 || low > 0xDFFF) {
                            r->i = i;
                            return fail(r, "lone surrogate in a string");
                        }
                        cp = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        i += 6;
                    }
                    buf_codepoint(out, cp);
                }
            } else {
                const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
                const char *at = e ? strchr(from, e) : NULL;
                if (at == NULL) {
                    r->i = i;
                    return fail(r, "invalid escape");
                }
                if (out) {
                    buf_byte(out, (uint8_t)to[at - from]);
                }
                i += 2;
            }
            start = i;
            continue;
        }
        if (c < 0x20) {
            r->i = i;
            return fail(r, "control character in a string");
        }
        i++;
    }
}

static bool digit_at(const reader *r, size_t k) {
    return k < r->n && r->b[k] >= '0' && r->b[k] <= '9';
}

/* An integer literal as serde_json reads it: sign and magnitude, `ok` false
 * when it is not a 64-bit integer to serde_json (a fraction, an exponent,
 * -0, or more digits than fit). */
typedef struct {
    bool ok;
    bool negative;
    uint64_t magnitude;
} integer;

/* Reads a number (grammar checked); *value says whether it is an integer. */
static bool number(reader *r, integer *value) {
    size_t i = r->i, first;
    bool negative = false, whole = true, fits = true;
    uint64_t magnitude = 0;
    if (i < r->n && r->b[i] == '-') {
        negative = true;
        i++;
    }
    first = i;
    if (i < r->n && r->b[i] == '0') {
        i++;
    } else if (digit_at(r, i)) {
        while (digit_at(r, i)) {
            i++;
        }
    } else {
        r->i = i;
        return fail(r, "invalid number");
    }
    for (size_t k = first; k < i; k++) {
        uint64_t d = (uint64_t)(r->b[k] - '0');
        if (magnitude > (UINT64_MAX - d) / 10) {
            fits = false;
        }
        magnitude = magnitude * 10 + d;
    }
    if (i < r->n && r->b[i] == '.') {
        whole = false;
        i++;
        if (!digit_at(r, i)) {
            r->i = i;
            return fail(r, "invalid number");
        }
        while (digit_at(r, i)) {
            i++;
        }
    }
    if (i < r->n && (r->b[i] == 'e' || r->b[i] == 'E')) {
        whole = false;
        i++;
        if (i < r->n && (r->b[i] == '+' || r->b[i] == '-')) {
            i++;
        }
        if (!digit_at(r, i)) {
            r->i = i;
            return fail(r, "invalid number");
        }
        while (digit_at(r, i)) {
            i++;
        }
    }
    r->i = i;
    if (value) {
        /* serde_json reads -0 as a float. */
        value->ok = whole && fits && !(negative && magnitude == 0);
        value->negative = negative;
        value->magnitude = magnitude;
    }
    return true;
}

static bool literal(reader *r, const char *word) {
    size_t len = strlen(word);
    if (r->n - r->i < len || memcmp(r->b + r->i, word, len) != 0) {
        return fail(r, "expected a value");
    }
    r->i += len;
    return true;
}

/* Skips `"key":` inside a skipped object. */
static bool skip_key(reader *r) {
    return expect(r, '"', "expected a field name") && string(r, NULL) &&
           expect(r, ':', "expected ':'");
}

/* Skips one value of any depth, checking only its grammar (no recursion, no
 * depth limit, as serde_json ignores a value). */
static bool skip(reader *r) {
    buf closers = {0};
    bool ok = false;
    for (;;) {
        int c = ws(r);
        bool open = false;
        if (c == '{' || c == '[') {
            uint8_t close = c == '{' ? '}' : ']';
            r->i++;
            if (ws(r) == close) {
                r->i++;
            } else {
                buf_byte(&closers, close);
                open = true;
                if (close == '}' && !skip_key(r)) goto out;
            }
        } else if (c == '"') {
            r->i++;
            if (!string(r, NULL)) goto out;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!number(r, NULL)) goto out;
        } else if (c == 't') {
            if (!literal(r, "true")) goto out;
        } else if (c == 'f') {
            if (!literal(r, "false")) goto out;
        } else if (c == 'n') {
            if (!literal(r, "null")) goto out;
        } else {
            fail(r, "expected a value");
            goto out;
        }
        if (open) {
            continue;
        }
        /* A value is complete: close what it completes, or go on to the next. */
        for (;;) {
            if (closers.len == 0) {
                ok = true;
                goto out;
            }
            uint8_t top = closers.p[closers.len - 1];
            int d = ws(r);
            if (d == ',') {
                r->i++;
                if (top == '}' && !skip_key(r)) goto out;
                break;
            }
            if (d != top) {
                fail(r, "expected ',' or a closing bracket");
                goto out;
            }
            r->i++;
            closers.len--;
        }
    }
out:
    buf_free(&closers);
    return ok;
}

/* Reads any value; *value.ok is true only for an integer literal. */
static bool integer_value(reader *r, integer *value) {
    int c = ws(r);
    if (c == '-' || (c >= '0' && c <= '9')) {
        return number(r, value);
    }
    value->ok = false;
    return skip(r);
}

/* An unsigned integer field of the configuration, at most `limit`. */
static bool config_integer(reader *r, const char *name, uint64_t limit, uint64_t *out) {
    integer v;
    if (!integer_value(r, &v)) {
        return false;
    }
    buf m = {0};
    buf_str(&m, "invalid config: ");
    buf_str(&m, name);
    if (!v.ok) {
        buf_str(&m, " must be an integer");
        return invalid(r, &m);
    }
    if (v.negative || v.magnitude > limit) {
        buf_str(&m, " is out of range");
        return invalid(r, &m);
    }
    buf_free(&m);
    *out = v.magnitude;
    return true;
}

/* ------------------------------------------------------------------------ */
/* The configuration. */

static const char *const CONFIG_FIELDS[3] = {"large_cents", "window_ms", "max_txns"};
static const uint64_t CONFIG_LIMITS[3] = {UINT64_MAX, UINT64_MAX, UINT32_MAX};

static bool config_fields(reader *r, uint64_t values[3]) {
    int c = ws(r);
    if (c == '{') {
        bool seen[3] = {false, false, false};
        r->i++;
        if (ws(r) == '}') {
            r->i++;
            return true;
        }
        for (;;) {
            buf name = {0};
            int k;
            if (!expect(r, '"', "expected a field name") || !string(r, &name) ||
                !expect(r, ':', "expected ':'")) {
                buf_free(&name);
                return false;
            }
            for (k = 0; k < 3; k++) {
                if (name.len == strlen(CONFIG_FIELDS[k]) &&
                    memcmp(name.p, CONFIG_FIELDS[k], name.len) == 0) {
                    break;
                }
            }
            if (k == 3 || seen[k]) {
                buf m = {0};
                buf_str(&m, k == 3 ? "invalid config: unknown field `" : "invalid config: duplicate field `");
                buf_bytes(&m, name.p, name.len);
                buf_byte(&m, '`');
                buf_free(&name);
                return invalid(r, &m);
            }
            buf_free(&name);
            seen[k] = true;
            if (!config_integer(r, CONFIG_FIELDS[k], CONFIG_LIMITS[k], &values[k])) {
                return false;
            }
            int d = ws(r);
            if (d == '}') {
                r->i++;
                return true;
            }
            if (d != ',') {
                return fail(r, "expected ',' or '}'");
            }
            r->i++;
        }
    }
    if (c == '[') {
        r->i++;
        if (ws(r) == ']') {
            r->i++;
            return true;
        }
        for (int k = 0;; k++) {
            if (k == 3) {
                return invalid_str(r, "invalid config: at most 3 fields");
            }
            if (!config_integer(r, CONFIG_FIELDS[k], CONFIG_LIMITS[k], &values[k])) {
                return false;
            }
            int d = ws(r);
            if (d == ']') {
                r->i++;
                return true;
            }
            if (d != ',') {
                return fail(r, "expected ',' or ']'");
            }
            r->i++;
        }
    }
    return invalid_str(r, "invalid config: expected a JSON object");
}

bool pay_parse_config(const uint8_t *text, size_t len, pay_config *out, char **message) {
    uint64_t values[3] = {1000000, 60000, 4};
    if (!blank(text, len)) {
        reader r = {text, len, 0, "config", NULL};
        if (!config_fields(&r, values) || !end(&r)) {
            *message = r.err;
            return false;
        }
    }
    if (values[1] < 1 || values[1] > MAX_WINDOW_MS) {
        buf m = {0};
        buf_str(&m, "invalid config: window_ms must be between 1 and ");
        buf_u64(&m, MAX_WINDOW_MS);
        buf_str(&m, ", not ");
        buf_u64(&m, values[1]);
        *message = buf_take_cstr(&m);
        return false;
    }
    if (values[2] == 0) {
        buf m = {0};
        buf_str(&m, "invalid config: max_txns must be at least 1");
        *message = buf_take_cstr(&m);
        return false;
    }
    out->large_cents = values[0];
    out->window_ms = values[1];
    out->max_txns = (uint32_t)values[2];
    return true;
}

/* ------------------------------------------------------------------------ */
/* The payment payload. */

typedef struct {
    buf txn;
    buf account;
    uint64_t amount_cents;
} payment;

enum { F_TXN, F_ACCOUNT, F_AMOUNT, F_MERCHANT, F_COUNT };
static const char *const PAYMENT_FIELDS[F_COUNT] = {"txn", "account", "amount_cents",
                                                    "merchant"};

static bool payment_field(reader *r, int k, bool seen[F_COUNT], payment *p, buf *merchant) {
    buf m = {0};
    if (seen[k]) {
        buf_str(&m, "duplicate field `");
        buf_str(&m, PAYMENT_FIELDS[k]);
        buf_byte(&m, '`');
        return invalid(r, &m);
    }
    seen[k] = true;
    if (k == F_AMOUNT) {
        integer v;
        if (!integer_value(r, &v)) {
            return false;
        }
        if (!v.ok) {
            return invalid_str(r, "amount_cents must be an integer");
        }
        if (v.magnitude > I64_MAX_MAG + v.negative) {
            return invalid_str(r, "amount_cents is out of range");
        }
        if (v.negative) {
            buf_str(&m, "amount_cents is negative: -");
            buf_u64(&m, v.magnitude);
            return invalid(r, &m);
        }
        p->amount_cents = v.magnitude;
        return true;
    }
    if (ws(r) != '"') {
        buf_str(&m, PAYMENT_FIELDS[k]);
        buf_str(&m, " must be a string");
        return invalid(r, &m);
    }
    r->i++;
    return string(r, k == F_TXN ? &p->txn : k == F_ACCOUNT ? &p->account : merchant);
}

static bool payment_fields(reader *r, payment *p, bool seen[F_COUNT], buf *merchant) {
    if (ws(r) == '}') {
        r->i++;
        return true;
    }
    for (;;) {
        buf name = {0};
        int k;
        if (!expect(r, '"', "expected a field name") || !string(r, &name) ||
            !expect(r, ':', "expected ':'")) {
            buf_free(&name);
            return false;
        }
        for (k = 0; k < F_COUNT; k++) {
            if (name.len == strlen(PAYMENT_FIELDS[k]) &&
                memcmp(name.p, PAYMENT_FIELDS[k], name.len) == 0) {
                break;
            }
        }
        buf_free(&name);
        if (k < F_COUNT ? !payment_field(r, k, seen, p, merchant) : !skip(r)) {
            return false;
        }
        int d = ws(r);
        if (d == '}') {
            r->i++;
            return true;
        }
        if (d != ',') {
            return fail(r, "expected ',' or '}'");
        }
        r->i++;
    }
}

/* Parses a payment payload; on failure returns false with *message set. */
static bool parse_payment(const uint8_t *value, size_t len, payment *p, char **message) {
    reader r = {value, len, 0, "value", NULL};
    bool seen[F_COUNT] = {false, false, false, false};
    buf merchant = {0};
    bool ok;
    if (ws(&r) != '{') {
        ok = skip(&r) && end(&r) && invalid_str(&r, "expected a payment object");
    } else {
        r.i++;
        ok = payment_fields(&r, p, seen, &merchant) && end(&r);
        for (int k = 0; ok && k < F_COUNT; k++) {
            if (!seen[k]) {
                buf m = {0};
                buf_str(&m, "missing field `");
                buf_str(&m, PAYMENT_FIELDS[k]);
                buf_byte(&m, '`');
                ok = invalid(&r, &m);
            }
        }
    }
    buf_free(&merchant);
    if (!ok) {
        *message = r.err;
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* The velocity window: ascending event times. */

typedef struct {
    int64_t *t;
    size_t len;
    size_t cap;
} times;

/* The index of the first time greater than `x`. */
static size_t upper_bound(const times *w, __int128 x) {
    size_t lo = 0, hi = w->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((__int128)w->t[mid] <= x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void times_insert(times *w, size_t at, int64_t t) {
    if (w->len == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 8;
        w->t = xrealloc(w->t, w->cap * sizeof *w->t);
    }
    memmove(w->t + at + 1, w->t + at, (w->len - at) * sizeof *w->t);
    w->t[at] = t;
    w->len++;
}

/* Records a payment at `timestamp` and returns how many recorded payments,
 * this one included, fall in (timestamp - window_ms, timestamp]. A late time
 * is inserted in order (after equal times); then every time at or before
 * newest - window_ms is dropped. 128-bit arithmetic: exact for any time. */
static size_t record(times *w, int64_t timestamp, uint64_t window_ms) {
    size_t at = upper_bound(w, timestamp);
    times_insert(w, at, timestamp);
    size_t count = at + 1 - upper_bound(w, (__int128)timestamp - (__int128)window_ms);
    size_t stale = upper_bound(w, (__int128)w->t[w->len - 1] - (__int128)window_ms);
    memmove(w->t, w->t + stale, (w->len - stale) * sizeof *w->t);
    w->len -= stale;
    return count;
}

/* ------------------------------------------------------------------------ */
/* Rows of the view, read back exactly as they are written. */

static bool read_u64(const uint8_t *s, size_t len, size_t *i, uint64_t *out) {
    size_t start = *i;
    uint64_t v = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        uint64_t d = (uint64_t)(s[*i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
        (*i)++;
    }
    *out = v;
    return *i > start && !(s[start] == '0' && *i - start > 1);
}

static bool read_i64(const uint8_t *s, size_t len, size_t *i, int64_t *out) {
    bool negative = *i < len && s[*i] == '-';
    uint64_t mag;
    if (negative) {
        (*i)++;
    }
    if (!read_u64(s, len, i, &mag) || mag > I64_MAX_MAG + negative) {
        return false;
    }
    *out = negative ? (int64_t)((uint64_t)0 - mag) : (int64_t)mag;
    return true;
}

static bool literal_at(const uint8_t *s, size_t len, size_t *i, const char *word) {
    size_t n = strlen(word);
    if (len - *i < n || memcmp(s + *i, word, n) != 0) {
        return false;
    }
    *i += n;
    return true;
}

/* {"txns":N,"total_cents":S,"flagged":F} */
static bool parse_account_row(const uint8_t *s, size_t len, uint64_t row[3]) {
    size_t i = 0;
    return literal_at(s, len, &i, "{\"txns\":") && read_u64(s, len, &i, &row[0]) &&
           literal_at(s, len, &i, ",\"total_cents\":") && read_u64(s, len, &i, &row[1]) &&
           literal_at(s, len, &i, ",\"flagged\":") && read_u64(s, len, &i, &row[2]) &&
           literal_at(s, len, &i, "}") && i == len;
}

/* [t1,t2,..] */
static bool parse_window(const uint8_t *s, size_t len, times *w) {
    size_t i = 0;
    if (!literal_at(s, len, &i, "[")) {
        return false;
    }
    if (literal_at(s, len, &i, "]")) {
        return i == len;
    }
    for (;;) {
        int64_t t;
        if (!read_i64(s, len, &i, &t)) {
            return false;
        }
        times_insert(w, w->len, t);
        if (literal_at(s, len, &i, "]")) {
            return i == len;
        }
        if (!literal_at(s, len, &i, ",")) {
            return false;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The accounts touched by a batch, in first-touch order, with an index. */

typedef struct {
    uint8_t *id;
    size_t id_len;
    uint64_t row[3]; /* txns, total_cents, flagged */
    times window;
} account;

typedef struct {
    account *v;
    size_t len;
    size_t cap;
    size_t *slots; /* index + 1 into v; 0 is empty */
    size_t nslots;
} accounts;

static uint64_t hash(const uint8_t *s, size_t len) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h = (h ^ s[i]) * UINT64_C(0x100000001b3);
    }
    return h;
}

static size_t *slot_of(accounts *a, const uint8_t *id, size_t len) {
    size_t mask = a->nslots - 1;
    for (size_t s = (size_t)hash(id, len) & mask;; s = (s + 1) & mask) {
        size_t k = a->slots[s];
        if (k == 0 || (a->v[k - 1].id_len == len && memcmp(a->v[k - 1].id, id, len) == 0)) {
            return &a->slots[s];
        }
    }
}

static void accounts_grow(accounts *a) {
    size_t n = a->nslots ? a->nslots * 2 : 64;
    free(a->slots);
    a->slots = calloc(n, sizeof *a->slots);
    if (a->slots == NULL) {
        abort();
    }
    a->nslots = n;
    for (size_t k = 0; k < a->len; k++) {
        *slot_of(a, a->v[k].id, a->v[k].id_len) = k + 1;
    }
}

static void accounts_free(accounts *a) {
    for (size_t k = 0; k < a->len; k++) {
        free(a->v[k].id);
        free(a->v[k].window.t);
    }
    free(a->v);
    free(a->slots);
}

static char *corrupt(const buf *key) {
    buf m = {0};
    buf_str(&m, "row ");
    buf_bytes(&m, key->p, key->len);
    buf_str(&m, " of the view is corrupt");
    return buf_take_cstr(&m);
}

static void key_of(buf *key, const char *prefix, const uint8_t *id, size_t len) {
    key->len = 0;
    buf_str(key, prefix);
    buf_bytes(key, id, len);
}

/* Loads the rows of a newly touched account into `acc`; NULL or the message
 * of a corrupt row. */
static char *load_account(const pay_view *view, account *acc, buf *key) {
    uint8_t *value;
    size_t len;
    key_of(key, "account/", acc->id, acc->id_len);
    if (view->get(view->ctx, key->p, key->len, &value, &len)) {
        bool ok = parse_account_row(value, len, acc->row);
        free(value);
        if (!ok) {
            return corrupt(key);
        }
    }
    key_of(key, "window/", acc->id, acc->id_len);
    if (view->get(view->ctx, key->p, key->len, &value, &len)) {
        bool ok = parse_window(value, len, &acc->window);
        free(value);
        if (!ok) {
            return corrupt(key);
        }
    }
    return NULL;
}

/* The state of `id`, loaded on first touch; NULL after setting *message. */
static account *touch(accounts *a, const pay_view *view, const uint8_t *id, size_t len,
                      buf *key, char **message) {
    if (a->nslots == 0 || (a->len + 1) * 2 > a->nslots) {
        accounts_grow(a);
    }
    size_t *slot = slot_of(a, id, len);
    if (*slot) {
        return &a->v[*slot - 1];
    }
    if (a->len == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = xrealloc(a->v, a->cap * sizeof *a->v);
    }
    account *acc = &a->v[a->len];
    *acc = (account){0};
    acc->id = xrealloc(NULL, len);
    memcpy(acc->id, id, len);
    acc->id_len = len;
    a->len++;
    *slot = a->len;
    *message = load_account(view, acc, key);
    return *message ? NULL : acc;
}

/* ------------------------------------------------------------------------ */
/* The batch. */

static pay_status failed(pay_failure *f, pay_status status, uint64_t offset, char *message) {
    f->status = status;
    f->offset = offset;
    f->message = message;
    return status;
}

/* Applies one event; PAY_OK or the failure. */
static pay_status apply(const pay_config *config, const pay_view *view, accounts *touched,
                        const pay_event *e, buf *key, buf *value, pay_failure *failure) {
    payment p = {{0}, {0}, 0};
    char *message = NULL;
    pay_status status = PAY_OK;
    if (!parse_payment(e->value, e->value_len, &p, &message)) {
        status = failed(failure, PAY_INVALID_EVENT, e->offset, message);
        goto out;
    }
    const uint8_t *id = e->has_key ? e->key : p.account.p;
    size_t id_len = e->has_key ? e->key_len : p.account.len;
    if (e->has_key && !valid_utf8(e->key, e->key_len)) {
        buf m = {0};
        buf_str(&m, "key is not UTF-8");
        status = failed(failure, PAY_INVALID_EVENT, e->offset, buf_take_cstr(&m));
        goto out;
    }
    account *acc = touch(touched, view, id, id_len, key, &message);
    if (acc == NULL) {
        status = failed(failure, PAY_INTERNAL, e->offset, message);
        goto out;
    }
    size_t recent = record(&acc->window, e->timestamp, config->window_ms);
    const char *rule = p.amount_cents >= config->large_cents ? "large-amount"
                       : recent >= config->max_txns       ? "velocity"
                                                          : NULL;
    if (acc->row[1] > UINT64_MAX - p.amount_cents) {
        buf m = {0};
        buf_str(&m, "total_cents would overflow a 64-bit integer");
        status = failed(failure, PAY_INVALID_EVENT, e->offset, buf_take_cstr(&m));
        goto out;
    }
    acc->row[0] += 1;
    acc->row[1] += p.amount_cents;
    if (rule != NULL) {
        acc->row[2] += 1;
        value->len = 0;
        buf_str(value, "{\"account\":");
        buf_json_string(value, acc->id, acc->id_len);
        buf_str(value, ",\"amount_cents\":");
        buf_u64(value, p.amount_cents);
        buf_str(value, ",\"rule\":\"");
        buf_str(value, rule);
        buf_str(value, "\",\"timestamp\":");
        buf_i64(value, e->timestamp);
        buf_byte(value, '}');
        key_of(key, "flag/", p.txn.p, p.txn.len);
        view->put(view->ctx, key->p, key->len, value->p, value->len);
    }
out:
    buf_free(&p.txn);
    buf_free(&p.account);
    return status;
}

/* Writes the row and the window of every touched account. */
static void write_accounts(const pay_view *view, const accounts *touched, buf *key, buf *value) {
    for (size_t k = 0; k < touched->len; k++) {
        const account *acc = &touched->v[k];
        value->len = 0;
        buf_str(value, "{\"txns\":");
        buf_u64(value, acc->row[0]);
        buf_str(value, ",\"total_cents\":");
        buf_u64(value, acc->row[1]);
        buf_str(value, ",\"flagged\":");
        buf_u64(value, acc->row[2]);
        buf_byte(value, '}');
        key_of(key, "account/", acc->id, acc->id_len);
        view->put(view->ctx, key->p, key->len, value->p, value->len);
        value->len = 0;
        buf_byte(value, '[');
        for (size_t i = 0; i < acc->window.len; i++) {
            if (i) {
                buf_byte(value, ',');
            }
            buf_i64(value, acc->window.t[i]);
        }
        buf_byte(value, ']');
        key_of(key, "window/", acc->id, acc->id_len);
        view->put(view->ctx, key->p, key->len, value->p, value->len);
    }
}

pay_status pay_process_batch(const pay_config *config, const pay_view *view,
                             const pay_event *events, size_t count, pay_failure *failure) {
    accounts touched = {0};
    buf key = {0}, value = {0};
    pay_status status = PAY_OK;
    for (size_t i = 0; i < count && status == PAY_OK; i++) {
        status = apply(config, view, &touched, &events[i], &key, &value, failure);
    }
    if (status == PAY_OK) {
        write_accounts(view, &touched, &key, &value);
    }
    accounts_free(&touched);
    buf_free(&key);
    buf_free(&value);
    return status;
}
