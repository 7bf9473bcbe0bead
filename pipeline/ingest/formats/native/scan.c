/* hostlogs line scanner: the Apache common/combined/vhost_combined/nginx main fast pattern in one pass.
 *
 * Built once into the platform-independent scan.wasm (scripts/build_scanner.py, a pinned Zig from
 * PyPI) and run by wasmtime (pipeline/ingest/formats/scanner.py): no compiler on the user's machine.
 *
 *   [VHOST[:PORT] ]CLIENT IDENT USER [DD/Mon/YYYY:HH:MM:SS +ZZZZ] "METHOD PATH[?QUERY] HTTP/x.y"
 *   STATUS BYTES[ "REFERRER" "USER_AGENT"[ "X_FORWARDED_FOR"]][ "EXTRA"]*
 *
 * It accepts a subset of the lines the format's fast regex accepts, with the same captures; the
 * timestamp exactly as polars' strptime "[%d/%b/%Y:%H:%M:%S %z]" reads it. Where it is stricter
 * (one-digit day, lower-case month, :60, a 19-digit byte count, no referrer/user agent in a
 * combined format) it refuses the line and the regex stages decide: a refusal is never a reject.
 *
 * Contract: each line [starts[i], ends[i]) holds no '\n'; the byte at ends[i] is '\n', or '\r'
 * followed by '\n' (the host appends 24 bytes of '\n' after the buffer: the last line's terminator
 * and the 8-byte loads' overrun), so every search stops within the line's terminator. Freestanding:
 * no libc; memory is the host's (alloc/reset below).
 */
#include <stddef.h>
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(#name)))

/* clang may turn loops into calls to these; a freestanding module defines them. */
void *memcpy(void *d, const void *s, size_t n) {
    unsigned char *a = d;
    const unsigned char *b = s;
    while (n--) *a++ = *b++;
    return d;
}
void *memset(void *d, int c, size_t n) {
    unsigned char *a = d;
    while (n--) *a++ = (unsigned char)c;
    return d;
}

/* A bump allocator over linear memory, reset by the host before each batch. */
extern unsigned char __heap_base;
static uintptr_t heap_top = 0;
EXPORT(reset) void wasm_reset(void) { heap_top = (uintptr_t)&__heap_base; }
EXPORT(alloc) uint32_t wasm_alloc(uint32_t n) {
    if (!heap_top) heap_top = (uintptr_t)&__heap_base;
    uintptr_t p = (heap_top + 15) & ~(uintptr_t)15;
    uintptr_t end = p + n;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
    if (end < p) return 0;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) == (size_t)-1) return 0;
    heap_top = end;
    return (uint32_t)p;
}

/* The string fields, in the order of the output views (scanner.py's FIELDS). */
enum { F_DOMAIN, F_CLIENT, F_METHOD, F_PATH, F_QUERY, F_PROTO, F_REF, F_UA, F_XFF, NF };
/* layout flags: "%v:%p " first; ' "%{Referer}i" "%{User-Agent}i"' after the bytes; with TAIL,
 * ' "%{X-Forwarded-For}i"' after the user agent (nginx's main). */
enum { VHOST = 1, TAIL = 2, XFF = 4 };
/* The fields a layout outputs: the X-Forwarded-For view only with XFF (the others need no room). */
static inline uint32_t fields_of(uint32_t flags) { return flags & XFF ? NF : NF - 1; }
#define NONE 0xFFFFFFFFu

static inline int is_digit(uint8_t c) { return (uint8_t)(c - '0') < 10; }
static inline int is_alpha(uint8_t c) { return (uint8_t)((c | 0x20) - 'a') < 26; }
/* a server name as fields.normalize_domain leaves it: [a-z0-9_][a-z0-9_-]*(\.[a-z0-9_-]+)* */
static inline int dom_first(uint8_t c) { return (uint8_t)(c - 'a') < 26 || is_digit(c) || c == '_'; }
static inline int dom_char(uint8_t c) { return dom_first(c) || c == '-'; }

/* The first of up to five byte values from p, 8 bytes per step (SWAR); '\n' must be one of them:
 * the line's terminator bounds every search. */
#define ONES 0x0101010101010101ull
#define LOW7 0x7f7f7f7f7f7f7f7full
static inline uint64_t eqb(uint64_t x, uint64_t k) {
    uint64_t y = x ^ k;
    return ~(((y & LOW7) + LOW7) | y | LOW7);
}
static inline uint32_t find(const uint8_t *b, uint32_t p, uint8_t c1, uint8_t c2, uint8_t c3, uint8_t c4,
                            uint8_t c5) {
    const uint64_t k1 = ONES * c1, k2 = ONES * c2, k3 = ONES * c3, k4 = ONES * c4, k5 = ONES * c5;
    for (;;) { /* reads at most 7 bytes past the '\n' it stops at: the host pads the buffer */
        uint64_t x;
        __builtin_memcpy(&x, b + p, 8);
        uint64_t m = eqb(x, k1) | eqb(x, k2) | eqb(x, k3) | eqb(x, k4) | eqb(x, k5);
        if (m) return p + (uint32_t)(__builtin_ctzll(m) >> 3);
        p += 8;
    }
}

/* A quoted value's body [^"\\]*(\\.[^"\\]*)* from p: its closing '"', or NONE. */
static inline uint32_t quoted(const uint8_t *b, uint32_t p) {
    for (;;) {
        p = find(b, p, '"', '\\', '\n', '"', '"');
        if (b[p] == '"') return p;
        if (b[p] == '\n' || b[p + 1] == '\n') return NONE;
        p += 2; /* an escape: backslash and any one character */
    }
}

static inline int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static inline unsigned d2(const uint8_t *p) { return (p[0] - '0') * 10u + (p[1] - '0'); }

static inline unsigned month_of(const uint8_t *p) {
#define M3(a, b, c) (((uint32_t)(a) << 16) | ((uint32_t)(b) << 8) | (uint32_t)(c))
    switch (M3(p[0], p[1], p[2])) {
    case M3('J', 'a', 'n'): return 1;
    case M3('F', 'e', 'b'): return 2;
    case M3('M', 'a', 'r'): return 3;
    case M3('A', 'p', 'r'): return 4;
    case M3('M', 'a', 'y'): return 5;
    case M3('J', 'u', 'n'): return 6;
    case M3('J', 'u', 'l'): return 7;
    case M3('A', 'u', 'g'): return 8;
    case M3('S', 'e', 'p'): return 9;
    case M3('O', 'c', 't'): return 10;
    case M3('N', 'o', 'v'): return 11;
    case M3('D', 'e', 'c'): return 12;
    default: return 0;
    }
#undef M3
}

/* "[DD/Mon/YYYY:HH:MM:SS +ZZZZ]" (28 bytes) -> epoch microseconds UTC in *out; 0 if it is not one. */
static inline int parse_ts(const uint8_t *t, int64_t *out) {
    static const uint8_t dim[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    static const uint8_t digits[] = {1, 2, 8, 9, 10, 11, 13, 14, 16, 17, 19, 20, 23, 24, 25, 26};
    if (t[0] != '[' || t[3] != '/' || t[7] != '/' || t[12] != ':' || t[15] != ':' || t[18] != ':' ||
        t[21] != ' ' || t[27] != ']' || (t[22] != '+' && t[22] != '-'))
        return 0;
    for (unsigned k = 0; k < sizeof digits; k++)
        if (!is_digit(t[digits[k]])) return 0;
    unsigned day = d2(t + 1), mon = month_of(t + 4), year = d2(t + 8) * 100u + d2(t + 10);
    unsigned hh = d2(t + 13), mi = d2(t + 16), ss = d2(t + 19), oh = d2(t + 23), om = d2(t + 25);
    if (!mon || day == 0 || day > dim[mon] || hh > 23 || mi > 59 || ss > 59 || oh > 23 || om > 59) return 0;
    if (mon == 2 && day == 29 && !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 0;
    int64_t secs = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mi * 60 + ss;
    int64_t off = oh * 3600 + om * 60;
    *out = (secs - (t[22] == '+' ? off : -off)) * 1000000;
    return 1;
}

typedef struct {
    uint32_t start[NF], len[NF]; /* len NONE: null */
    int64_t ts, bytes;           /* bytes -1: '-' */
    int32_t status;
} Line;

/* One space-free token ([^ ]+) and the space after it; its end, or NONE. */
static inline uint32_t token(const uint8_t *b, uint32_t p) {
    uint32_t e = find(b, p, ' ', '\n', ' ', ' ', ' ');
    return e == p || b[e] != ' ' ? NONE : e;
}

#define FAIL return 0
#define SET(f, a, z) (L->start[f] = (a), L->len[f] = (z) - (a))

/* The line [p, end): 1 and its fields in *L, or 0 (the regex stages decide). */
static int parse_line(const uint8_t *b, uint32_t p, uint32_t end, uint32_t flags, Line *L) {
    uint32_t q, e;
    L->len[F_DOMAIN] = L->len[F_REF] = L->len[F_UA] = L->len[F_XFF] = NONE;
    if (flags & VHOST) {
        q = p;
        if (!dom_first(b[p])) FAIL;
        for (p++; dom_char(b[p]); p++) {}
        while (b[p] == '.') {
            uint32_t r = ++p;
            while (dom_char(b[p])) p++;
            if (p == r) FAIL;
        }
        SET(F_DOMAIN, q, p);
        if (b[p] == ':') {
            uint32_t r = ++p;
            while (is_digit(b[p])) p++;
            if (p == r) FAIL;
        }
        if (b[p++] != ' ') FAIL;
    }
    if ((e = token(b, p)) == NONE) FAIL; /* client */
    SET(F_CLIENT, p, e);
    if ((e = token(b, e + 1)) == NONE) FAIL; /* ident */
    if ((e = token(b, e + 1)) == NONE) FAIL; /* user */
    p = e + 1;
    if (end - p < 30 || !parse_ts(b + p, &L->ts) || b[p + 28] != ' ' || b[p + 29] != '"') FAIL;
    p += 30;
    for (q = p; is_alpha(b[p]); p++) {}
    if (p == q || b[p] != ' ') FAIL;
    SET(F_METHOD, q, p);
    q = ++p;
    p = find(b, p, ' ', '?', '"', '\\', '\n'); /* [^ ?"\\]* */
    SET(F_PATH, q, p);
    L->len[F_QUERY] = NONE;
    L->start[F_QUERY] = 0;
    if (b[p] == '?') {
        q = ++p;
        p = find(b, p, ' ', '"', '\\', '\n', ' '); /* [^ "\\]* */
        SET(F_QUERY, q, p);
    }
    if (b[p] != ' ' || b[p + 1] != 'H' || b[p + 2] != 'T' || b[p + 3] != 'T' || b[p + 4] != 'P' || b[p + 5] != '/')
        FAIL;
    q = ++p;
    for (p += 5; is_digit(b[p]) || b[p] == '.'; p++) {}
    if (p == q + 5) FAIL;
    SET(F_PROTO, q, p);
    if (b[p] != '"' || b[p + 1] != ' ') FAIL;
    p += 2;
    if (!is_digit(b[p]) || !is_digit(b[p + 1]) || !is_digit(b[p + 2]) || b[p + 3] != ' ') FAIL;
    L->status = (b[p] - '0') * 100 + (b[p + 1] - '0') * 10 + (b[p + 2] - '0');
    p += 4;
    if (b[p] == '-') {
        L->bytes = -1;
        p++;
    } else {
        int64_t v = 0;
        for (q = p; is_digit(b[p]); p++) v = v * 10 + (b[p] - '0');
        if (p == q || p - q > 18) FAIL; /* 19+ digits may not fit: the regex stages flag it */
        L->bytes = v;
    }
    if (flags & TAIL) {
        if (b[p] != ' ' || b[p + 1] != '"' || (e = quoted(b, p + 2)) == NONE) FAIL;
        if (e - (p + 2) != 1 || b[p + 2] != '-') SET(F_REF, p + 2, e); /* "-": no referrer */
        p = e + 1;
        if (b[p] != ' ' || b[p + 1] != '"' || (e = quoted(b, p + 2)) == NONE) FAIL;
        SET(F_UA, p + 2, e);
        p = e + 1;
        if (flags & XFF) { /* required, like the user agent; "-" is a value (rows.py resolves it) */
            if (b[p] != ' ' || b[p + 1] != '"' || (e = quoted(b, p + 2)) == NONE) FAIL;
            SET(F_XFF, p + 2, e);
            p = e + 1;
        }
    }
    while (b[p] == ' ' && b[p + 1] == '"') { /* extra quoted fields: matched, never stored */
        if ((e = quoted(b, p + 2)) == NONE) FAIL;
        p = e + 1;
    }
    return p == end;
}

/* An arrow string view (16 bytes): length, then the bytes inline (<= 12) or a 4-byte prefix,
 * buffer 0 and the offset of the value (rewritten by compact). Loads may read past the value: the
 * host pads the buffer. */
static inline void view_of(const uint8_t *b, uint32_t s, uint32_t l, uint32_t *w) {
    uint64_t lo, hi;
    __builtin_memcpy(&lo, b + s, 8);
    __builtin_memcpy(&hi, b + s + 8, 8);
    w[0] = l;
    if (l <= 12) { /* keep the value's l bytes, zero the rest */
        lo = l >= 8 ? lo : lo & ((1ull << (8 * l)) - 1);
        hi = l <= 8 ? 0 : hi & ((1ull << (8 * (l - 8))) - 1);
        w[1] = (uint32_t)lo;
        w[2] = (uint32_t)(lo >> 32);
        w[3] = (uint32_t)hi;
    } else {
        w[1] = (uint32_t)lo;
        w[2] = 0;
        w[3] = s;
    }
}

/* Scan n lines of buf. ok[i]: line i scanned. The scanned lines' values are written compactly
 * (k-th scanned line at index k): ts (epoch us UTC), status, bytes (-1 for '-'), and per field f
 * (the first fields_of(flags)) its string view at views[(f * n + k) * 16] with validity bit k of
 * valid[f * ((n + 7) / 8)]; long_bytes[f]: the bytes of field f's values over 12 bytes (for
 * compact). Returns the lines scanned. */
EXPORT(scan) uint32_t scan(const uint8_t *buf, uint32_t n, const uint32_t *starts, const uint32_t *ends,
                           uint32_t flags, uint8_t *ok, int64_t *ts, int32_t *status, int64_t *bytes,
                           uint8_t *views, uint8_t *valid, uint32_t *long_bytes) {
    uint32_t k = 0, vb = (n + 7) / 8, nf = fields_of(flags);
    for (uint32_t i = 0; i < (vb * nf); i++) valid[i] = 0;
    for (uint32_t f = 0; f < nf; f++) long_bytes[f] = 0;
    for (uint32_t i = 0; i < n; i++) {
        Line L;
        ok[i] = (uint8_t)parse_line(buf, starts[i], ends[i], flags, &L);
        if (!ok[i]) continue;
        ts[k] = L.ts;
        status[k] = L.status;
        bytes[k] = L.bytes;
        for (uint32_t f = 0; f < nf; f++) {
            uint32_t *w = (uint32_t *)(views + ((size_t)f * n + k) * 16);
            if (L.len[f] == NONE) {
                w[0] = w[1] = w[2] = w[3] = 0;
            } else {
                valid[(size_t)f * vb + k / 8] |= (uint8_t)(1u << (k & 7));
                view_of(buf, L.start[f], L.len[f], w);
                long_bytes[f] += L.len[f] > 12 ? L.len[f] : 0;
            }
        }
        k++;
    }
    return k;
}

/* Copy the k scanned lines' long values (over 12 bytes: the inline ones need nothing) out of buf
 * into out, each field's values after the previous field's, and point their views there: a column's
 * bytes are then contiguous (a column operation reads one run, not a stride through the block:
 * measured 1.3-2x on hashing), and the block can be freed. One pass over the lines (a pass per field
 * reads the block eight times). nf: the fields scan wrote (fields_of its flags); long_bytes: per
 * field, the bytes of its long values (from scan). out holds their sum and 8 bytes of slack per field. */
EXPORT(compact) void compact(const uint8_t *buf, uint32_t n, uint32_t k, uint32_t nf, uint8_t *views,
                             const uint32_t *long_bytes, uint8_t *out) {
    uint32_t pos[NF], at = 0;
    if (nf > NF) return;
    for (uint32_t f = 0; f < nf; f++) {
        pos[f] = at;
        at += long_bytes[f] + 8; /* + the slack the field's last value may write into */
    }
    for (uint32_t i = 0; i < k; i++) {
        for (uint32_t f = 0; f < nf; f++) {
            uint32_t *w = (uint32_t *)(views + ((size_t)f * n + i) * 16);
            if (w[0] <= 12) continue;
            /* 8 bytes per step (a memory.copy per value costs a call): may write up to 7 bytes past
             * the value, which the field's next value overwrites, or into the field's slack */
            for (uint32_t c = 0; c < w[0]; c += 8) {
                uint64_t x;
                __builtin_memcpy(&x, buf + w[3] + c, 8);
                __builtin_memcpy(out + pos[f] + c, &x, 8);
            }
            w[3] = pos[f];
            pos[f] += w[0];
        }
    }
}

/* ---- Keyed pseudonyms: the first 8 bytes of HMAC-SHA256 (RFC 2104, FIPS 180-4) of each text, as
 * privacy/digests.py's pseudonym_values computes them (tested against Python's hmac). Here so that a
 * batch's new clients are keyed outside the GIL, in one call. */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
static const uint32_t H256[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};
static inline uint32_t ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t st[8], const uint8_t *p) {
    uint32_t w[64];
    for (unsigned i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (unsigned i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    for (unsigned i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    st[0] += a, st[1] += b, st[2] += c, st[3] += d, st[4] += e, st[5] += f, st[6] += g, st[7] += h;
}

/* The digest of a message whose first 64 bytes (one padded key block) ``st`` has absorbed, followed by
 * msg[0..n). */
static void sha256_after_block(const uint32_t from[8], const uint8_t *msg, uint32_t n, uint8_t out[32]) {
    uint32_t st[8];
    uint8_t tail[128];
    for (unsigned i = 0; i < 8; i++) st[i] = from[i];
    uint64_t bits = ((uint64_t)n + 64) * 8;
    for (; n >= 64; msg += 64, n -= 64) sha256_block(st, msg);
    uint32_t len = n + 9 <= 64 ? 64 : 128;
    for (uint32_t i = 0; i < len; i++) tail[i] = i < n ? msg[i] : 0;
    tail[n] = 0x80;
    for (unsigned i = 0; i < 8; i++) tail[len - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha256_block(st, tail);
    if (len == 128) sha256_block(st, tail + 64);
    for (unsigned i = 0; i < 8; i++)
        out[4 * i] = (uint8_t)(st[i] >> 24), out[4 * i + 1] = (uint8_t)(st[i] >> 16),
        out[4 * i + 2] = (uint8_t)(st[i] >> 8), out[4 * i + 3] = (uint8_t)st[i];
}

/* out[8i..8i+8) = HMAC-SHA256(key, data[offsets[i]..offsets[i+1]))[0..8) for i < n. A key longer than
 * a block is the host's to hash first (RFC 2104); key_len > 64 writes nothing. */
EXPORT(hmac8) void hmac8(const uint8_t *key, uint32_t key_len, const uint8_t *data, const uint32_t *offsets,
                         uint32_t n, uint8_t *out) {
    uint8_t pad[64], digest[32], mac[32];
    uint32_t inner[8], outer[8];
    if (key_len > 64) return;
    for (unsigned i = 0; i < 8; i++) inner[i] = outer[i] = H256[i];
    for (unsigned i = 0; i < 64; i++) pad[i] = (uint8_t)((i < key_len ? key[i] : 0) ^ 0x36);
    sha256_block(inner, pad);
    for (unsigned i = 0; i < 64; i++) pad[i] = (uint8_t)((i < key_len ? key[i] : 0) ^ 0x5c);
    sha256_block(outer, pad);
    for (uint32_t i = 0; i < n; i++) {
        sha256_after_block(inner, data + offsets[i], offsets[i + 1] - offsets[i], digest);
        sha256_after_block(outer, digest, 32, mac);
        for (unsigned j = 0; j < 8; j++) out[8 * i + j] = mac[j];
    }
}
