/*
 * unicode.c - UTF-8 coding and Oniguruma's Unicode classes over utf8proc.
 *
 * Classes come from utf8proc_category() (Unicode 15.0), plus the code points
 * assigned in Unicode 15.1 and 16.0 (utf8proc says Cn for them) from
 * kDelta16, so that the classes are those of the Oniguruma inside HF
 * tokenizers (6.9.10, Unicode 16.0). kDelta16 was measured, not typed: every
 * code point was run through HF tokenizers 0.22's Split(\p{L}) etc. and
 * compared with utf8proc; the differences are exactly these ranges, all Cn
 * in utf8proc, and no character changed class between 15.0 and 16.0.
 */
#include "unicode.h"

#include <string.h>
#include <utf8proc.h>

/* ============================================================== UTF-8 */

int uni_decode(const char *s, size_t n, int32_t *cp) {
    const unsigned char *p = (const unsigned char *)s;
    if (n == 0) return 0;
    unsigned b0 = p[0];
    if (b0 < 0x80) { *cp = (int32_t)b0; return 1; }
    /* The second byte's valid range depends on the lead byte: that is what
     * excludes overlongs (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and
     * values past U+10FFFF (F4 90..BF); C0, C1 and F5..FF never lead. */
    unsigned lo = 0x80, hi = 0xBF, len;
    if (b0 >= 0xC2 && b0 <= 0xDF) len = 2;
    else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        if (b0 == 0xE0) lo = 0xA0;
        else if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        if (b0 == 0xF0) lo = 0x90;
        else if (b0 == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    int32_t c = (int32_t)(b0 & (0x7F >> len));
    for (unsigned i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (int32_t)(p[i] & 0x3F);
    }
    *cp = c;
    return (int)len;
}

int uni_encode(int32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    uint32_t c = (uint32_t)cp;
    if (c < 0x80) { o[0] = (unsigned char)c; return 1; }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

size_t uni_validate(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* Text is mostly ASCII: test 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (!((unsigned char)s[i] & 0x80)) { i++; continue; }
        int32_t cp;
        int l = uni_decode(s + i, n - i, &cp);
        if (!l) return i;
        i += (size_t)l;
    }
    return n;
}

/* ============================================================ classes */

#define C_L (UNI_L | UNI_W)
#define C_N (UNI_N | UNI_W)
#define C_P UNI_P
#define C_S UNI_S
#define C_Z UNI_SPACE
/* '_' is the only ASCII Pc, hence the only ASCII punctuation in \w. */
const uint8_t uni_ascii_class[128] = {
    /* 00-0F: controls; \t \n \v \f \r are White_Space */
    0, 0, 0, 0, 0, 0, 0, 0, 0, C_Z, C_Z, C_Z, C_Z, C_Z, 0, 0,
    /* 10-1F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /*  space !    "    #    $    %    &    '    (    )    *    +    ,    -    .    / */
    C_Z, C_P, C_P, C_P, C_S, C_P, C_P, C_P, C_P, C_P, C_P, C_S, C_P, C_P, C_P, C_P,
    /* 0-9, :    ;    <    =    >    ? */
    C_N, C_N, C_N, C_N, C_N, C_N, C_N, C_N, C_N, C_N, C_P, C_P, C_S, C_S, C_S, C_P,
    /* @, A-O */
    C_P, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L,
    /* P-Z, [    \    ]    ^    _ */
    C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_P, C_P, C_P, C_S, C_P | UNI_W,
    /* `, a-o */
    C_S, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L,
    /* p-z, {    |    }    ~    DEL */
    C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_P, C_S, C_P, C_S, 0,
};

/* Code points assigned in Unicode 15.1 and 16.0 (see the top comment). */
static const struct { int32_t lo, hi; uint8_t cls; } kDelta16[] = {
    {0x00897, 0x00897, UNI_M | UNI_W}, {0x01B4E, 0x01B4F, UNI_P}, {0x01B7F, 0x01B7F, UNI_P},
    {0x01C89, 0x01C8A, UNI_L | UNI_W}, {0x02427, 0x02429, UNI_S}, {0x02FFC, 0x02FFF, UNI_S},
    {0x031E4, 0x031E5, UNI_S}, {0x031EF, 0x031EF, UNI_S}, {0x0A7CB, 0x0A7CD, UNI_L | UNI_W},
    {0x0A7DA, 0x0A7DC, UNI_L | UNI_W}, {0x105C0, 0x105F3, UNI_L | UNI_W}, {0x10D40, 0x10D49, UNI_N | UNI_W},
    {0x10D4A, 0x10D65, UNI_L | UNI_W}, {0x10D69, 0x10D6D, UNI_M | UNI_W}, {0x10D6E, 0x10D6E, UNI_P},
    {0x10D6F, 0x10D85, UNI_L | UNI_W}, {0x10D8E, 0x10D8F, UNI_S}, {0x10EC2, 0x10EC4, UNI_L | UNI_W},
    {0x10EFC, 0x10EFC, UNI_M | UNI_W}, {0x11380, 0x11389, UNI_L | UNI_W}, {0x1138B, 0x1138B, UNI_L | UNI_W},
    {0x1138E, 0x1138E, UNI_L | UNI_W}, {0x11390, 0x113B5, UNI_L | UNI_W}, {0x113B7, 0x113B7, UNI_L | UNI_W},
    {0x113B8, 0x113C0, UNI_M | UNI_W}, {0x113C2, 0x113C2, UNI_M | UNI_W}, {0x113C5, 0x113C5, UNI_M | UNI_W},
    {0x113C7, 0x113CA, UNI_M | UNI_W}, {0x113CC, 0x113D0, UNI_M | UNI_W}, {0x113D1, 0x113D1, UNI_L | UNI_W},
    {0x113D2, 0x113D2, UNI_M | UNI_W}, {0x113D3, 0x113D3, UNI_L | UNI_W}, {0x113D4, 0x113D5, UNI_P},
    {0x113D7, 0x113D8, UNI_P}, {0x113E1, 0x113E2, UNI_M | UNI_W}, {0x116D0, 0x116E3, UNI_N | UNI_W},
    {0x11BC0, 0x11BE0, UNI_L | UNI_W}, {0x11BE1, 0x11BE1, UNI_P}, {0x11BF0, 0x11BF9, UNI_N | UNI_W},
    {0x11F5A, 0x11F5A, UNI_M | UNI_W}, {0x13460, 0x143FA, UNI_L | UNI_W}, {0x16100, 0x1611D, UNI_L | UNI_W},
    {0x1611E, 0x1612F, UNI_M | UNI_W}, {0x16130, 0x16139, UNI_N | UNI_W}, {0x16D40, 0x16D6C, UNI_L | UNI_W},
    {0x16D6D, 0x16D6F, UNI_P}, {0x16D70, 0x16D79, UNI_N | UNI_W}, {0x18CFF, 0x18CFF, UNI_L | UNI_W},
    {0x1CC00, 0x1CCEF, UNI_S}, {0x1CCF0, 0x1CCF9, UNI_N | UNI_W}, {0x1CD00, 0x1CEB3, UNI_S},
    {0x1E5D0, 0x1E5ED, UNI_L | UNI_W}, {0x1E5EE, 0x1E5EF, UNI_M | UNI_W}, {0x1E5F0, 0x1E5F0, UNI_L | UNI_W},
    {0x1E5F1, 0x1E5FA, UNI_N | UNI_W}, {0x1E5FF, 0x1E5FF, UNI_P}, {0x1F8B2, 0x1F8BB, UNI_S},
    {0x1F8C0, 0x1F8C1, UNI_S}, {0x1FA89, 0x1FA89, UNI_S}, {0x1FA8F, 0x1FA8F, UNI_S},
    {0x1FABE, 0x1FABE, UNI_S}, {0x1FAC6, 0x1FAC6, UNI_S}, {0x1FADC, 0x1FADC, UNI_S},
    {0x1FADF, 0x1FADF, UNI_S}, {0x1FAE9, 0x1FAE9, UNI_S}, {0x1FBCB, 0x1FBEF, UNI_S},
    {0x2EBF0, 0x2EE5D, UNI_L | UNI_W}, 
};

static unsigned delta16(int32_t cp) {
    size_t a = 0, b = sizeof kDelta16 / sizeof kDelta16[0];
    while (a < b) {
        size_t m = (a + b) / 2;
        if (cp < kDelta16[m].lo) b = m;
        else if (cp > kDelta16[m].hi) a = m + 1;
        else return kDelta16[m].cls;
    }
    return 0;
}

/* White_Space beyond ASCII (PropList.txt; unchanged since Unicode 6.3). */
static int space_nonascii(int32_t cp) {
    if (cp < 0x2000) return cp == 0x85 || cp == 0xA0 || cp == 0x1680;
    return cp <= 0x200A || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

unsigned uni_class(int32_t cp) {
    if (cp >= 0 && cp < 128) return uni_ascii_class[cp];
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return UNI_L | UNI_W;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        return UNI_M | UNI_W;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL:
        return UNI_N | UNI_W;
    case UTF8PROC_CATEGORY_NO:
        /* Oniguruma's Latin-1 ctype table makes these bare-\w characters
         * although Unicode's word class ([\w]) does not have them. */
        return (cp == 0xB2 || cp == 0xB3 || cp == 0xB9 || (cp >= 0xBC && cp <= 0xBE)) ? UNI_N | UNI_W1
                                                                                        : UNI_N;
    case UTF8PROC_CATEGORY_PC:
        return UNI_P | UNI_W;
    case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO:
        return UNI_P;
    case UTF8PROC_CATEGORY_SO:
        /* The So letters that are Other_Alphabetic, hence in \w. */
        if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) ||
            (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189))
            return UNI_S | UNI_W;
        return UNI_S;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
        return UNI_S;
    case UTF8PROC_CATEGORY_CN:
        return delta16(cp);
    default: /* Z*, Cc, Cf, Co, Cs: only White_Space matters */
        return space_nonascii(cp) ? UNI_SPACE : 0;
    }
}

int uni_is_letter(int32_t cp) { return (uni_class(cp) & UNI_L) != 0; }
int uni_is_number(int32_t cp) { return (uni_class(cp) & UNI_N) != 0; }
int uni_is_mark(int32_t cp) { return (uni_class(cp) & UNI_M) != 0; }
int uni_is_punct(int32_t cp) { return (uni_class(cp) & UNI_P) != 0; }
int uni_is_symbol(int32_t cp) { return (uni_class(cp) & UNI_S) != 0; }
int uni_is_space(int32_t cp) { return (uni_class(cp) & UNI_SPACE) != 0; }
int uni_is_word(int32_t cp) { return (uni_class(cp) & (UNI_W | UNI_W1)) != 0; }
int uni_is_word_uts18(int32_t cp) {
    return (uni_class(cp) & UNI_W) != 0 || cp == 0x200C || cp == 0x200D;
}
