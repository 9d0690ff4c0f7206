/* cmd.c - helpers shared by the vec-* commands (see cmd.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

const char *progname = "vec";
int cmd_quiet;

void cmd_init(const char *name)
{
	progname = name;
	/* Past a file size limit (ulimit -f), let write() fail with EFBIG
	 * and be reported, instead of the process being killed. */
	signal(SIGXFSZ, SIG_IGN);
}

static void vmessage(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", progname);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cmd_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
}

_Noreturn void cmd_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
	exit(EXIT_RUNTIME);
}

_Noreturn void cmd_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", progname);
	exit(EXIT_USAGE);
}

_Noreturn void cmd_version(void)
{
	printf("%s (vecutils) %s\n", progname, vec_version());
	exit(cmd_finish(EXIT_OK));
}

int cmd_finish(int status)
{
	int bad = ferror(stdout);
	if (fclose(stdout) != 0 || bad) {
		if (errno == EPIPE)
			return status;
		cmd_error("error writing output: %s",
			  errno ? strerror(errno) : "write failed");
		return EXIT_RUNTIME;
	}
	return status;
}

void cmd_put_json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		default:
			if (*p < 0x20)
				printf("\\u%04x", *p);
			else
				putchar(*p);
		}
	}
	putchar('"');
}

unsigned long long cmd_number(const char *opt, const char *arg,
			      unsigned long long min, unsigned long long max)
{
	uint64_t v;
	if (vec_parse_u64(arg, min, max, &v) != VEC_OK)
		cmd_usage_error("invalid value '%s' for %s (expected an integer from %llu to %llu)",
				arg, opt, min, max);
	return v;
}

int cmd_threads(const char *arg)
{
	return (int)cmd_number("-j", arg, 1, 1024);
}

int cmd_input_option(int opt, const char *arg, struct vec_reader_opts *ro)
{
	switch (opt) {
	case 'f':
		ro->format = vec_format_parse(arg);
		if (ro->format < 0)
			cmd_usage_error("unknown input format '%s' (expected fvecs, bvecs, ivecs, csv, tsv or npy)",
					arg);
		return 1;
	case OPT_HEADER: ro->header = 1; return 1;
	case OPT_NO_HEADER: ro->header = 0; return 1;
	case OPT_KEYS: ro->keys = 1; return 1;
	case OPT_NO_KEYS: ro->keys = 0; return 1;
	}
	return 0;
}

#define BATCH 4096

/* Read one input to its end, appending to the index. */
static int read_one(struct vec_index **idx, const struct vec_index_params *p,
		    const char *path, const struct vec_reader_opts *ro,
		    int progress, uint64_t *total)
{
	struct vec_errbuf eb = { 0 };
	struct vec_reader *r;
	float *buf = NULL;
	char **keys = NULL;
	size_t dim, got;
	int status = 1, rc;
	const char *name = (!path || !strcmp(path, "-")) ? "stdin" : path;

	if ((rc = vec_reader_open(&r, path, ro, &eb))) {
		cmd_error("%s", eb.msg);
		return 1;
	}
	dim = vec_reader_dim(r);
	if (!*idx) {
		struct vec_index_params ip = *p;
		ip.dim = dim;
		if (vec_index_create(idx, &ip, &eb)) {
			cmd_error("%s: %s", name, eb.msg);
			goto done;
		}
	} else {
		struct vec_index_info info;
		vec_index_info(*idx, &info);
		if (info.dim != dim) {
			cmd_error("%s: vector 1: dimension %zu, expected %zu (the index's)",
				  name, dim, info.dim);
			goto done;
		}
	}
	buf = malloc(BATCH * dim * sizeof *buf);
	keys = calloc(BATCH, sizeof *keys);
	if (!buf || !keys) {
		cmd_error("out of memory");
		goto done;
	}
	for (;;) {
		uint64_t first;
		if (vec_reader_read(r, buf, BATCH, &got, keys, &eb)) {
			cmd_error("%s", eb.msg);
			goto done;
		}
		if (got == 0)
			break;
		first = vec_reader_count(r) - got;
		rc = vec_index_add(*idx, got, buf, (const char *const *)keys, &eb);
		for (size_t i = 0; i < got; i++) {
			free(keys[i]);
			keys[i] = NULL;
		}
		if (rc) {
			if (eb.record) /* its place in the batch: in the input */
				cmd_error("%s: vector %llu: %s", name,
					  (unsigned long long)(first + eb.record), eb.msg);
			else
				cmd_error("%s: %s", name, eb.msg);
			goto done;
		}
		*total += got;
		if (progress)
			fprintf(stderr, "\r%s: %llu vectors", progname,
				(unsigned long long)*total);
	}
	status = 0;
done:
	free(buf);
	free(keys);
	vec_reader_close(r);
	return status;
}

int cmd_read_into_index(struct vec_index **idx,
			const struct vec_index_params *p, char **inputs,
			int ninputs, const struct vec_reader_opts *ro)
{
	int progress = !cmd_quiet && isatty(2);
	uint64_t total = 0;
	int rc = 0;

	if (ninputs == 0)
		rc = read_one(idx, p, "-", ro, progress, &total);
	for (int i = 0; i < ninputs && !rc; i++)
		rc = read_one(idx, p, inputs[i], ro, progress, &total);
	if (progress)
		fputc('\n', stderr);
	return rc;
}
