/* vec-query - print the k nearest stored vectors of each query vector. */
#include <getopt.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

static const char usage_text[] =
	"Usage: vec-query [OPTION]... INDEX [INDEX]... [QUERIES]...\n"
	"  or:  vec-query --merge [OPTION]... [RESULTS]...\n"
	"For each query vector in QUERIES (fvecs, bvecs, ivecs, CSV/TSV or npy,\n"
	"plain or gzip-compressed), print its K nearest vectors in INDEX, best\n"
	"first.  With no QUERIES, or when QUERIES is -, read standard input;\n"
	"queries arriving on a pipe are answered as they arrive.  The leading\n"
	"arguments that are index files (by their first bytes) are all indexes:\n"
	"shards of one collection, searched at once and merged into one answer.\n"
	"With --merge, read the rows of vec-query --mergeable runs from RESULTS\n"
	"(files, or one stream of several runs; none or -: standard input) and\n"
	"print the K best of each query over all of them.\n"
	"\n"
	"  -k, --k=K               neighbours per query (default 10; with --merge,\n"
	"                          at most the runs' K, which is the default)\n"
	"      --ef=N              hnsw: search list size, at least K; larger is\n"
	"                          more accurate and slower (default: the index's,\n"
	"                          shown by vec-stat)\n"
	"      --nprobe=N          ivf: lists scanned per query; larger is more\n"
	"                          accurate and slower; N >= nlist scans them\n"
	"                          all (exact for -t ivf) (default: the index's,\n"
	"                          shown by vec-stat)\n"
	"      --refine=R          coded types (pq, ivfpq, sq8, ivfsq8) built with\n"
	"                          --refine: re-rank R x K candidates on the full\n"
	"                          vectors; 0 ranks on the codes alone (default:\n"
	"                          the index's R)\n"
	"  -F, --format=FMT        output: tsv (default; with --merge, the first\n"
	"                          run's), csv, jsonl, ivecs (ids only), fvecs\n"
	"                          (scores only)\n"
	"      --mergeable         tsv, csv: begin with the line describing the\n"
	"                          rows that --merge needs, e.g.\n"
	"                          #vec-query k=10 metric=l2 format=tsv keys=no\n"
	"      --merge             merge the rows of --mergeable runs (see above)\n"
	"      --batch=N           search at most N queries at a time (default 4096;\n"
	"                          1 answers each query before reading the next)\n"
	"      --force             write ivecs/fvecs output even to a terminal\n"
	"      --stats             at the end, print on standard error how many\n"
	"                          queries were answered and the time spent\n"
	"                          searching (not reading or writing); for the\n"
	"                          ivf types also how many list entries were\n"
	"                          scanned; with several inputs, a line for each\n"
	"                          input first\n"
	CMD_INPUT_HELP
	"  -j, --threads=N         worker threads (default: all cores)\n"
	"  -q, --quiet             no progress line\n"
	"  -h, --help              display this help and exit\n"
	"  -V, --version           output version information and exit\n"
	"\n"
	"Rows (tsv, csv): query, rank, id, score[, key], where query counts from 0\n"
	"over all QUERIES, rank from 1, and score is the Euclidean distance (l2),\n"
	"the inner product (ip) or the cosine similarity (cos).  The key column\n"
	"appears when an index stores keys.  Fewer than K rows are printed when\n"
	"the indexes hold fewer than K vectors; ivecs records are then padded\n"
	"with -1, fvecs records with inf (l2) or -inf (ip, cos).  Merged answers\n"
	"rank better scores first, equal scores by the smaller id, each id once.\n"
	"\n"
	"Exit status: 0 success, 1 bad input, damaged index or I/O error, 2 usage\n"
	"error.\n"
	"Example: vec-query -k 5 words.vec queries.fvecs\n"
	"         parallel vec-query --mergeable {} q.fvecs ::: shard*.vec |\n"
	"           vec-query --merge\n";

enum { OPT_BATCH = OPT_CMD_LAST, OPT_FORCE, OPT_EF, OPT_STATS, OPT_NPROBE,
       OPT_REFINE, OPT_MERGE, OPT_MERGEABLE };
enum out_format { OUT_TSV, OUT_CSV, OUT_JSONL, OUT_IVECS, OUT_FVECS };

static const struct option long_options[] = {
	{ "k", required_argument, NULL, 'k' },
	{ "format", required_argument, NULL, 'F' },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "ef", required_argument, NULL, OPT_EF },
	{ "nprobe", required_argument, NULL, OPT_NPROBE },
	{ "refine", required_argument, NULL, OPT_REFINE },
	{ "stats", no_argument, NULL, OPT_STATS },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "merge", no_argument, NULL, OPT_MERGE },
	{ "mergeable", no_argument, NULL, OPT_MERGEABLE },
	{ "threads", required_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	CMD_INPUT_LONG_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

struct query_ctx {
	const struct vec_index **idx; /* nidx indexes, searched as one */
	const char **names;
	size_t nidx;
	size_t dim, k, batch;
	struct vec_search_opts so;
	int format, keys, metric;
	uint64_t next_query;   /* number of the next query, over all inputs */
	double search_s;       /* time inside the search (--stats) */
	uint64_t *ids;
	float *scores;
	const char **keyp;     /* keys of the results, when keys */
	int32_t *ivec;
};

/* A key as a CSV field: quoted when it holds a separator, quote or newline. */
static void put_csv_key(const char *k)
{
	if (!strpbrk(k, ",\"\n\r")) {
		fputs(k, stdout);
		return;
	}
	putchar('"');
	for (; *k; k++) {
		if (*k == '"')
			putchar('"');
		putchar(*k);
	}
	putchar('"');
}

/* A key as a TSV field: tabs and newlines would break the row. */
static void put_tsv_key(const char *k)
{
	for (; *k; k++)
		putchar(*k == '\t' || *k == '\n' || *k == '\r' ? ' ' : *k);
}

/* --mergeable: the line that begins a run (described in vec-query.1). */
static void put_description(const struct query_ctx *c)
{
	printf("#vec-query k=%zu metric=%s format=%s keys=%s\n", c->k,
	       vec_metric_name(c->metric), c->format == OUT_CSV ? "csv" : "tsv",
	       c->keys ? "yes" : "no");
}

/* The answer of one query: k ids, scores and keys (keys NULL: none). */
static int write_query(struct query_ctx *c, uint64_t qno, const uint64_t *ids,
		       const float *sc, const char *const *keys)
{
	if (c->format == OUT_IVECS) {
		for (size_t r = 0; r < c->k; r++) {
			if (ids[r] != UINT64_MAX && ids[r] > INT32_MAX) {
				cmd_error("id %llu does not fit in ivecs output",
					  (unsigned long long)ids[r]);
				return 1;
			}
			c->ivec[r] = ids[r] == UINT64_MAX ? -1 : (int32_t)ids[r];
		}
		vec_write_ivecs(stdout, c->ivec, c->k);
		return 0;
	}
	if (c->format == OUT_FVECS) {
		vec_write_fvecs(stdout, sc, c->k);
		return 0;
	}
	for (size_t r = 0; r < c->k && ids[r] != UINT64_MAX; r++) {
		const char *key = c->keys && keys ? keys[r] : NULL;
		switch (c->format) {
		case OUT_TSV:
			printf("%llu\t%zu\t%llu\t%.9g", (unsigned long long)qno,
			       r + 1, (unsigned long long)ids[r], sc[r]);
			if (c->keys) {
				putchar('\t');
				put_tsv_key(key ? key : "");
			}
			break;
		case OUT_CSV:
			printf("%llu,%zu,%llu,%.9g", (unsigned long long)qno,
			       r + 1, (unsigned long long)ids[r], sc[r]);
			if (c->keys) {
				putchar(',');
				put_csv_key(key ? key : "");
			}
			break;
		case OUT_JSONL:
			printf("{\"query\":%llu,\"rank\":%zu,\"id\":%llu,\"score\":%.9g",
			       (unsigned long long)qno, r + 1,
			       (unsigned long long)ids[r], sc[r]);
			if (c->keys) {
				fputs(",\"key\":", stdout);
				if (key)
					cmd_put_json_string(key);
				else
					fputs("null", stdout);
			}
			putchar('}');
			break;
		}
		putchar('\n');
	}
	return 0;
}

static int write_results(struct query_ctx *c, size_t nq)
{
	for (size_t q = 0; q < nq; q++)
		if (write_query(c, c->next_query + q, c->ids + q * c->k,
				c->scores + q * c->k,
				c->keys ? c->keyp + q * c->k : NULL))
			return 1;
	c->next_query += nq;
	return ferror(stdout) ? 1 : 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Answer every query of one input, a batch at a time. */
/* The --stats line: of one input (name), or of all (NULL). */
static void put_stats(const char *name, uint64_t nq, double s, int ivf,
		      uint64_t scanned)
{
	fprintf(stderr, "%s: %s%s%llu queries, %.6f s searching (%.0f queries/s)",
		progname, name ? name : "", name ? ": " : "",
		(unsigned long long)nq, s, s > 0 ? (double)nq / s : 0.0);
	if (ivf)
		fprintf(stderr, ", scanned %llu list entries",
			(unsigned long long)scanned);
	fputc('\n', stderr);
}

static int run_input(struct query_ctx *c, const char *path,
		     const struct vec_reader_opts *ro)
{
	struct vec_errbuf eb = { 0 };
	struct vec_reader *r;
	struct stat st;
	float *q = NULL;
	int status = 1, regular;
	const char *name = (!path || !strcmp(path, "-")) ? "stdin" : path;

	if (vec_reader_open(&r, path, ro, &eb)) {
		cmd_error("%s", eb.msg);
		return 1;
	}
	if (vec_reader_dim(r) != c->dim) {
		cmd_error("%s: vector 1: dimension %zu, expected %zu (the index's)",
			  name, vec_reader_dim(r), c->dim);
		goto done;
	}
	/* A regular file can fill whole batches without waiting on anyone;
	 * a pipe is answered with whatever has arrived, and flushed. */
	regular = (!path || !strcmp(path, "-")) ?
		  (fstat(0, &st) == 0 && S_ISREG(st.st_mode)) :
		  (stat(path, &st) == 0 && S_ISREG(st.st_mode));
	q = malloc(c->batch * c->dim * sizeof *q);
	if (!q) {
		cmd_error("out of memory");
		goto done;
	}
	for (;;) {
		size_t n = 0, got;
		double t0;
		do {
			if (vec_reader_read(r, q + n * c->dim, c->batch - n, &got, NULL, &eb)) {
				/* The batch holding the bad record is not
				 * answered: no result for a query that was
				 * read next to a broken one. */
				cmd_error("%s", eb.msg);
				goto done;
			}
			n += got;
		} while (regular && got && n < c->batch);
		if (n == 0)
			break;
		t0 = now();
		if (vec_shards_search(c->idx, c->names, c->nidx, n, q, c->k,
				      &c->so, c->ids, c->scores,
				      c->keys ? c->keyp : NULL, &eb)) {
			cmd_error("%s", eb.msg);
			goto done;
		}
		c->search_s += now() - t0;
		if (write_results(c, n))
			goto done;
		if (!regular)
			fflush(stdout);
	}
	status = 0;
done:
	free(q);
	vec_reader_close(r);
	return status;
}

/*
 * --merge: read every run of every RESULTS file, then print each query's
 * merged answer.  k_set: -k was given (else the runs' k); fmt_set: -F was.
 */
static int run_merge(struct query_ctx *c, char **paths, int npaths,
		     int k_set, int fmt_set, int mergeable)
{
	struct vec_errbuf eb = { 0 };
	struct vec_merge_info info;
	struct vec_merge *m;
	uint64_t next = 0, qno;
	int status = EXIT_RUNTIME;

	if (vec_merge_new(&m, &eb)) {
		cmd_error("%s", eb.msg);
		return EXIT_RUNTIME;
	}
	for (int i = 0; i < (npaths ? npaths : 1); i++) {
		if (vec_merge_read(m, npaths ? paths[i] : "-", &eb)) {
			cmd_error("%s", eb.msg);
			goto done;
		}
	}
	vec_merge_info(m, &info);
	if (info.runs && k_set && c->k > info.k) {
		cmd_error("-k %zu is larger than the runs' k=%zu", c->k, info.k);
		goto done;
	}
	if (vec_merge_finish(m, k_set ? c->k : 0, &eb)) {
		cmd_error("%s", eb.msg);
		goto done;
	}
	vec_merge_info(m, &info);
	if (!k_set)
		c->k = info.k;
	if (!fmt_set)
		c->format = info.format == VEC_FMT_CSV ? OUT_CSV : OUT_TSV;
	c->keys = info.keys;
	c->metric = info.metric;
	c->ids = malloc(2 * c->k * sizeof *c->ids);
	c->scores = malloc(2 * c->k * sizeof *c->scores);
	c->keyp = malloc(c->k * sizeof *c->keyp);
	c->ivec = malloc(c->k * sizeof *c->ivec);
	if (!c->ids || !c->scores || !c->keyp || !c->ivec) {
		cmd_error("out of memory");
		goto done;
	}
	if (mergeable)
		put_description(c);
	/* ivecs and fvecs have a record for every query: one that no run
	 * answered gets the empty answer, all padding (in the second half) */
	vec_merge_result(m, info.queries, &qno, c->ids + c->k, c->scores + c->k,
			 NULL);
	for (size_t i = 0; i < info.queries; i++) {
		vec_merge_result(m, i, &qno, c->ids, c->scores, c->keyp);
		for (; (c->format == OUT_IVECS || c->format == OUT_FVECS) &&
		       next < qno; next++)
			if (write_query(c, next, c->ids + c->k, c->scores + c->k,
					NULL))
				goto done;
		if (write_query(c, qno, c->ids, c->scores, c->keyp) ||
		    ferror(stdout))
			goto done;
		next = qno + 1;
	}
	status = EXIT_OK;
done:
	free(c->ids);
	free(c->scores);
	free(c->keyp);
	free(c->ivec);
	vec_merge_free(m);
	return cmd_finish(status);
}

/* Open the nidx indexes of argv, or report and return 1. */
static int open_indexes(struct query_ctx *c, char **argv)
{
	struct vec_errbuf eb = { 0 };
	struct vec_index *idx;

	c->idx = calloc(c->nidx, sizeof *c->idx);
	c->names = calloc(c->nidx, sizeof *c->names);
	if (!c->idx || !c->names) {
		cmd_error("out of memory");
		return 1;
	}
	for (size_t i = 0; i < c->nidx; i++) {
		if (vec_index_open(&idx, argv[i], 0, &eb)) {
			cmd_error("%s", eb.msg);
			return 1;
		}
		c->idx[i] = idx;
		c->names[i] = argv[i];
	}
	if (vec_shards_check(c->idx, c->names, c->nidx, &eb)) {
		cmd_error("%s", eb.msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct vec_reader_opts ro = VEC_READER_OPTS_INIT;
	struct query_ctx c = { 0 };
	struct vec_index_info info;
	const char *fmt = "tsv", *search_only = NULL;
	int opt, force = 0, status = 0, stats = 0, merge = 0, mergeable = 0;
	int k_set = 0, fmt_set = 0, ivf = 0;
	uint64_t scanned = 0;

	cmd_init("vec-query");
#if defined(__GLIBC__)
	/* Batch after batch allocates the same search buffers: keep what a
	 * batch frees for the next, where glibc would give large blocks back
	 * and fault them in again (a page fault costs more than the search
	 * reading its 4 KiB). */
	(void)mallopt(M_MMAP_THRESHOLD, 256 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 1024 << 20);
#endif
	c.k = 10;
	c.batch = 4096;
	c.so.threads = 0;
	c.so.ef = 0;
	c.so.refine = -1;
	c.so.scanned = &scanned;
	while ((opt = getopt_long(argc, argv, "k:F:f:j:qhV", long_options, NULL)) != -1) {
		if (cmd_input_option(opt, optarg, &ro)) {
			search_only = opt == 'f' ? "-f" :
				      opt == OPT_HEADER ? "--header" :
				      opt == OPT_NO_HEADER ? "--no-header" :
				      opt == OPT_KEYS ? "--keys" : "--no-keys";
			continue;
		}
		switch (opt) {
		case 'k': c.k = cmd_number("-k", optarg, 1, 100000); k_set = 1; break;
		case 'F': fmt = optarg; fmt_set = 1; break;
		case OPT_BATCH: c.batch = cmd_number("--batch", optarg, 1, 1 << 20); search_only = "--batch"; break;
		case OPT_FORCE: force = 1; break;
		case OPT_STATS: stats = 1; search_only = "--stats"; break;
		case OPT_MERGE: merge = 1; break;
		case OPT_MERGEABLE: mergeable = 1; break;
		case 'j': c.so.threads = cmd_threads(optarg); break;
		case OPT_EF: c.so.ef = cmd_number("--ef", optarg, 1, 1000000); search_only = "--ef"; break;
		case OPT_NPROBE: c.so.nprobe = cmd_number("--nprobe", optarg, 1, 1u << 24); search_only = "--nprobe"; break;
		case OPT_REFINE: c.so.refine = (long)cmd_number("--refine", optarg, 0, 1000); search_only = "--refine"; break;
		case 'q': cmd_quiet = 1; break;
		case 'h': fputs(usage_text, stdout); return cmd_finish(EXIT_OK);
		case 'V': cmd_version();
		default: cmd_usage_error("invalid usage");
		}
	}
	if (!strcmp(fmt, "tsv")) c.format = OUT_TSV;
	else if (!strcmp(fmt, "csv")) c.format = OUT_CSV;
	else if (!strcmp(fmt, "jsonl")) c.format = OUT_JSONL;
	else if (!strcmp(fmt, "ivecs")) c.format = OUT_IVECS;
	else if (!strcmp(fmt, "fvecs")) c.format = OUT_FVECS;
	else cmd_usage_error("unknown output format '%s' (expected tsv, csv, jsonl, ivecs or fvecs)", fmt);
	if ((c.format == OUT_IVECS || c.format == OUT_FVECS) && !force && isatty(1))
		cmd_usage_error("refusing to write binary %s output to a terminal (use --force)", fmt);
	if (mergeable && c.format != OUT_TSV && c.format != OUT_CSV)
		cmd_usage_error("--mergeable needs tsv or csv output, not %s", fmt);
	if (merge && search_only)
		cmd_usage_error("%s cannot be used with --merge", search_only);
	if (merge)
		return run_merge(&c, argv + optind, argc - optind, k_set,
				 fmt_set, mergeable);
	if (optind >= argc)
		cmd_usage_error("no index given");
	if (c.so.ef && c.so.ef < c.k)
		cmd_usage_error("--ef %zu is smaller than -k %zu", c.so.ef, c.k);

	/* The first argument is an index whatever it holds (opening it says
	 * what is wrong); the next ones are while they begin as indexes do. */
	c.nidx = 1;
	while (optind + (int)c.nidx < argc && vec_index_sniff(argv[optind + c.nidx]))
		c.nidx++;
	if (open_indexes(&c, argv + optind)) {
		status = 1;
		goto done;
	}
	optind += (int)c.nidx;
	vec_index_info(c.idx[0], &info);
	c.dim = info.dim;
	c.metric = info.metric;
	for (size_t i = 0; i < c.nidx; i++) {
		vec_index_info(c.idx[i], &info);
		c.keys |= vec_index_has_keys(c.idx[i]);
		ivf |= vec_type_is_ivf(info.type);
	}
	c.ids = malloc(c.batch * c.k * sizeof *c.ids);
	c.scores = malloc(c.batch * c.k * sizeof *c.scores);
	c.keyp = malloc(c.batch * c.k * sizeof *c.keyp);
	c.ivec = malloc(c.k * sizeof *c.ivec);
	if (!c.ids || !c.scores || !c.keyp || !c.ivec) {
		cmd_error("out of memory");
		status = EXIT_RUNTIME;
		goto done;
	}
	if (mergeable)
		put_description(&c);
	if (optind >= argc) {
		status = run_input(&c, "-", &ro);
	} else {
		for (int i = optind; i < argc && !status; i++) {
			uint64_t q0 = c.next_query, s0 = scanned;
			double t0 = c.search_s;
			status = run_input(&c, argv[i], &ro);
			/* Several inputs: each one's own figures too. */
			if (stats && !status && argc - optind > 1)
				put_stats(argv[i], c.next_query - q0,
					  c.search_s - t0, ivf, scanned - s0);
		}
	}
	if (stats) {
		put_stats(NULL, c.next_query, c.search_s, ivf, scanned);
	}
done:
	free(c.ids);
	free(c.scores);
	free(c.keyp);
	free(c.ivec);
	for (size_t i = 0; c.idx && i < c.nidx; i++)
		vec_index_close((struct vec_index *)c.idx[i]);
	free(c.idx);
	free(c.names);
	return cmd_finish(status ? EXIT_RUNTIME : EXIT_OK);
}
