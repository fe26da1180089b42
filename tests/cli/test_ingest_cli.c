/*
 * Stage: cli (src/cli/cmd_ingest.c, src/source/file.c, src/sink/).  What `patternd ingest` makes
 * of its input and says about it: gzip inputs known by their magic bytes (files and standard
 * input, several members, cut short, corrupt, a bomb read in bounded memory), the exit status when
 * every record was rejected, --max-rejects, --rejects - (standard output), and the workflow id in
 * the rejects file.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "support.h"

/* A new temporary file holding len bytes of data; its path, malloc'd. */
static char *temp_file(const char *data, size_t len)
{
    char *path = strdup("/tmp/pd-cli-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    pdt_write_file(path, data, len);
    return path;
}

static char *temp_text(const char *text)
{
    return temp_file(text, strlen(text));
}

/* data compressed as one gzip member (deflateInit2 with gzip's header); malloc'd. */
static char *gzip_bytes(const char *data, size_t len, size_t *out_len)
{
    z_stream z = {0};
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len);
    char *out = malloc(cap);
    z.next_in = (unsigned char *)data;
    z.avail_in = (uInt)len;
    z.next_out = (unsigned char *)out;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* The file at path, gzip-compressed into a new temporary file with no .gz in its name. */
static char *gzip_file(const char *path, size_t *gz_len)
{
    size_t len, n;
    char *data = pdt_read_file(path, &len);
    cr_assert_not_null(data);
    char *gz = gzip_bytes(data, len, &n);
    char *out = temp_file(gz, n);
    if (gz_len != NULL)
        *gz_len = n;
    free(gz);
    free(data);
    return out;
}

/*
 * Runs a shell command line; returns its standard output and puts its standard error in *err
 * (both malloc'd).
 */
static char *run(const char *cmdline, int *status, char **err)
{
    char *err_path = temp_text("");
    size_t n = strlen(cmdline) + strlen(err_path) + 64;
    char *cmd = malloc(n);
    snprintf(cmd, n, "{ %s ; } 2>'%s'", cmdline, err_path);
    char *out = pdt_run(cmd, status);
    *err = pdt_read_file(err_path, NULL);
    cr_assert_not_null(*err);
    unlink(err_path);
    free(err_path);
    free(cmd);
    return out;
}

/* `patternd ingest --quiet --db url <args>`, standard error in *err. */
static char *ingest(const char *url, const char *args, int *status, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' ingest --quiet --db '%s' %s", pdt_binary(), url, args);
    return run(cmd, status, err);
}

/* The summary's string under key (the last line of ingest's output), or NULL; malloc'd. */
static char *summary_string(const char *out, const char *key)
{
    const char *last = out;
    for (const char *p = out; p[0] != '\0' && p[1] != '\0'; p++) {
        if (*p == '\n')
            last = p + 1;
    }
    json_t *o = json_loads(last, JSON_DISABLE_EOF_CHECK, NULL);
    cr_assert_not_null(o, "the last line is not JSON: %s", out);
    const char *v = json_string_value(json_object_get(o, key));
    char *copy = v != NULL ? strdup(v) : NULL;
    json_decref(o);
    return copy;
}

/* --- gzip ------------------------------------------------------------------------------------ */

Test(ingest_gzip, gzip_file_is_read_by_its_magic_bytes_not_its_name)
{
    char *url = pdt_new_migrated_database();
    char *gz = gzip_file(pdt_data("sample-600.ndjson"), NULL);
    char args[4096];
    snprintf(args, sizeof(args), "--workers 2 --batch 50 '%s'", gz);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_str_empty(err);
    cr_assert_eq(pdt_summary_value(out, "total_workflows"), 600, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 0, "%s", out);
    pdt_assert_patterns_match(url, pdt_data("sample-600.patterns.ndjson"));
    unlink(gz);
    free(gz);
    free(out);
    free(err);
    free(url);
}

Test(ingest_gzip, gzip_on_standard_input_is_inflated_from_a_pipe_and_from_a_file)
{
    char *url = pdt_new_migrated_database();
    char *gz = gzip_file(pdt_data("sample-600.ndjson"), NULL);
    char cmd[8192];
    int status;
    char *err;
    /* A pipe: the magic bytes may come in a read of their own. */
    snprintf(cmd, sizeof(cmd), "cat '%s' | '%s' ingest --quiet --db '%s' -", gz, pdt_binary(), url);
    char *out = run(cmd, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 0, "%s", out);
    free(out);
    free(err);
    /* Standard input redirected from the file, no argument: the same records, now duplicates. */
    snprintf(cmd, sizeof(cmd), "'%s' ingest --quiet --db '%s' < '%s'", pdt_binary(), url, gz);
    out = run(cmd, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "duplicates"), 600, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 0, "%s", out);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows"), 600);
    unlink(gz);
    free(gz);
    free(out);
    free(err);
    free(url);
}

Test(ingest_gzip, concatenated_members_and_plain_files_mix_in_one_run)
{
    char *url = pdt_new_migrated_database();
    size_t len;
    char *data = pdt_read_file(pdt_data("sample-600.ndjson"), &len);
    /* The first 200 lines as two gzip members one after the other, the rest as plain text. */
    char *cut1 = data, *cut2 = data;
    for (int i = 0; i < 100; i++)
        cut1 = strchr(cut1, '\n') + 1;
    cut2 = cut1;
    for (int i = 0; i < 100; i++)
        cut2 = strchr(cut2, '\n') + 1;
    size_t n1, n2;
    char *m1 = gzip_bytes(data, (size_t)(cut1 - data), &n1);
    char *m2 = gzip_bytes(cut1, (size_t)(cut2 - cut1), &n2);
    char *both = malloc(n1 + n2);
    memcpy(both, m1, n1);
    memcpy(both + n1, m2, n2);
    char *gz = temp_file(both, n1 + n2);
    char *plain = temp_file(cut2, len - (size_t)(cut2 - data));
    char args[4096];
    snprintf(args, sizeof(args), "'%s' '%s'", gz, plain);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 0, "%s", out);
    pdt_assert_patterns_match(url, pdt_data("sample-600.patterns.ndjson"));
    unlink(gz);
    unlink(plain);
    free(gz);
    free(plain);
    free(both);
    free(m1);
    free(m2);
    free(data);
    free(out);
    free(err);
    free(url);
}

Test(ingest_gzip, gzip_cut_short_fails_and_keeps_the_whole_records_before_the_cut)
{
    char *url = pdt_new_migrated_database();
    size_t len;
    char *gz = gzip_file(pdt_data("sample-600.ndjson"), &len);
    cr_assert_eq(truncate(gz, (off_t)(len / 2)), 0);
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", gz);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 1, "%s%s", out, err);
    char expected[4096];
    snprintf(expected, sizeof(expected), "patternd: reading %s: the gzip data is cut short\n", gz);
    cr_assert_not_null(strstr(err, expected), "%s", err);
    /* The records before the cut are recorded; the line the cut split is not a reject. */
    long processed = pdt_summary_value(out, "processed");
    cr_assert_gt(processed, 0, "%s", out);
    cr_assert_lt(processed, 600, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "total_workflows"), processed, "%s", out);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows"), processed);
    unlink(gz);
    free(gz);
    free(out);
    free(err);
    free(url);
}

Test(ingest_gzip, bytes_after_the_gzip_stream_that_are_not_gzip_fail_the_input)
{
    char *url = pdt_new_migrated_database();
    size_t len, n;
    char *data = pdt_read_file(pdt_data("sample-600.ndjson"), &len);
    char *gz = gzip_bytes(data, len, &n);
    gz = realloc(gz, n + 8);
    memcpy(gz + n, "garbage\n", 8);
    char *path = temp_file(gz, n + 8);
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", path);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 1, "%s%s", out, err);
    char expected[4096];
    snprintf(expected, sizeof(expected), "patternd: reading %s: not valid gzip data (", path);
    cr_assert_not_null(strstr(err, expected), "%s", err);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 0, "%s", out);
    unlink(path);
    free(path);
    free(gz);
    free(data);
    free(out);
    free(err);
    free(url);
}

/*
 * Bytes changed inside the compressed data: inflating fails (a bad block, or the CRC at the end)
 * and the message names the input, a file or standard input; the exit status is 1.
 */
Test(ingest_gzip, gzip_corrupt_inside_fails_naming_the_file_or_standard_input)
{
    char *url = pdt_new_migrated_database();
    size_t len;
    char *gz = gzip_file(pdt_data("sample-600.ndjson"), &len);
    char *data = pdt_read_file(gz, NULL);
    for (size_t i = len / 2; i < len / 2 + 64; i++)
        data[i] = (char)~data[i];
    pdt_write_file(gz, data, len);
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", gz);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 1, "%s%s", out, err);
    char expected[4096];
    snprintf(expected, sizeof(expected), "patternd: reading %s: not valid gzip data (", gz);
    cr_assert_not_null(strstr(err, expected), "%s", err);
    cr_assert_lt(pdt_summary_value(out, "processed"), 600, "%s", out);
    free(out);
    free(err);

    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' ingest --quiet --db '%s' < '%s'", pdt_binary(), url, gz);
    out = run(cmd, &status, &err);
    cr_assert_eq(status, 1, "%s%s", out, err);
    cr_assert_not_null(strstr(err, "patternd: reading <stdin>: not valid gzip data ("), "%s", err);
    unlink(gz);
    free(gz);
    free(data);
    free(out);
    free(err);
    free(url);
}

/* The largest resident set of the children waited for so far, in KiB. */
static long children_max_rss_kib(void)
{
    struct rusage ru;
    cr_assert_eq(getrusage(RUSAGE_CHILDREN, &ru), 0);
    return ru.ru_maxrss;
}

/* A gzip file of one line of n_mib MiB of 'x', then one good record. */
static char *gzip_bomb(int n_mib)
{
    char *path = temp_text("");
    gzFile f = gzopen(path, "wb9R"); /* Z_RLE: a run of one byte compresses about 1000:1, fast */
    cr_assert_not_null(f);
    char *block = malloc(1 << 20);
    memset(block, 'x', 1 << 20);
    for (int i = 0; i < n_mib; i++)
        cr_assert_eq(gzwrite(f, block, 1 << 20), 1 << 20);
    const char *tail = "\n{\"workflow_id\": \"after-the-bomb\", \"nl_input\": \"run the tests\"}\n";
    cr_assert_eq(gzwrite(f, tail, (unsigned)strlen(tail)), (int)strlen(tail));
    cr_assert_eq(gzclose(f), Z_OK);
    free(block);
    return path;
}

/*
 * 128 MiB inflated from a few hundred KiB: the inflated stream goes through the line splitter one
 * chunk at a time, so the process never holds much more than the longest record (1 MiB) and a
 * chunk, as for a plain file.  The bound is relative to the same binary ingesting a small plain
 * file, so that sanitizer builds, which need more memory, measure the same thing.
 */
Test(ingest_gzip, gzip_bomb_is_read_chunk_by_chunk_in_bounded_memory)
{
    char *url = pdt_new_migrated_database();
    char *small = temp_text("{\"workflow_id\": \"small\", \"nl_input\": \"run the tests\"}\n");
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", small);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    long baseline_kib = children_max_rss_kib();
    free(out);
    free(err);

    enum { BOMB_MIB = 128 };
    char *bomb = gzip_bomb(BOMB_MIB);
    char *rejects = temp_text("");
    snprintf(args, sizeof(args), "--rejects '%s' '%s'", rejects, bomb);
    out = ingest(url, args, &status, &err);
    long bomb_kib = children_max_rss_kib();
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "processed"), 1, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 1, "%s", out);
    char *rej = pdt_read_file(rejects, NULL);
    char expected[128];
    snprintf(expected, sizeof(expected), "record of %ld bytes exceeds the maximum of 1048576",
             (long)BOMB_MIB << 20);
    cr_assert_not_null(strstr(rej, expected), "%s", rej);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows WHERE workflow_id = "
                                   "'after-the-bomb'"),
                 1);
    cr_assert_lt(bomb_kib, baseline_kib + 32 * 1024,
                 "peak RSS %ld KiB reading the bomb, %ld KiB for a small file", bomb_kib,
                 baseline_kib);
    unlink(bomb);
    unlink(rejects);
    unlink(small);
    free(rej);
    free(bomb);
    free(rejects);
    free(small);
    free(out);
    free(err);
    free(url);
}

/* --- exit status and --max-rejects ----------------------------------------------------------- */

Test(ingest_exit, every_record_rejected_exits_1_and_says_nothing_was_recorded)
{
    char *url = pdt_new_migrated_database();
    char *input = temp_text("{\"workflow_id\": \"a\", \"total_tokens\": -1}\n"
                            "not json\n"
                            "{\"nl_input\": \"no id\"}\n");
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", input);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 1, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 3, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 0, "%s", out);
    cr_assert_not_null(strstr(err, "patternd: nothing was recorded: all 3 records read were "
                                   "rejected\n"),
                       "%s", err);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows"), 0);
    unlink(input);
    free(input);
    free(out);
    free(err);
    free(url);
}

Test(ingest_exit, rejects_beside_settled_records_or_an_empty_input_exit_0)
{
    char *url = pdt_new_migrated_database();
    const char *good = "{\"workflow_id\": \"g\", \"nl_input\": \"run the tests\","
                       " \"updated_at\": \"2026-01-01T00:00:00Z\"}\n";
    char *first = temp_text(good);
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", first);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    free(out);
    free(err);

    /* Only a duplicate and a reject: the duplicate is settled, so the run succeeded. */
    char text[1024];
    snprintf(text, sizeof(text), "%s{\"workflow_id\": \"b\", \"total_tokens\": -1}\n", good);
    char *dup = temp_text(text);
    snprintf(args, sizeof(args), "'%s'", dup);
    out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "duplicates"), 1, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 1, "%s", out);
    free(out);
    free(err);

    /* A conflict (same updated_at, other content) and a reject: settled too. */
    char *conflict = temp_text("{\"workflow_id\": \"g\", \"nl_input\": \"other content\","
                               " \"updated_at\": \"2026-01-01T00:00:00Z\"}\n"
                               "{\"workflow_id\": \"b\", \"total_tokens\": -1}\n");
    snprintf(args, sizeof(args), "'%s'", conflict);
    out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "conflicts"), 1, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 1, "%s", out);
    free(out);
    free(err);

    /* Nothing at all: nothing rejected, nothing failed. */
    char *empty = temp_text("\n");
    snprintf(args, sizeof(args), "'%s'", empty);
    out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "total_workflows"), 0, "%s", out);
    cr_assert_str_empty(err);

    unlink(first);
    unlink(dup);
    unlink(conflict);
    unlink(empty);
    free(first);
    free(dup);
    free(conflict);
    free(empty);
    free(out);
    free(err);
    free(url);
}

Test(ingest_exit, max_rejects_stops_reading_at_the_nth_reject_and_records_what_came_before)
{
    char *url = pdt_new_migrated_database();
    /* All in one chunk: the lines after the second reject must not be read. */
    char *input = temp_text("{\"workflow_id\": \"g1\", \"nl_input\": \"run the tests\"}\n"
                            "{\"workflow_id\": \"b1\", \"total_tokens\": -1}\n"
                            "{\"workflow_id\": \"g2\", \"nl_input\": \"run the tests\"}\n"
                            "{\"workflow_id\": \"b2\", \"total_tokens\": -1}\n"
                            "{\"workflow_id\": \"g3\", \"nl_input\": \"run the tests\"}\n"
                            "{\"workflow_id\": \"b3\", \"total_tokens\": -1}\n"
                            "{\"workflow_id\": \"g4\", \"nl_input\": \"run the tests\"}");
    char args[4096];
    snprintf(args, sizeof(args), "--max-rejects 2 '%s'", input);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 1, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "total_workflows"), 4, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 2, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 2, "%s", out);
    char *stopped = summary_string(out, "stopped");
    cr_assert_not_null(stopped, "%s", out);
    cr_assert_str_eq(stopped, "max-rejects");
    char expected[4096];
    snprintf(expected, sizeof(expected),
             "patternd: stopped reading at %s:4 after 2 rejected records (--max-rejects): nothing "
             "after that line was read; 2 records before it were recorded\n",
             input);
    cr_assert_not_null(strstr(err, expected), "%s", err);
    char *ids = pdt_sql_value(url, "SELECT string_agg(workflow_id, ',' ORDER BY workflow_id)"
                                   " FROM workflows");
    cr_assert_str_eq(ids, "g1,g2");
    free(ids);
    free(stopped);
    free(out);
    free(err);

    /* A limit that is not reached changes nothing; the summary has no "stopped". */
    snprintf(args, sizeof(args), "--max-rejects 4 '%s'", input);
    out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "processed"), 2, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "duplicates"), 2, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 3, "%s", out);
    cr_assert_null(summary_string(out, "stopped"), "%s", out);
    free(out);
    free(err);

    /* 0 is no limit to ask for: leaving the option out is. */
    snprintf(args, sizeof(args), "--max-rejects 0 '%s'", input);
    out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 2, "%s%s", out, err);
    cr_assert_not_null(strstr(err, "--max-rejects"), "%s", err);
    unlink(input);
    free(input);
    free(out);
    free(err);
    free(url);
}

/*
 * A stop with many batches read and in flight: every record accepted before the stop is committed
 * once, none after it is read; the run that reads the rest then counts only what was not recorded,
 * so the statistics come out exactly as one clean run of the 600 records gives them.
 */
Test(ingest_exit, max_rejects_with_batches_in_flight_loses_and_double_counts_nothing)
{
    char *url = pdt_new_migrated_database();
    size_t len;
    char *data = pdt_read_file(pdt_data("sample-600.ndjson"), &len);
    /* A bad line after the 300th, the 450th and the 500th record: lines 301, 452 and 503. */
    const char *bad = "{\"workflow_id\": \"bad\", \"total_tokens\": -1}\n";
    char *text = malloc(len + 3 * strlen(bad) + 1);
    size_t at = 0;
    int record = 0;
    for (const char *p = data; p < data + len;) {
        const char *nl = memchr(p, '\n', (size_t)(data + len - p));
        size_t n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(data + len - p);
        memcpy(text + at, p, n);
        at += n;
        p += n;
        record++;
        if (record == 300 || record == 450 || record == 500) {
            memcpy(text + at, bad, strlen(bad));
            at += strlen(bad);
        }
    }
    char *input = temp_file(text, at);
    char args[4096];
    snprintf(args, sizeof(args), "--workers 2 --batch 7 --max-rejects 2 '%s'", input);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 1, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "total_workflows"), 452, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 450, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 2, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "errors"), 0, "%s", out);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows"), 450);
    char expected[4096];
    snprintf(expected, sizeof(expected), "stopped reading at %s:452 after 2 rejected records",
             input);
    cr_assert_not_null(strstr(err, expected), "%s", err);
    free(out);
    free(err);

    snprintf(args, sizeof(args), "--workers 2 --batch 7 '%s'", input);
    out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "processed"), 150, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "duplicates"), 450, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 3, "%s", out);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows"), 600);
    pdt_assert_patterns_match(url, pdt_data("sample-600.patterns.ndjson"));
    unlink(input);
    free(input);
    free(text);
    free(data);
    free(out);
    free(err);
    free(url);
}

Test(ingest_exit, help_documents_gzip_the_exit_status_max_rejects_and_rejects_dash)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' ingest --help", pdt_binary());
    int status;
    char *err;
    char *out = run(cmd, &status, &err);
    cr_assert_eq(status, 0, "%s", err);
    cr_assert_not_null(strstr(out, "gzip-compressed is inflated"), "%s", out);
    cr_assert_not_null(strstr(out, "1 when nothing was recorded but something\nwas rejected"), "%s",
                       out);
    cr_assert_not_null(strstr(out, "when --max-rejects\nstopped reading"), "%s", out);
    cr_assert_not_null(strstr(out, "  --max-rejects N"), "%s", out);
    cr_assert_not_null(strstr(out, "- is standard output, and the summary then goes to standard"),
                       "%s", out);
    free(out);
    free(err);
}

/* --- the rejects sink ------------------------------------------------------------------------ */

/*
 * `--rejects -` is standard output, as `-` is for any output; the summary, which standard output
 * otherwise carries, then goes to standard error as its last line, so standard output holds the
 * rejects alone.
 */
Test(ingest_rejects, rejects_dash_is_standard_output_and_the_summary_moves_to_standard_error)
{
    char *url = pdt_new_migrated_database();
    char dir[] = "/tmp/pd-cli-dir-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *input = temp_text("{\"workflow_id\": \"bad\", \"total_tokens\": -5}\n"
                            "{\"workflow_id\": \"good\", \"nl_input\": \"run the tests\"}\n"
                            "not json\n");
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' ingest --quiet --db '%s' --rejects - '%s'", dir,
             pdt_binary(), url, input);
    int status;
    char *err;
    char *out = run(cmd, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    /* Standard output: the two rejects, as the rejects file has them, and nothing else. */
    cr_assert_eq(pdt_count_lines(out), 2, "%s", out);
    char *copy = strdup(out);
    char *second = strchr(copy, '\n');
    *second++ = '\0';
    json_t *o = json_loads(copy, 0, NULL);
    cr_assert_not_null(o, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(o, "file")), input);
    cr_assert_eq(json_integer_value(json_object_get(o, "line")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(o, "workflow_id")), "bad");
    cr_assert_str_eq(json_string_value(json_object_get(o, "field")), "total_tokens");
    json_decref(o);
    o = json_loads(second, JSON_DISABLE_EOF_CHECK, NULL);
    cr_assert_not_null(o, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(o, "line")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(o, "input")), "not json");
    json_decref(o);
    free(copy);
    /* Standard error: the summary alone. */
    cr_assert_eq(pdt_count_lines(err), 1, "%s", err);
    cr_assert_eq(pdt_summary_value(err, "processed"), 1, "%s", err);
    cr_assert_eq(pdt_summary_value(err, "rejected"), 2, "%s", err);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows WHERE workflow_id = 'good'"), 1);
    char dash[4096];
    snprintf(dash, sizeof(dash), "%s/-", dir);
    cr_assert_neq(access(dash, F_OK), 0, "a file named - was written");
    cr_assert_eq(rmdir(dir), 0, "the folder is not empty");
    free(out);
    free(err);

    /* Every record rejected: the message comes before the summary, which stays the last line. */
    char *bad = temp_text("not json\n");
    snprintf(cmd, sizeof(cmd), "'%s' ingest --quiet --db '%s' --rejects - '%s'", pdt_binary(), url,
             bad);
    out = run(cmd, &status, &err);
    cr_assert_eq(status, 1, "%s%s", out, err);
    cr_assert_eq(pdt_count_lines(out), 1, "%s", out);
    cr_assert_not_null(strstr(err, "patternd: nothing was recorded: all 1 records read were "
                                   "rejected\n{"),
                       "%s", err);
    cr_assert_eq(pdt_summary_value(err, "rejected"), 1, "%s", err);
    unlink(bad);
    unlink(input);
    free(bad);
    free(input);
    free(out);
    free(err);
    free(url);
}

/* The rejects file's lines, parsed; a JSON array (new reference). */
static json_t *rejects_lines(const char *path)
{
    char *text = pdt_read_file(path, NULL);
    cr_assert_not_null(text);
    json_t *all = json_array();
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        cr_assert_not_null(o, "not JSON (%s): %s", jerr.text, line);
        json_array_append_new(all, o);
    }
    free(text);
    return all;
}

Test(ingest_rejects, rejects_file_names_the_workflow_when_its_id_was_valid)
{
    char *url = pdt_new_migrated_database();
    char *input = temp_text("{\"workflow_id\": \"wf-neg\", \"total_tokens\": -5}\n"
                            "{\"workflow_id\": 42, \"duration_seconds\": \"12\"}\n"
                            "{\"id\": \"by-id\", \"tenant_id\": \"bad tenant!\"}\n"
                            "{\"nl_input\": \"no id\"}\n"
                            "{\"workflow_id\": 1.5}\n"
                            "{\"workflow_id\": \"cut\", \n"
                            "{\"workflow_id\": \"c\", \"nl_input\": \"run the tests\","
                            " \"updated_at\": \"2026-01-01T00:00:00Z\"}\n");
    char *rejects = temp_text("");
    char args[4096];
    snprintf(args, sizeof(args), "--rejects '%s' '%s'", rejects, input);
    int status;
    char *err;
    char *out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 6, "%s", out);

    json_t *lines = rejects_lines(rejects);
    cr_assert_eq(json_array_size(lines), 6);
    /* The id as the input gave it: a string, or an integer. */
    json_t *id = json_object_get(json_array_get(lines, 0), "workflow_id");
    cr_assert_str_eq(json_string_value(id), "wf-neg");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(lines, 0), "field")),
                     "total_tokens");
    id = json_object_get(json_array_get(lines, 1), "workflow_id");
    cr_assert(json_is_integer(id) && json_integer_value(id) == 42);
    id = json_object_get(json_array_get(lines, 2), "workflow_id");
    cr_assert_str_eq(json_string_value(id), "by-id");
    /* No usable id, a bad one, or no JSON object: no workflow_id at all. */
    for (size_t i = 3; i < 6; i++)
        cr_assert_null(json_object_get(json_array_get(lines, i), "workflow_id"), "line %zu", i);
    json_decref(lines);
    free(out);
    free(err);

    /* A conflict goes to the rejects file with its workflow too. */
    char *conflict = temp_text("{\"workflow_id\": \"c\", \"nl_input\": \"other content\","
                               " \"updated_at\": \"2026-01-01T00:00:00Z\"}\n");
    snprintf(args, sizeof(args), "--rejects '%s' '%s'", rejects, conflict);
    out = ingest(url, args, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_eq(pdt_summary_value(out, "conflicts"), 1, "%s", out);
    lines = rejects_lines(rejects);
    cr_assert_eq(json_array_size(lines), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(lines, 0), "workflow_id")),
                     "c");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(lines, 0), "field")),
                     "updated_at");
    json_decref(lines);
    unlink(conflict);
    unlink(input);
    unlink(rejects);
    free(conflict);
    free(input);
    free(rejects);
    free(out);
    free(err);
    free(url);
}
