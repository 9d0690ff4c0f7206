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

/*
 * Read every input (paths; none or "-" is stdin) and append the vectors to
 * *idx.  If *idx is NULL it is created with the parameters p (p->dim is
 * taken from the first input).  Reports the bad record and returns 1 on
 * failure (the index may then hold part of the input: callers do not save
 * it).
 */
int cmd_read_into_index(struct vec_index **idx,
			const struct vec_index_params *p, char **inputs,
			int ninputs, const struct vec_reader_opts *ro);

#endif
