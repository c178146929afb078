/*
 * fuzz_tok_load - libFuzzer target: arbitrary bytes as tokenizer.json.
 * Loading must either fail with a message or produce a tokenizer that can
 * encode and decode; never crash, leak or trip a sanitizer.
 *   make fuzz FUZZ_SECONDS=600
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tok_tokenizer *t;
    if (tok_load_json(&t, (const char *)data, size, "fuzz") == 0) {
        tok_session *s = tok_session_new(t);
        static const char text[] = "Hello world, <s> 123 caf\xc3\xa9 \xf0\x9f\x99\x82\n\tend";
        tok_encoding e;
        if (s && tok_encode(s, text, sizeof text - 1, 1, &e) == 0) {
            for (size_t i = 0; i < e.n; i++)
                if (e.start[i] > e.end[i] || e.end[i] > sizeof text - 1) abort();
            const char *out;
            size_t n;
            tok_decode(s, e.ids, e.n, 0, &out, &n);
        }
        char buf[64];
        for (int32_t id = 0; id < 8 && id < tok_vocab_size(t); id++) tok_token_bytes(t, id, buf, sizeof buf);
        tok_session_free(s);
    } else if (!tok_errmsg(t)[0]) {
        abort(); /* a failure must say why */
    }
    tok_free(t);
    return 0;
}
