/*
 * json_test.h - small cJSON helpers the C tests share (header-only).
 */
#ifndef SRA_JSON_TEST_H
#define SRA_JSON_TEST_H

#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>

#include "util.h"

/* The integers of a JSON array into out (cap of them); returns the count,
 * or -1 when a is not an array of numbers or has more than cap. */
static inline int json_ids(const cJSON *a, int32_t *out, int cap) {
    if (!cJSON_IsArray(a)) return -1;
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (n >= cap || !cJSON_IsNumber(x)) return -1;
        out[n++] = (int32_t)x->valuedouble;
    }
    return n;
}

/* A whole JSON file parsed, or NULL (missing, unreadable or not JSON). */
static inline cJSON *read_json(const char *path) {
    size_t n;
    char *s = sra_read_file(path, &n);
    cJSON *j = s ? cJSON_ParseWithLength(s, n) : NULL;
    free(s);
    return j;
}

#endif
