/* vec-query - print the k nearest stored vectors of each query vector. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

static const char usage_text[] =
	"Usage: vec-query [OPTION]... INDEX [QUERIES]...\n"
	"For each query vector in QUERIES (fvecs, bvecs, ivecs, CSV/TSV or npy,\n"
	"plain or gzip-compressed), print its K nearest vectors in INDEX, best\n"
	"first.  With no QUERIES, or when QUERIES is -, read standard input;\n"
	"queries arriving on a pipe are answered as they arrive.\n"
	"\n"
	"  -k, --k=K               neighbours per query (default 10)\n"
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
	"  -F, --format=FMT        output: tsv (default), csv, jsonl, ivecs (ids\n"
	"                          only), fvecs (scores only)\n"
	"      --batch=N           search at most N queries at a time (default 4096;\n"
	"                          1 answers each query before reading the next)\n"
	"      --force             write ivecs/fvecs output even to a terminal\n"
	"      --stats             at the end, print on standard error how many\n"
	"                          queries were answered and the time spent\n"
	"                          searching (not reading or writing); for the\n"
	"                          ivf types also how many list entries were\n"
	"                          scanned\n"
	CMD_INPUT_HELP
	"  -j, --threads=N         worker threads (default: all cores)\n"
	"  -q, --quiet             no progress line\n"
	"  -h, --help              display this help and exit\n"
	"  -V, --version           output version information and exit\n"
	"\n"
	"Rows (tsv, csv): query, rank, id, score[, key], where query counts from 0\n"
	"over all QUERIES, rank from 1, and score is the Euclidean distance (l2),\n"
	"the inner product (ip) or the cosine similarity (cos).  The key column\n"
	"appears when the index stores keys.  Fewer than K rows are printed when\n"
	"the index holds fewer than K vectors; ivecs records are then padded\n"
	"with -1, fvecs records with inf (l2) or -inf (ip, cos).\n"
	"\n"
	"Exit status: 0 success, 1 bad input, damaged index or I/O error, 2 usage\n"
	"error.\n"
	"Example: vec-query -k 5 words.vec queries.fvecs\n";

enum { OPT_BATCH = OPT_CMD_LAST, OPT_FORCE, OPT_EF, OPT_STATS, OPT_NPROBE,
       OPT_REFINE };
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
	{ "threads", required_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	CMD_INPUT_LONG_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

struct query_ctx {
	struct vec_index *idx;
	size_t dim, k, batch;
	struct vec_search_opts so;
	int format, keys;
	uint64_t next_query;   /* number of the next query, over all inputs */
	double search_s;       /* time inside vec_index_search (--stats) */
	uint64_t *ids;
	float *scores;
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

static int write_results(struct query_ctx *c, size_t nq)
{
	for (size_t q = 0; q < nq; q++) {
		const uint64_t *ids = c->ids + q * c->k;
		const float *sc = c->scores + q * c->k;
		uint64_t qno = c->next_query + q;

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
			continue;
		}
		if (c->format == OUT_FVECS) {
			vec_write_fvecs(stdout, sc, c->k);
			continue;
		}
		for (size_t r = 0; r < c->k && ids[r] != UINT64_MAX; r++) {
			const char *key = c->keys ? vec_index_key(c->idx, ids[r]) : NULL;
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
	}
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
		if (vec_index_search(c->idx, n, q, c->k, &c->so, c->ids,
				     c->scores, &eb)) {
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

int main(int argc, char **argv)
{
	struct vec_reader_opts ro = VEC_READER_OPTS_INIT;
	struct vec_errbuf eb = { 0 };
	struct query_ctx c = { 0 };
	struct vec_index_info info;
	const char *path, *fmt = "tsv";
	int opt, force = 0, status = 0, stats = 0;
	uint64_t scanned = 0;

	cmd_init("vec-query");
	c.k = 10;
	c.batch = 4096;
	c.so.threads = 0;
	c.so.ef = 0;
	c.so.refine = -1;
	c.so.scanned = &scanned;
	while ((opt = getopt_long(argc, argv, "k:F:f:j:qhV", long_options, NULL)) != -1) {
		if (cmd_input_option(opt, optarg, &ro))
			continue;
		switch (opt) {
		case 'k': c.k = cmd_number("-k", optarg, 1, 100000); break;
		case 'F': fmt = optarg; break;
		case OPT_BATCH: c.batch = cmd_number("--batch", optarg, 1, 1 << 20); break;
		case OPT_FORCE: force = 1; break;
		case OPT_STATS: stats = 1; break;
		case 'j': c.so.threads = cmd_threads(optarg); break;
		case OPT_EF: c.so.ef = cmd_number("--ef", optarg, 1, 1000000); break;
		case OPT_NPROBE: c.so.nprobe = cmd_number("--nprobe", optarg, 1, 1u << 24); break;
		case OPT_REFINE: c.so.refine = (long)cmd_number("--refine", optarg, 0, 1000); break;
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
	if (optind >= argc)
		cmd_usage_error("no index given");
	path = argv[optind++];
	if (c.so.ef && c.so.ef < c.k)
		cmd_usage_error("--ef %zu is smaller than -k %zu", c.so.ef, c.k);

	if (vec_index_open(&c.idx, path, 0, &eb)) {
		cmd_error("%s", eb.msg);
		return cmd_finish(EXIT_RUNTIME);
	}
	vec_index_info(c.idx, &info);
	c.dim = info.dim;
	c.keys = vec_index_has_keys(c.idx);
	c.ids = malloc(c.batch * c.k * sizeof *c.ids);
	c.scores = malloc(c.batch * c.k * sizeof *c.scores);
	c.ivec = malloc(c.k * sizeof *c.ivec);
	if (!c.ids || !c.scores || !c.ivec) {
		cmd_error("out of memory");
		status = EXIT_RUNTIME;
	} else if (optind >= argc) {
		status = run_input(&c, "-", &ro);
	} else {
		for (int i = optind; i < argc && !status; i++)
			status = run_input(&c, argv[i], &ro);
	}
	if (stats) {
		fprintf(stderr, "%s: %llu queries, %.6f s searching (%.0f queries/s)",
			progname, (unsigned long long)c.next_query, c.search_s,
			c.search_s > 0 ? (double)c.next_query / c.search_s : 0.0);
		if (vec_type_is_ivf(info.type))
			fprintf(stderr, ", scanned %llu list entries",
				(unsigned long long)scanned);
		fputc('\n', stderr);
	}
	free(c.ids);
	free(c.scores);
	free(c.ivec);
	vec_index_close(c.idx);
	return cmd_finish(status ? EXIT_RUNTIME : EXIT_OK);
}
