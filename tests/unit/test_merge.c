/*
 * test_merge.c - several indexes searched as one (exactly the answer of
 * one index over all the vectors, whatever the threads and chunks), and
 * the merge of vec-query --mergeable rows: several runs and streams, the
 * order, keys, and every refusal with its message.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "vec.h"

#define DIM 8
#define N 600
#define NQ 100

static uint64_t rs;

/* A path inside the scratch directory. */
static const char *tpath(const char *name)
{
	static char buf[4][4300];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", unit_tmpdir, name);
	return buf[i];
}

static void put_str(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(s, f) == EOF || fclose(f) != 0) {
		fprintf(stderr, "test_merge: cannot write %s\n", path);
		exit(1);
	}
}

/* ---- vec_index_sniff ---- */

static void test_sniff(void)
{
	struct vec_index *idx;
	struct vec_errbuf eb = { 0 };
	float v[DIM] = { 1 };
	char p[4300], fifo[4300];

	snprintf(p, sizeof p, "%s", tpath("sniff.vec"));
	snprintf(fifo, sizeof fifo, "%s", tpath("sniff.fifo"));
	EXPECT(vec_index_new(&idx, VEC_TYPE_FLAT, VEC_METRIC_L2, DIM, &eb) == VEC_OK);
	EXPECT(vec_index_add(idx, 1, v, NULL, &eb) == VEC_OK);
	EXPECT(vec_index_save(idx, p, &eb) == VEC_OK);
	vec_index_close(idx);
	EXPECT(vec_index_sniff(p) == 1);
	/* the magic alone is not enough to open, but is an index to sniff */
	put_str(tpath("magic"), "\x89VEC\r\n\x1a\n");
	EXPECT(vec_index_sniff(tpath("magic")) == 1);
	put_str(tpath("short"), "\x89VEC\r\n\x1a");
	EXPECT(vec_index_sniff(tpath("short")) == 0);
	put_str(tpath("text"), "1,2,3\n");
	EXPECT(vec_index_sniff(tpath("text")) == 0);
	EXPECT(vec_index_sniff(tpath("no-such-file")) == 0);
	EXPECT(vec_index_sniff(unit_tmpdir) == 0);
	EXPECT(vec_index_sniff(NULL) == 0);
	/* a fifo is never opened (that would wait for a writer) */
	EXPECT(mkfifo(fifo, 0600) == 0);
	EXPECT(vec_index_sniff(fifo) == 0);
}

/* ---- several indexes ---- */

/*
 * Vectors in [0, 1): every inner product and cosine is positive.  A pad
 * row (all -1) is the farthest under l2 and the worst under ip and cos,
 * so it never ranks among the few best: a shard that starts with pad
 * rows up to row s holds row i at id i, as one index over all the rows.
 */
static float *rows(size_t n)
{
	float *x = malloc(n * DIM * sizeof *x);

	for (size_t i = 0; i < n * DIM; i++)
		x[i] = unit_uniform(&rs) + 0.5f;
	return x;
}

/*
 * Equal scores of each query in the order of the rule, by id.  (A single
 * l2 index ranks by the squared distance, which two entries may differ in
 * while their distances print the same: then it can put the larger id
 * first.  The merge sees the distances only.)
 */
static void ties_by_id(uint64_t *ids, const float *sc, size_t nq, size_t k)
{
	for (size_t q = 0; q < nq; q++)
		for (size_t i = q * k + 1; i < (q + 1) * k; i++)
			for (size_t j = i; j > q * k && sc[j] == sc[j - 1] &&
			     ids[j] < ids[j - 1]; j--) {
				uint64_t t = ids[j];
				ids[j] = ids[j - 1];
				ids[j - 1] = t;
			}
}

/* An index of rows [from, to) of x at their own ids (pads in front). */
static struct vec_index *shard(const float *x, size_t from, size_t to,
			       int metric, int keys)
{
	struct vec_index *idx = NULL;
	struct vec_errbuf eb = { 0 };
	float pad[DIM];
	char kb[N][24]; /* "v" and any size_t */
	const char *kp[N];

	for (int d = 0; d < DIM; d++)
		pad[d] = -1;
	EXPECT(vec_index_new(&idx, VEC_TYPE_FLAT, metric, DIM, &eb) == VEC_OK);
	for (size_t i = 0; i < from; i++)
		EXPECT(vec_index_add(idx, 1, pad, NULL, &eb) == VEC_OK);
	for (size_t i = from; i < to; i++) {
		snprintf(kb[i], sizeof kb[i], "v%zu", i);
		kp[i] = kb[i];
	}
	if (to > from)
		EXPECT(vec_index_add(idx, to - from, x + from * DIM,
				     keys ? kp + from : NULL, &eb) == VEC_OK);
	return idx;
}

/*
 * Shards [0,150) [150,350) [350,600), an empty one and a copy of rows
 * [0,3) (the same ids again: kept once) answer exactly as one index:
 * the same ids, scores (bit for bit) and keys, for every metric, k below
 * and above the count, any threads.
 */
static void test_shards_equal_one_index(void)
{
	static const int metrics[] = { VEC_METRIC_L2, VEC_METRIC_IP, VEC_METRIC_COS };
	static const size_t ks[] = { 1, 10, 37, 700 };
	static const int threads[] = { 1, 2, 3, 8 };
	const char *names[] = { "a", "b", "c", "d", "e" };
	struct vec_errbuf eb = { 0 };
	float *x, *q;

	rs = 0x1234567887654321u;
	x = rows(N);
	q = rows(NQ);
	for (size_t mi = 0; mi < 3; mi++) {
		struct vec_index *one = shard(x, 0, N, metrics[mi], 1);
		struct vec_index *s[5];
		s[0] = shard(x, 0, 150, metrics[mi], 1);
		s[1] = shard(x, 150, 350, metrics[mi], 0); /* no keys */
		s[2] = shard(x, 350, N, metrics[mi], 1);
		s[3] = shard(x, 0, 0, metrics[mi], 0);
		s[4] = shard(x, 0, 3, metrics[mi], 1);
		for (size_t ki = 0; ki < 4; ki++) {
			size_t k = ks[ki];
			uint64_t *wi = malloc(NQ * k * sizeof *wi);
			uint64_t *gi = malloc(NQ * k * sizeof *gi);
			float *ws = malloc(NQ * k * sizeof *ws);
			float *gs = malloc(NQ * k * sizeof *gs);
			const char **gk = malloc(NQ * k * sizeof *gk);

			EXPECT(vec_index_search(one, NQ, q, k, NULL, wi, ws, &eb) == VEC_OK);
			ties_by_id(wi, ws, NQ, k);
			for (size_t ti = 0; ti < 4; ti++) {
				struct vec_search_opts so = VEC_SEARCH_OPTS_INIT;
				size_t bad = 0;
				so.threads = threads[ti];
				EXPECT(vec_shards_search((const struct vec_index *const *)s,
							 names, 5, NQ, q, k, &so, gi, gs, gk,
							 &eb) == VEC_OK);
				for (size_t e = 0; e < NQ * k; e++) {
					const char *want = NULL;
					uint64_t id = wi[e];
					/* rows of shard b have no key */
					if (id != UINT64_MAX && (id < 150 || id >= 350))
						want = vec_index_key(one, id);
					if (gi[e] != wi[e] ||
					    memcmp(&gs[e], &ws[e], sizeof *ws) != 0 ||
					    (gk[e] == NULL) != (want == NULL) ||
					    (want && strcmp(gk[e], want) != 0))
						bad++;
				}
				EXPECT_MSG(bad == 0, "metric %s k %zu threads %d: %zu entries differ",
					   vec_metric_name(metrics[mi]), k, threads[ti], bad);
			}
			/* without keys, and the shards in another order */
			{
				struct vec_index *r[5] = { s[4], s[2], s[3], s[0], s[1] };
				size_t bad = 0;
				EXPECT(vec_shards_search((const struct vec_index *const *)r,
							 NULL, 5, NQ, q, k, NULL, gi, gs, NULL,
							 &eb) == VEC_OK);
				for (size_t e = 0; e < NQ * k; e++)
					bad += gi[e] != wi[e] ||
					       memcmp(&gs[e], &ws[e], sizeof *ws) != 0;
				EXPECT_MSG(bad == 0, "reordered, metric %s k %zu: %zu entries differ",
					   vec_metric_name(metrics[mi]), k, bad);
			}
			free(wi);
			free(gi);
			free(ws);
			free(gs);
			free(gk);
		}
		vec_index_close(one);
		for (int i = 0; i < 5; i++)
			vec_index_close(s[i]);
	}
	free(x);
	free(q);
}

/* Queries in several chunks (shards x queries x k above a million). */
static void test_shards_chunks(void)
{
	const size_t k = 5000;
	struct vec_errbuf eb = { 0 };
	struct vec_index *one, *s[5];
	uint64_t *wi = malloc(NQ * k * sizeof *wi), *gi = malloc(NQ * k * sizeof *gi);
	float *ws = malloc(NQ * k * sizeof *ws), *gs = malloc(NQ * k * sizeof *gs);
	float *x, *q;
	size_t bad = 0;

	rs = 0x5555aaaa5555aaaau;
	x = rows(N);
	q = rows(NQ);
	one = shard(x, 0, N, VEC_METRIC_L2, 0);
	for (int i = 0; i < 5; i++)
		s[i] = shard(x, (size_t)i * 120, (size_t)(i + 1) * 120,
			     VEC_METRIC_L2, 0);
	EXPECT(vec_index_search(one, NQ, q, k, NULL, wi, ws, &eb) == VEC_OK);
	EXPECT(vec_shards_search((const struct vec_index *const *)s, NULL, 5,
				 NQ, q, k, NULL, gi, gs, NULL, &eb) == VEC_OK);
	ties_by_id(wi, ws, NQ, k);
	for (size_t e = 0; e < NQ * k; e++)
		bad += gi[e] != wi[e] || memcmp(&gs[e], &ws[e], sizeof *ws) != 0;
	EXPECT_MSG(bad == 0, "%zu entries differ", bad);
	EXPECT(gi[NQ * k - 1] == UINT64_MAX && gs[NQ * k - 1] == INFINITY);
	vec_index_close(one);
	for (int i = 0; i < 5; i++)
		vec_index_close(s[i]);
	free(x);
	free(q);
	free(wi);
	free(gi);
	free(ws);
	free(gs);
}

/* Dimension and metric must agree; failures name the index. */
static void test_shards_check(void)
{
	struct vec_index *a, *b, *c, *p;
	struct vec_errbuf eb = { 0 };
	const char *names[] = { "a.vec", "b.vec", "c.vec" };
	uint64_t ids[2];
	float sc[2], v[DIM] = { 1 };

	EXPECT(vec_index_new(&a, VEC_TYPE_FLAT, VEC_METRIC_L2, DIM, &eb) == VEC_OK);
	EXPECT(vec_index_new(&b, VEC_TYPE_FLAT, VEC_METRIC_L2, 4, &eb) == VEC_OK);
	EXPECT(vec_index_new(&c, VEC_TYPE_HNSW, VEC_METRIC_IP, DIM, &eb) == VEC_OK);
	{
		const struct vec_index *ok[] = { a, a };
		const struct vec_index *dim[] = { a, a, b };
		const struct vec_index *met[] = { a, c };
		EXPECT(vec_shards_check(ok, names, 2, &eb) == VEC_OK);
		EXPECT(vec_shards_check(dim, names, 3, &eb) == VEC_E_DIM);
		EXPECT_MSG(!strcmp(eb.msg, "c.vec: dimension 4, expected 8 (a.vec's)"), "%s", eb.msg);
		EXPECT(vec_shards_check(met, names, 2, &eb) == VEC_E_USAGE);
		EXPECT_MSG(!strcmp(eb.msg, "b.vec: metric ip, expected l2 (a.vec's)"), "%s", eb.msg);
		EXPECT(vec_shards_check(met, NULL, 2, &eb) == VEC_E_USAGE);
		EXPECT_MSG(!strcmp(eb.msg, "index 2: metric ip, expected l2 (index 1's)"), "%s", eb.msg);
		EXPECT(vec_shards_check(ok, names, 0, &eb) == VEC_E_USAGE);
		EXPECT(vec_shards_search(met, names, 2, 1, v, 2, NULL, ids, sc, NULL, &eb) == VEC_E_USAGE);
		EXPECT_MSG(!strcmp(eb.msg, "b.vec: metric ip, expected l2 (a.vec's)"), "%s", eb.msg);
		EXPECT(vec_shards_search(ok, names, 2, 1, v, 0, NULL, ids, sc, NULL, &eb) == VEC_E_USAGE);
	}
	/* a shard that fails its search is named */
	EXPECT(vec_index_new(&p, VEC_TYPE_PQ, VEC_METRIC_L2, DIM, &eb) == VEC_OK);
	EXPECT(vec_index_add(p, 1, v, NULL, &eb) == VEC_OK);
	{
		const struct vec_index *two[] = { a, p };
		int rc = vec_shards_search(two, names, 2, 1, v, 2, NULL, ids, sc,
					   NULL, &eb);
		EXPECT(rc == VEC_E_USAGE);
		EXPECT_MSG(!strncmp(eb.msg, "b.vec: the pq index has not been trained", 40), "%s", eb.msg);
	}
	vec_index_close(a);
	vec_index_close(b);
	vec_index_close(c);
	vec_index_close(p);
}

/* ---- merging rows ---- */

/* Read each string as a stream named s1, s2, ...; the last status. */
static int read_strs(struct vec_merge *m, struct vec_errbuf *eb, int n,
		     const char *const *s)
{
	int rc = VEC_OK;

	for (int i = 0; i < n && rc == VEC_OK; i++) {
		char name[16];
		FILE *f = fmemopen((void *)s[i], strlen(s[i]), "r");
		snprintf(name, sizeof name, "s%d", i + 1);
		rc = vec_merge_read_stream(m, f, name, eb);
		fclose(f);
	}
	return rc;
}

/* Every merged row as text, "query rank id score [key]\n" each. */
static char *rows_text(struct vec_merge *m)
{
	struct vec_merge_info info;
	static char out[8192];
	size_t len = 0;
	uint64_t ids[64], q;
	float sc[64];
	const char *keys[64];

	vec_merge_info(m, &info);
	out[0] = '\0';
	for (size_t i = 0; i < info.queries; i++) {
		size_t got = vec_merge_result(m, i, &q, ids, sc, keys);
		for (size_t r = 0; r < got; r++)
			len += (size_t)snprintf(out + len, sizeof out - len,
						"%llu %zu %llu %.9g%s%s\n",
						(unsigned long long)q, r + 1,
						(unsigned long long)ids[r], sc[r],
						keys[r] ? " " : "",
						keys[r] ? keys[r] : "");
	}
	return out;
}

/*
 * Three runs in one stream and one in another: a query that one run does
 * not mention, runs of fewer than k rows, an id in two runs (kept once,
 * at its better score), equal scores (the smaller id first).
 */
static void test_merge_runs(void)
{
	static const char *const in[] = {
		"#vec-query k=3 metric=l2 format=tsv keys=no\n"
		"0\t1\t7\t0.5\n"
		"0\t2\t3\t1.25\n"
		"0\t3\t9\t2\n"
		"2\t1\t4\t0.25\n"
		"#vec-query k=3 metric=l2 format=tsv keys=no\n"
		"0\t1\t8\t1\n"
		"0\t2\t2\t1.25\n"
		"1\t1\t5\t3\n"
		"#vec-query k=3 metric=l2 format=csv keys=no\n",
		"#vec-query k=3 metric=l2 format=csv keys=no\n"
		"0,1,9,0.75\n"
		"1,1,6,3\n"
		"1,2,1,3\n"
		"2,1,4,0.125\n",
	};
	struct vec_merge *m;
	struct vec_errbuf eb = { 0 };
	struct vec_merge_info info;
	uint64_t ids[3], q;
	float sc[3];

	EXPECT(vec_merge_new(&m, &eb) == VEC_OK);
	EXPECT(read_strs(m, &eb, 2, in) == VEC_OK);
	vec_merge_info(m, &info);
	EXPECT(info.runs == 4 && info.rows == 11 && info.k == 3);
	EXPECT(info.metric == VEC_METRIC_L2 && info.format == VEC_FMT_TSV);
	EXPECT(info.keys == 0 && info.queries == 0);
	EXPECT(vec_merge_finish(m, 0, &eb) == VEC_OK);
	vec_merge_info(m, &info);
	EXPECT(info.queries == 3);
	EXPECT_MSG(!strcmp(rows_text(m),
			   "0 1 7 0.5\n0 2 9 0.75\n0 3 8 1\n"
			   "1 1 1 3\n1 2 5 3\n1 3 6 3\n"
			   "2 1 4 0.125\n"), "%s", rows_text(m));
	/* padding after the real entries, and past the last query */
	EXPECT(vec_merge_result(m, 2, &q, ids, sc, NULL) == 1);
	EXPECT(q == 2 && ids[1] == UINT64_MAX && sc[2] == INFINITY);
	EXPECT(vec_merge_result(m, 3, &q, ids, sc, NULL) == 0);
	EXPECT(q == UINT64_MAX && ids[0] == UINT64_MAX);
	/* finished: no more reading, no second finish */
	EXPECT(read_strs(m, &eb, 1, in) == VEC_E_USAGE);
	EXPECT(vec_merge_finish(m, 0, &eb) == VEC_E_USAGE);
	vec_merge_free(m);

	/* a smaller k cuts every query; a larger one is refused */
	EXPECT(vec_merge_new(&m, &eb) == VEC_OK);
	EXPECT(read_strs(m, &eb, 2, in) == VEC_OK);
	EXPECT(vec_merge_finish(m, 4, &eb) == VEC_E_USAGE);
	EXPECT_MSG(!strcmp(eb.msg, "k 4 is more than the runs' k=3"), "%s", eb.msg);
	EXPECT(vec_merge_finish(m, 1, &eb) == VEC_OK);
	EXPECT_MSG(!strcmp(rows_text(m), "0 1 7 0.5\n1 1 1 3\n2 1 4 0.125\n"),
		   "%s", rows_text(m));
	vec_merge_free(m);
}

/* ip and cos: larger is better; negative and infinite scores. */
static void test_merge_larger_is_better(void)
{
	static const char *const in[] = {
		"#vec-query k=2 metric=ip format=tsv keys=no\n"
		"0\t1\t1\t5\n"
		"0\t2\t2\t-1.5\n"
		"1\t1\t3\tinf\n"
		"1\t2\t4\t-inf\n",
		"#vec-query k=2 metric=ip format=tsv keys=no\n"
		"0\t1\t6\t-1\n"
		"0\t2\t1\t-2\n"
		"1\t1\t5\t0\n",
	};
	struct vec_merge *m;
	struct vec_errbuf eb = { 0 };

	EXPECT(vec_merge_new(&m, &eb) == VEC_OK);
	EXPECT(read_strs(m, &eb, 2, in) == VEC_OK);
	EXPECT(vec_merge_finish(m, 0, &eb) == VEC_OK);
	EXPECT_MSG(!strcmp(rows_text(m), "0 1 1 5\n0 2 6 -1\n1 1 3 inf\n1 2 5 0\n"),
		   "%s", rows_text(m));
	vec_merge_free(m);
}

/* Keys: TSV as is, CSV quoted (a comma, a quote, a newline), empty = none. */
static void test_merge_keys(void)
{
	static const char *const in[] = {
		"#vec-query k=3 metric=l2 format=csv keys=yes\n"
		"0,1,4,1,\"x,y\"\n"
		"0,2,5,2,\"say \"\"hi\"\"\"\n"
		"0,3,6,3,\"two\n"
		"lines\"\n"
		"1,1,7,1,\n"
		"1,2,8,2,plain key\n",
		"#vec-query k=3 metric=l2 format=tsv keys=yes\n"
		"0\t1\t1\t0.5\ta,\"b\"\n"
		"#vec-query k=3 metric=l2 format=tsv keys=no\n"
		"1\t1\t2\t0.5\n",
	};
	struct vec_merge *m;
	struct vec_errbuf eb = { 0 };
	struct vec_merge_info info;

	EXPECT(vec_merge_new(&m, &eb) == VEC_OK);
	EXPECT(read_strs(m, &eb, 2, in) == VEC_OK);
	EXPECT(vec_merge_finish(m, 0, &eb) == VEC_OK);
	vec_merge_info(m, &info);
	EXPECT(info.keys == 1 && info.format == VEC_FMT_CSV);
	EXPECT_MSG(!strcmp(rows_text(m),
			   "0 1 1 0.5 a,\"b\"\n0 2 4 1 x,y\n0 3 5 2 say \"hi\"\n"
			   "1 1 2 0.5\n1 2 7 1\n1 3 8 2 plain key\n"),
		   "%s", rows_text(m));
	vec_merge_free(m);
}

/* Scores read back to the very floats that were printed with %.9g. */
static void test_merge_scores_exact(void)
{
	static char in[64 * 200];
	float want[200];
	size_t len;
	struct vec_merge *m;
	struct vec_errbuf eb = { 0 };
	const char *p = in;
	uint64_t ids[200], q;
	float sc[200];
	size_t bad = 0;

	rs = 0x0123456789abcdefu;
	len = (size_t)snprintf(in, sizeof in, "#vec-query k=200 metric=l2 format=tsv keys=no\n");
	for (int r = 0; r < 200; r++) {
		/* ascending, over many magnitudes */
		want[r] = (float)ldexp(1.0 + (double)r / 200 + unit_uniform(&rs) / 1000,
				       r / 10 - 10);
		len += (size_t)snprintf(in + len, sizeof in - len, "0\t%d\t%d\t%.9g\n",
					r + 1, r, want[r]);
	}
	EXPECT(vec_merge_new(&m, &eb) == VEC_OK);
	EXPECT(read_strs(m, &eb, 1, &p) == VEC_OK);
	EXPECT(vec_merge_finish(m, 0, &eb) == VEC_OK);
	EXPECT(vec_merge_result(m, 0, &q, ids, sc, NULL) == 200);
	for (int r = 0; r < 200; r++)
		bad += memcmp(&sc[r], &want[r], sizeof *sc) != 0 || ids[r] != (uint64_t)r;
	EXPECT_MSG(bad == 0, "%zu scores differ", bad);
	vec_merge_free(m);
}

/* Each bad input is refused with its message (stream s1, or s2). */
static void test_merge_refusals(void)
{
	static const struct {
		const char *in[2];
		const char *msg;
	} cases[] = {
		{ { "0\t1\t2\t0.5\n" },
		  "s1:1: a row before any description line (expected \"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no\", as vec-query --mergeable writes)" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\t0.5\n",
		    "0\t2\t3\t0.7\n" },
		  "s2:1: a row before any description line (expected \"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no\", as vec-query --mergeable writes)" },
		{ { "#vec-query k=3 metric=l2\n" },
		  "s1:1: bad description line (expected \"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no\")" },
		{ { "#vec-query k=0 metric=l2 format=tsv keys=no\n" },
		  "s1:1: bad description line (expected \"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no\")" },
		{ { "#vec-query k=3 metric=l1 format=tsv keys=no\n" },
		  "s1:1: bad description line (expected \"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no\")" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no \n" },
		  "s1:1: bad description line (expected \"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no\")" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n#comment\n" },
		  "s1:2: bad description line (expected \"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no\")" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n",
		    "#vec-query k=4 metric=l2 format=tsv keys=no\n" },
		  "s2:1: k=4, expected k=3 (as the first run, s1:1)" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\t0.5\n"
		    "#vec-query k=3 metric=cos format=csv keys=no\n" },
		  "s1:3: metric=cos, expected metric=l2 (as the first run, s1:1)" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\n" },
		  "s1:2: 3 fields, expected 4 (query, rank, id, score)" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\t0.5\tkey\n" },
		  "s1:2: 5 fields, expected 4 (query, rank, id, score)" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=yes\n0\t1\t2\t0.5\n" },
		  "s1:2: 4 fields, expected 5 (query, rank, id, score, key)" },
		{ { "#vec-query k=3 metric=l2 format=csv keys=no\n0\t1\t2\t0.5\n" },
		  "s1:2: 1 field, expected 4 (query, rank, id, score)" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n\n" },
		  "s1:2: 1 field, expected 4 (query, rank, id, score)" },
		{ { "#vec-query k=3 metric=l2 format=csv keys=yes\n0,1,2,0.5,a,b\n" },
		  "s1:2: 6 fields, expected 5 (query, rank, id, score, key)" },
		{ { "#vec-query k=3 metric=l2 format=csv keys=yes\n0,1,2,0.5,a\"b\n" },
		  "s1:2: malformed key (a quote in an unquoted key)" },
		{ { "#vec-query k=3 metric=l2 format=csv keys=yes\n0,1,2,0.5,\"ab\"c\n" },
		  "s1:2: malformed key (text after its closing quote)" },
		{ { "#vec-query k=3 metric=l2 format=csv keys=yes\n0,1,2,0.5,\"ab\nc\n" },
		  "s1:2: the key's quote is never closed" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n-1\t1\t2\t0.5\n" },
		  "s1:2: bad query number '-1'" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\tx\t2\t0.5\n" },
		  "s1:2: bad rank 'x'" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t18446744073709551615\t0.5\n" },
		  "s1:2: bad id '18446744073709551615'" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\t 0.5\n" },
		  "s1:2: bad score ' 0.5'" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\tnan\n" },
		  "s1:2: bad score 'nan'" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\t0.5x\n" },
		  "s1:2: bad score '0.5x'" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\t0.5\n0\t3\t4\t0.6\n" },
		  "s1:3: rank 3 after rank 1 of query 0 (ranks out of order)" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t2\t2\t0.5\n" },
		  "s1:2: query 0 begins at rank 2 (ranks out of order)" },
		{ { "#vec-query k=2 metric=l2 format=tsv keys=no\n0\t1\t2\t0.5\n0\t2\t3\t0.6\n0\t3\t4\t0.7\n" },
		  "s1:4: rank 3, more than k=2" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\t0.5\n0\t2\t3\t0.4\n" },
		  "s1:3: score 0.4 is better than rank 1's (scores out of order)" },
		{ { "#vec-query k=3 metric=ip format=tsv keys=no\n0\t1\t2\t0.5\n0\t2\t3\t0.6\n" },
		  "s1:3: score 0.6 is better than rank 1's (scores out of order)" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n1\t1\t2\t0.5\n0\t1\t3\t0.4\n" },
		  "s1:3: query 0 after query 1 (query numbers go backwards)" },
		{ { "#vec-query k=3 metric=l2 format=tsv keys=no\n0\t1\t2\t0.5" },
		  "s1:2: incomplete last line (no newline at the end)" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct vec_merge *m;
		struct vec_errbuf eb = { 0 };
		int n = cases[i].in[1] ? 2 : 1;
		int rc;

		EXPECT(vec_merge_new(&m, &eb) == VEC_OK);
		rc = read_strs(m, &eb, n, cases[i].in);
		EXPECT_MSG(rc == VEC_E_FORMAT, "case %zu: status %d", i, rc);
		EXPECT_MSG(!strcmp(eb.msg, cases[i].msg), "case %zu: %s", i, eb.msg);
		vec_merge_free(m);
	}
}

/* Files: missing, a directory, an empty one; nothing at all to merge. */
static void test_merge_files(void)
{
	struct vec_merge *m;
	struct vec_errbuf eb = { 0 };
	const char *p = tpath("r.tsv");
	char want[4400];

	EXPECT(vec_merge_new(&m, &eb) == VEC_OK);
	put_str(p, "#vec-query k=1 metric=l2 format=tsv keys=no\n0\t1\t2\t0.5\n");
	EXPECT(vec_merge_read(m, p, &eb) == VEC_OK);
	put_str(tpath("empty"), "");
	EXPECT(vec_merge_read(m, tpath("empty"), &eb) == VEC_OK);
	EXPECT(vec_merge_read(m, tpath("none"), &eb) == VEC_E_IO);
	snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
		 tpath("none"));
	EXPECT_MSG(!strcmp(eb.msg, want), "%s", eb.msg);
	EXPECT(vec_merge_read(m, unit_tmpdir, &eb) == VEC_E_IO);
	snprintf(want, sizeof want, "%s: is a directory", unit_tmpdir);
	EXPECT_MSG(!strcmp(eb.msg, want), "%s", eb.msg);
	EXPECT(vec_merge_finish(m, 0, &eb) == VEC_OK);
	EXPECT_MSG(!strcmp(rows_text(m), "0 1 2 0.5\n"), "%s", rows_text(m));
	vec_merge_free(m);

	EXPECT(vec_merge_new(&m, &eb) == VEC_OK);
	EXPECT(vec_merge_read(m, tpath("empty"), &eb) == VEC_OK);
	EXPECT(vec_merge_finish(m, 0, &eb) == VEC_E_FORMAT);
	EXPECT_MSG(!strcmp(eb.msg, "nothing to merge: no description line \"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no\" in the input"),
		   "%s", eb.msg);
	vec_merge_free(m);
}

void suite_merge(void)
{
	RUN(test_sniff);
	RUN(test_shards_equal_one_index);
	RUN(test_shards_chunks);
	RUN(test_shards_check);
	RUN(test_merge_runs);
	RUN(test_merge_larger_is_better);
	RUN(test_merge_keys);
	RUN(test_merge_scores_exact);
	RUN(test_merge_refusals);
	RUN(test_merge_files);
}
