/*
 * cmd.h - what the vec-* commands share: messages, exit statuses, option
 * helpers, reading inputs into an index.
 *
 * How to add a command:
 *   1. write cmd/vec-NAME.c with the shape every command has: a usage text,
 *      a long_options[] table, main() -> cmd_init() -> parse -> open ->
 *      call lib/ -> report -> cmd_exit();
 *   2. add vec-NAME to CMDS in the Makefile;
 *   3. write man/vec-NAME.1 (with EXIT STATUS and EXAMPLES) and
 *      tests/NN-vec-NAME.bats.
 *
 * Exit statuses: 0 success, 1 runtime or data error, 2 usage error.
 * Messages go to stderr as "vec-NAME: what is wrong", lowercase, no period.
 * No algorithm lives in cmd/: the library does the work.
 */
#ifndef VEC_CMD_H
#define VEC_CMD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "vec.h"

#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

extern const char *progname;
extern int cmd_quiet;

void cmd_init(const char *name);

/* "prog: message" on stderr. */
void cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print and exit 1. */
_Noreturn void cmd_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print, add "Try 'prog --help'", exit 2. */
_Noreturn void cmd_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* "prog (vecutils) 0.1.0" and exit 0. */
_Noreturn void cmd_version(void);
/* Flush stdout and check for write errors; returns the exit status to use. */
int cmd_finish(int status);

/* A JSON string literal of s on stdout (quotes, escapes). */
void cmd_put_json_string(const char *s);

/* Option values: exit 2 with a clear message when not a number in range. */
unsigned long long cmd_number(const char *opt, const char *arg,
			      unsigned long long min, unsigned long long max);
int cmd_threads(const char *arg);

/* Input-stream options shared by every command that reads vectors. */
enum {
	OPT_HEADER = 1000,
	OPT_NO_HEADER,
	OPT_KEYS,
	OPT_NO_KEYS,
	OPT_IDS,
	OPT_ID_COLUMN,
	OPT_ID_START,
	OPT_SHARD,
	OPT_CMD_LAST,
};
/* Handle -f / --header / --no-header / --keys / --no-keys; 1 if handled. */
int cmd_input_option(int opt, const char *arg, struct vec_reader_opts *ro);
#define CMD_INPUT_LONG_OPTIONS                                     \
	{ "input-format", required_argument, NULL, 'f' },          \
	{ "header", no_argument, NULL, OPT_HEADER },               \
	{ "no-header", no_argument, NULL, OPT_NO_HEADER },         \
	{ "keys", no_argument, NULL, OPT_KEYS },                   \
	{ "no-keys", no_argument, NULL, OPT_NO_KEYS }
#define CMD_INPUT_HELP                                                       \
	"  -f, --input-format=FMT  input format: fvecs, bvecs, ivecs, csv, tsv, npy\n" \
	"                          (default: detected from content; gzip is\n"  \
	"                          always unwrapped)\n"                          \
	"      --header, --no-header  CSV/TSV: the first line is (not) a header\n" \
	"      --keys, --no-keys   CSV/TSV: the first column is (not) a key\n"

/* Where the vectors' ids come from, and which shard to keep (vec-build,
 * vec-add). */
struct cmd_ids {
	const char *file;       /* --ids FILE, or NULL */
	int column;             /* --id-column: CSV/TSV first column */
	int have_start;         /* --id-start given */
	uint64_t start;         /* --id-start N */
	uint32_t shard, nshards; /* --shard I/N (nshards 0: keep all) */
};
/* Handle --ids / --id-column / --id-start / --shard; 1 if handled. */
int cmd_id_option(int opt, const char *arg, struct cmd_ids *ids);
/* Usage checks once every option is parsed (exits 2). */
void cmd_id_check(const struct cmd_ids *ids, struct vec_reader_opts *ro);
#define CMD_ID_LONG_OPTIONS                                        \
	{ "ids", required_argument, NULL, OPT_IDS },               \
	{ "id-column", no_argument, NULL, OPT_ID_COLUMN },         \
	{ "id-start", required_argument, NULL, OPT_ID_START },     \
	{ "shard", required_argument, NULL, OPT_SHARD }
#define CMD_ID_HELP                                                          \
	"      --ids=FILE          the vectors' ids, one per vector in input\n"  \
	"                          order: text (one unsigned integer a line) or\n" \
	"                          ivecs (records of dimension 1)\n"            \
	"      --id-column         CSV/TSV: the first column is the vector's id\n" \
	"      --id-start=N        number the vectors N, N+1, ... in input order\n" \
	"      --shard=I/N         keep only the vectors of shard I of N (0 <= I\n" \
	"                          < N), chosen by a hash of the id\n"

/*
 * Read every input (paths; none or "-" is stdin) and append the vectors to
 * *idx.  If *idx is NULL it is created with the parameters p (p->dim is
 * taken from the first input).  ids may be NULL (ids continue as the index
 * numbers them).  Reports the bad record and returns 1 on failure (the
 * index may then hold part of the input: callers do not save it).
 */
int cmd_read_into_index(struct vec_index **idx,
			const struct vec_index_params *p, char **inputs,
			int ninputs, const struct vec_reader_opts *ro,
			const struct cmd_ids *ids);

#endif
