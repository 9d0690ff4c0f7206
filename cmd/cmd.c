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

int cmd_id_option(int opt, const char *arg, struct cmd_ids *ids)
{
	switch (opt) {
	case OPT_IDS: ids->file = arg; return 1;
	case OPT_ID_COLUMN: ids->column = 1; return 1;
	case OPT_ID_START:
		ids->start = cmd_number("--id-start", arg, 0, UINT64_MAX - 1);
		ids->have_start = 1;
		return 1;
	case OPT_SHARD: {
		const char *slash = strchr(arg, '/');
		char i[32];
		size_t len = slash ? (size_t)(slash - arg) : 0;
		if (!slash || len == 0 || len >= sizeof i)
			cmd_usage_error("--shard '%s': expected I/N, e.g. 0/4", arg);
		memcpy(i, arg, len);
		i[len] = '\0';
		ids->nshards = (uint32_t)cmd_number("--shard N", slash + 1, 1, 1u << 20);
		ids->shard = (uint32_t)cmd_number("--shard I", i, 0, UINT32_MAX);
		if (ids->shard >= ids->nshards)
			cmd_usage_error("--shard %s: shards are numbered 0 to %u",
					arg, ids->nshards - 1);
		return 1;
	}
	}
	return 0;
}

void cmd_id_check(const struct cmd_ids *ids, struct vec_reader_opts *ro)
{
	if (!!ids->file + ids->column + ids->have_start > 1)
		cmd_usage_error("--ids, --id-column and --id-start exclude each other");
	if (ids->column && ro->keys == 0)
		cmd_usage_error("--id-column and --no-keys exclude each other");
	if (ids->column)
		ro->keys = 1;
}

#define BATCH 4096

/* Reading state over all inputs. */
struct reading {
	const struct cmd_ids *ido;
	struct vec_id_reader *idr;  /* --ids */
	uint64_t seen;              /* input vectors so far, all inputs */
	uint64_t total;             /* vectors added */
	int progress;
};

/*
 * The ids of a batch of got vectors (NULL: the index numbers them), read
 * from --ids, the key column or --id-start.  Key strings that were ids are
 * freed.  Returns 1 after reporting a bad id.
 */
static int batch_ids(struct reading *st, const char *name, uint64_t first,
		     size_t got, char **keys, uint64_t *ids, uint64_t **out)
{
	struct vec_errbuf eb = { 0 };
	const struct cmd_ids *o = st->ido;

	*out = NULL;
	if (!o)
		return 0;
	if (o->file) {
		size_t n = 0, g;
		while (n < got) {
			if (vec_id_reader_read(st->idr, ids + n, got - n, &g, &eb)) {
				cmd_error("%s", eb.msg);
				return 1;
			}
			if (g == 0) {
				cmd_error("%s: no id for %s: vector %llu (%llu ids for more vectors)",
					  vec_id_reader_name(st->idr), name,
					  (unsigned long long)(first + n + 1),
					  (unsigned long long)(st->seen + n));
				return 1;
			}
			n += g;
		}
	} else if (o->column) {
		for (size_t i = 0; i < got; i++) {
			if (!keys[i] || vec_parse_u64(keys[i], 0, UINT64_MAX - 1, &ids[i])) {
				cmd_error("%s: vector %llu: id '%.40s' is not an unsigned integer below 2^64-1",
					  name, (unsigned long long)(first + i + 1),
					  keys[i] ? keys[i] : "");
				return 1;
			}
			free(keys[i]);
			keys[i] = NULL;
		}
	} else if (o->have_start || o->nshards) {
		for (size_t i = 0; i < got; i++)
			ids[i] = o->start + st->seen + i;
		if (got && ids[got - 1] < ids[0]) {
			cmd_error("%s: vector %llu: --id-start %llu leaves no id for it",
				  name, (unsigned long long)(first + got),
				  (unsigned long long)o->start);
			return 1;
		}
	} else {
		return 0;
	}
	*out = ids;
	return 0;
}

/* Read one input to its end, appending to the index. */
static int read_one(struct vec_index **idx, const struct vec_index_params *p,
		    const char *path, const struct vec_reader_opts *ro,
		    struct reading *st)
{
	struct vec_errbuf eb = { 0 };
	struct vec_reader *r;
	float *buf = NULL;
	char **keys = NULL;
	uint64_t *idbuf = NULL, *src = NULL;
	size_t dim, got;
	int status = 1, rc;
	const char *name = (!path || !strcmp(path, "-")) ? "stdin" : path;

	if ((rc = vec_reader_open(&r, path, ro, &eb))) {
		cmd_error("%s", eb.msg);
		return 1;
	}
	dim = vec_reader_dim(r);
	if (st->ido && st->ido->column && !vec_reader_has_keys(r)) {
		cmd_error("%s: --id-column: the input has no leading id column (CSV/TSV only)",
			  name);
		goto done;
	}
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
	idbuf = malloc(BATCH * sizeof *idbuf);
	src = malloc(BATCH * sizeof *src);
	if (!buf || !keys || !idbuf || !src) {
		cmd_error("out of memory");
		goto done;
	}
	for (;;) {
		uint64_t *ids;
		size_t kept;
		if (vec_reader_read(r, buf, BATCH, &got, keys, &eb)) {
			cmd_error("%s", eb.msg);
			goto done;
		}
		if (got == 0)
			break;
		if (batch_ids(st, name, vec_reader_count(r) - got, got, keys,
			      idbuf, &ids)) {
			for (size_t i = 0; i < got; i++)
				free(keys[i]);
			memset(keys, 0, got * sizeof *keys);
			goto done;
		}
		/* src[j]: the place in the batch of the j-th vector kept. */
		kept = 0;
		for (size_t i = 0; i < got; i++) {
			if (st->ido && st->ido->nshards &&
			    vec_shard_of(ids[i], st->ido->nshards) != st->ido->shard) {
				free(keys[i]);
				keys[i] = NULL;
				continue;
			}
			if (kept != i) {
				memcpy(buf + kept * dim, buf + i * dim, dim * sizeof *buf);
				keys[kept] = keys[i];
				keys[i] = NULL;
				ids[kept] = ids[i];
			}
			src[kept++] = i;
		}
		st->seen += got;
		rc = vec_index_add_ids(*idx, kept, buf, (const char *const *)keys,
				       ids, &eb);
		for (size_t i = 0; i < kept; i++) {
			free(keys[i]);
			keys[i] = NULL;
		}
		if (rc) {
			/* Its place among those kept: in the input. */
			uint64_t first = vec_reader_count(r) - got;
			if (eb.record)
				cmd_error("%s: vector %llu: %s", name,
					  (unsigned long long)(first + src[eb.record - 1] + 1),
					  eb.msg);
			else
				cmd_error("%s: %s", name, eb.msg);
			goto done;
		}
		st->total += kept;
		if (st->progress)
			fprintf(stderr, "\r%s: %llu vectors", progname,
				(unsigned long long)st->total);
	}
	status = 0;
done:
	free(buf);
	free(keys);
	free(idbuf);
	free(src);
	vec_reader_close(r);
	return status;
}

int cmd_read_into_index(struct vec_index **idx,
			const struct vec_index_params *p, char **inputs,
			int ninputs, const struct vec_reader_opts *ro,
			const struct cmd_ids *ids)
{
	struct reading st = { 0 };
	struct vec_errbuf eb = { 0 };
	int rc = 0;

	st.ido = ids;
	st.progress = !cmd_quiet && isatty(2);
	if (ids && ids->file &&
	    vec_id_reader_open(&st.idr, ids->file, &eb)) {
		cmd_error("%s", eb.msg);
		return 1;
	}
	if (ninputs == 0)
		rc = read_one(idx, p, "-", ro, &st);
	for (int i = 0; i < ninputs && !rc; i++)
		rc = read_one(idx, p, inputs[i], ro, &st);
	if (!rc && st.idr) {
		/* Every id must belong to a vector: a longer id file
		 * means the two streams do not match. */
		uint64_t extra;
		size_t g;
		if (vec_id_reader_read(st.idr, &extra, 1, &g, &eb)) {
			cmd_error("%s", eb.msg);
			rc = 1;
		} else if (g) {
			cmd_error("%s: more ids than the %llu input vectors",
				  vec_id_reader_name(st.idr),
				  (unsigned long long)st.seen);
			rc = 1;
		}
	}
	vec_id_reader_close(st.idr);
	if (st.progress)
		fputc('\n', stderr);
	return rc;
}
