/*
 * dataset.h - dataset readers with record numbers and per-record errors
 * (prefix data_), the input side of sra-extract (issue 6).
 *
 * Owns: turning a list of input files into a stream of records (texts), each
 * with a record number, so that shard i/N of an extraction can take a
 * contiguous range of record numbers and a bad record can be named exactly.
 *
 * Input files, chosen by name:
 *   - a path ending in ".txt" is plain text, cut into documents of at most
 *     max_bytes bytes (below);
 *   - any other path is JSONL: one JSON object per line. The record's text is
 *     the string field text_field (default "text"), or, when prompt_field and
 *     response_field are both set, prompt + response concatenated with no
 *     separator, and loss_start = the prompt's length in bytes (where the
 *     response begins); the two fields must differ. An empty prompt is fine
 *     (loss_start 0), so is an empty response (loss_start == len).
 *
 * Numbering: records are numbered 0, 1, 2, ... across all files in the order
 * given (record 0 is the first record of paths[0]); a bad record still takes
 * its number, so numbers do not depend on what the caller skips. Line numbers
 * are 1-based within their file.
 *
 * JSONL rules (decisions of issue 6):
 *   - Lines are read one at a time (getline), never whole files, so files may
 *     be larger than memory; one line must fit.
 *   - A line ending "\n" or "\r\n" is stripped (CRLF files read as LF ones);
 *     the last line need not end in a newline.
 *   - A blank line (empty, or only spaces, tabs and \r) is not a record: it
 *     takes no record number, but it does count as a line.
 *   - Only top-level keys are looked at (a "text" inside a nested object does
 *     not count); with duplicate keys the first wins (as cJSON).
 *   - JSON escapes are decoded, \u surrogate pairs included; an escaped
 *     U+0000 is kept as a 0 byte in the text (len counts it). cJSON validates
 *     the line; the field is then decoded by this module's own scanner,
 *     because cJSON's strings end at U+0000 and sra_json_get_string (util.h)
 *     also matches keys inside nested objects.
 * A bad record - a line that is not valid JSON or not an object, a field
 *   that is missing or not a string, a text that is not valid UTF-8 (checked
 *   with uni_validate after unescaping), an empty text - is returned as a
 *   record with rec->error set, naming the file, line, record number and
 *   what was wrong; reading continues. The caller decides to skip it or
 *   (--strict) stop.
 *
 * Text (.txt) rules:
 *   The file is read in chunks and cut into documents of 1..max_bytes bytes;
 *   concatenating a file's documents gives back the file exactly (nothing is
 *   stripped, line endings included). A cut falls, within the first
 *   max_bytes bytes of what is left:
 *     1. just after the last "\n" (a document ends with its newline), else
 *     2. just before the last ASCII whitespace byte (space, \t, \v, \f, \r)
 *        that is not the first byte, so the next document starts with the
 *        space, as byte-level BPE tokenizers attach a space to the word that
 *        follows it, else
 *     3. at the last UTF-8 character boundary (never inside a sequence of
 *        valid UTF-8; in bytes that are not UTF-8 at all, at max_bytes).
 *   The rest of the file, once it fits, is the last document. An empty file
 *   gives no record. A document that is not valid UTF-8 is a bad record
 *   (error set), as in JSONL. rec->line is the line its first byte is on.
 *   max_bytes must be at least 4 (one UTF-8 character).
 *
 * Memory: text points into the reader; it is valid until the next data_next
 *   or data_close. The reader copies paths and options in data_open.
 *
 * Errors: data_open and data_next return negative SRA_E_* codes (util.h) for
 *   what stops the reading - a missing or unreadable file (named), a read
 *   error, bad options, out of memory - with data_errmsg giving the message.
 *   Bad records are not such errors: they come back from data_next as 1 with
 *   rec->error set. After an error data_next keeps returning it.
 *
 * Threads: a reader is used by one thread at a time; readers are independent
 *   (no global state). Reading is deterministic.
 */
#ifndef SRA_DATASET_H
#define SRA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Default .txt document limit when data_opts.max_bytes is 0. */
#define DATA_TXT_MAX_BYTES 65536

typedef struct {
    const char *text_field;     /* JSONL field holding the text; NULL = "text" */
    const char *prompt_field;   /* both set: text = prompt + response, */
    const char *response_field; /*   loss_start = strlen(prompt) */
    size_t max_bytes;           /* .txt document limit (>= 4); 0 = DATA_TXT_MAX_BYTES */
} data_opts;

typedef struct {
    int64_t index;     /* record number, 0-based, across all files */
    int file;          /* index into data_open's paths */
    int64_t line;      /* 1-based line in that file (.txt: of the first byte) */
    int64_t offset;    /* byte offset in that file of the record's line/first byte */
    const char *text;  /* len bytes of UTF-8, NUL-terminated (may hold 0 bytes:
                        * escaped U+0000); NULL when error is set.
                        * Valid until the next data_next/data_close. */
    size_t len;
    size_t loss_start; /* byte where the loss starts: 0, or the prompt's length */
    const char *error; /* NULL, or "FILE:LINE: record N: what" (bad record) */
} data_record;

typedef struct data_reader data_reader;

/* Opens a reader over paths[0..n) (n >= 1) with options o (NULL = defaults).
 * Every file is checked to be openable here, so a missing one is named
 * before any record is read. Returns 0, or < 0 with *r set to a reader
 * whose data_errmsg says why (NULL only when out of memory); data_close it
 * either way. */
int data_open(data_reader **r, const char *const *paths, int n, const data_opts *o);
/* The next record: 1 (rec filled; rec->error may be set), 0 at the end of
 * the last file, or < 0 on an I/O error (data_errmsg names the file). */
int data_next(data_reader *r, data_record *rec);
/* The message of the last error ("" when none). */
const char *data_errmsg(const data_reader *r);
/* Closes the current file and frees the reader; accepts NULL. */
void data_close(data_reader *r);

#endif /* SRA_DATASET_H */
