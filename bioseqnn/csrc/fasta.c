/* Cutting a block of clean FASTA text into records, in C.
 *
 * bioseqnn/io/fasta.py reads FASTA in blocks of a few megabytes and, while the text is
 * plain, cuts them into records itself rather than line by line. This is that cut, the
 * same rules as its Python form (_cut_records_py there), without one Python step per
 * record: the sequences are copied without their newlines into one buffer, the header
 * lines into another (joined by '\n'), and each record's '>' offset, header end,
 * sequence end and line number into an array. Python makes its ids from the headers in
 * one decode and split, and the encoder translates the sequence buffer in one pass,
 * by bsnn_translate below where the CPU has AVX2 (bytes.translate elsewhere).
 *
 * Built into the optional extension module with the recurrent kernels (setup.py) and
 * called through ctypes; without it, the Python form does the same.
 */

#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define X86_AVX2 1
#endif

#define EXPORT __attribute__((visibility("default")))

int bsnn_isa(void); /* rnn.c: 2 AVX-512, 1 AVX2 + FMA, 0 neither (or BIOSEQNN_ISA=baseline) */

static long find_byte(const char *data, long from, long to, char c) {
    if (from >= to) return -1;
    const char *hit = memchr(data + from, c, (size_t)(to - from));
    return hit ? (long)(hit - data) : -1;
}

/* The sequence lines of one record, s[0:n] from a byte that does not start a header
 * line, copied to d without their newlines until a line that starts with '>' (the next
 * header). Returns that '>''s offset in s, or n when no header starts a line in
 * s[1:n]; *written gets the bytes copied. copy_seq below checks s[0] too. */
static long copy_seq_base(const char *s, long n, char *d, long *written) {
    long o = 0;
    for (long i = 0; i < n;) {
        const char *hit = memchr(s + i, '\n', (size_t)(n - i));
        long q = hit ? (long)(hit - s) : n;
        memcpy(d + o, s + i, (size_t)(q - i));
        o += q - i;
        i = q + 1;
        if (i < n && s[i] == '>') {
            *written = o;
            return i;
        }
    }
    *written = o;
    return n;
}

#ifdef X86_AVX2
/* copy_seq_base in 32-byte steps: each step stores a whole vector and keeps the bytes
 * before its first newline (d needs 32 bytes of room past what is kept). */
__attribute__((target("avx2"))) static long copy_seq_avx2(const char *s, long n, char *d,
                                                          long *written) {
    const __m256i newline = _mm256_set1_epi8('\n');
    long i = 0, o = 0;
    while (i + 32 <= n) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(s + i));
        _mm256_storeu_si256((__m256i *)(d + o), v);
        unsigned mask = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, newline));
        if (mask == 0) {
            i += 32;
            o += 32;
            continue;
        }
        long k = __builtin_ctz(mask);
        o += k;
        i += k + 1;
        if (i < n && s[i] == '>') {
            *written = o;
            return i;
        }
    }
    long tail;
    long at = copy_seq_base(s + i, n - i, d + o, &tail);
    *written = o + tail;
    return i + at;
}
#endif

static long copy_seq(const char *s, long n, char *d, long *written, int wide) {
    if (n > 0 && s[0] == '>') {
        *written = 0;
        return 0;
    }
#ifdef X86_AVX2
    if (wide) return copy_seq_avx2(s, n, d, written);
#endif
    (void)wide;
    return copy_seq_base(s, n, d, written);
}

/* ASCII characters other than newlines that Python's str.split treats as whitespace:
 * a sequence line holding one is left to the line-based reader. */
static int has_space(const char *s, long n) {
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1f))
            return 1;
    }
    return 0;
}

/* Records from data[pos] (a header's '>' on line ``line``) while they are clean, within
 * data[0:fine] (the plain part of the input read so far; ``size`` bytes are read, and
 * with ``last_ok`` the last record may end the input). A record is taken once its
 * successor's header line is whole, as the line-based reader reads that line before it
 * yields the record; it stops at a record with no sequence, an empty header line or
 * (with ``check_spaces``) whitespace in its sequence lines.
 *
 * seqs needs 32 bytes of room past the last sequence byte it can receive.
 *
 * state holds, in and out: the next record's '>' and its line, why the cut stopped (out:
 * 1 for want of input, 0 at a record that is not clean, 2 with ``rec`` full: call again
 * with more room), and the bytes of seqs and of heads used so far. seqs and heads need
 * room for the bytes from the first pos to fine; rec for 4 longs per record, at most
 * max_records. For record k: rec[4k] its '>', rec[4k+1] the newline ending its header,
 * rec[4k+2] where its sequence ends in seqs, rec[4k+3] its line. Returns the number of
 * records in rec.
 */
EXPORT long bsnn_fasta_cut(const char *data, long fine, long size, int last_ok,
                           int check_spaces, char *seqs, char *heads, long *rec,
                           long max_records, long *state) {
    long pos = state[0], line = state[1], used = state[3], hused = state[4];
    long n = 0;
    int stop = 1;
    int wide = bsnn_isa() >= 1;
    long nl = find_byte(data, pos, fine, '\n');
    while (nl >= 0) {
        if (n == max_records) {
            stop = 2;
            break;
        }
        long start = used, seq;
        long j = nl + 1 + copy_seq(data + nl + 1, fine - nl - 1, seqs + used, &seq, wide);
        long nl_next = -1;
        if (j < fine) {
            nl_next = find_byte(data, j, fine, '\n');
            if (nl_next < 0) break;
        } else if (last_ok) {
            j = size; /* fine == size: the last record ends the input */
        } else {
            break;
        }
        used += seq;
        if (seq == 0 || nl == pos + 1 || (check_spaces && has_space(seqs + start, seq))) {
            stop = 0;
            used = start;
            break;
        }
        if (hused) heads[hused++] = '\n';
        memcpy(heads + hused, data + pos + 1, (size_t)(nl - pos - 1));
        hused += nl - pos - 1;
        rec[4 * n] = pos;
        rec[4 * n + 1] = nl;
        rec[4 * n + 2] = used;
        rec[4 * n + 3] = line;
        n++;
        line += j - nl - seq;
        pos = j;
        nl = nl_next;
    }
    state[0] = pos;
    state[1] = line;
    state[2] = stop;
    state[3] = used;
    state[4] = hused;
    return n;
}

/* Sequences to codes: dst[i] = table[src[i]] for i < n, table being 256 bytes with 255
 * for an invalid symbol. Returns the first i whose code is 255, or -1 when there is
 * none (dst is written whole either way). */
static long translate_base(const unsigned char *src, long n, const unsigned char *table,
                           unsigned char *dst) {
    unsigned char bad = 0;
    for (long i = 0; i < n; i++) {
        unsigned char c = table[src[i]];
        dst[i] = c;
        bad |= c == 255;
    }
    if (!bad) return -1;
    return (long)((const unsigned char *)memchr(dst, 255, (size_t)n) - dst);
}

#ifdef X86_AVX2
/* translate_base 32 bytes a step, for tables that map every byte from 128 up to 255
 * (as alphabets.byte_table does): the code of byte x is row x >> 4 of the table's first
 * 128 bytes, looked up by x & 15 with one byte shuffle per row. */
__attribute__((target("avx2"))) static long translate_avx2(const unsigned char *src, long n,
                                                           const unsigned char *table,
                                                           unsigned char *dst) {
    __m256i rows[8];
    for (int h = 0; h < 8; h++)
        rows[h] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(table + 16 * h)));
    const __m256i nibble = _mm256_set1_epi8(15), invalid = _mm256_set1_epi8((char)255);
    const __m256i zero = _mm256_setzero_si256();
    __m256i bad = zero;
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i low = _mm256_and_si256(x, nibble);
        __m256i high = _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble);
        __m256i code = _mm256_cmpgt_epi8(zero, x); /* bytes from 128 up: 255 */
        for (int h = 0; h < 8; h++) {
            __m256i row = _mm256_cmpeq_epi8(high, _mm256_set1_epi8((char)h));
            code = _mm256_or_si256(code, _mm256_and_si256(row, _mm256_shuffle_epi8(rows[h], low)));
        }
        _mm256_storeu_si256((__m256i *)(dst + i), code);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi8(code, invalid));
    }
    long tail = translate_base(src + i, n - i, table, dst + i);
    if (!_mm256_testz_si256(bad, bad))
        return (long)((const unsigned char *)memchr(dst, 255, (size_t)n) - dst);
    return tail < 0 ? -1 : i + tail;
}
#endif

EXPORT long bsnn_translate(const unsigned char *src, long n, const unsigned char *table,
                           unsigned char *dst) {
#ifdef X86_AVX2
    int high_invalid = 1;
    for (int c = 128; c < 256; c++) high_invalid &= table[c] == 255;
    if (high_invalid && bsnn_isa() >= 1) return translate_avx2(src, n, table, dst);
#endif
    return translate_base(src, n, table, dst);
}
