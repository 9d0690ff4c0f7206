/*
 * test_hnsw.c - the HNSW graph against exact search: recall for every
 * metric at the default ef, reproducible one-thread builds, the sections
 * through a real file and back, growth in steps, threaded builds, tiny
 * graphs, every SIMD level, and hostile sections (check and open refuse
 * them; search never follows a bad link).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hnsw.h"
#include "internal.h"
#include "sq8.h"
#include "unit.h"

#define N 5000
#define DIM 32
#define NQ 200
#define K 10
#define CLUSTERS 40

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
/* xorshift64: a fixed sequence, so that failures reproduce. */
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static double unif(void)
{
	return ((double)(rng() >> 11) + 0.5) / (double)(1ull << 53);
}

/* Standard normal (Box-Muller). */
static float gauss(void)
{
	return (float)(sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif()));
}

/* n points (then nq queries) around CLUSTERS gaussian centres. */
static float *clustered(size_t n, int metric)
{
	static float centre[CLUSTERS][DIM];
	float *x = malloc(n * DIM * sizeof *x);

	rng_state = 0x9e3779b97f4a7c15u;
	for (int c = 0; c < CLUSTERS; c++)
		for (int d = 0; d < DIM; d++)
			centre[c][d] = 1.5f * gauss();
	for (size_t i = 0; i < n; i++) {
		int c = (int)(rng() % CLUSTERS);
		for (int d = 0; d < DIM; d++)
			x[i * DIM + d] = centre[c][d] + gauss();
		if (metric == VEC_METRIC_COS)
			vec_normalize(x + i * DIM, DIM);
	}
	return x;
}

struct fixture {
	int metric;
	float *x;         /* N base rows, then NQ queries */
	float *norms;
	struct vec_vectors v;
	uint64_t gt[NQ * K];
};

static void fixture_init(struct fixture *f, int metric)
{
	float sc[NQ * K];

	f->metric = metric;
	f->x = clustered(N + NQ, metric);
	f->norms = malloc(N * sizeof *f->norms);
	for (size_t i = 0; i < N; i++)
		f->norms[i] = vec_dot(f->x + i * DIM, f->x + i * DIM, DIM);
	f->v.x = f->x;
	f->v.norms = metric == VEC_METRIC_L2 ? f->norms : NULL;
	f->v.dim = DIM;
	f->v.metric = metric;
	f->v.count = N;
	vec_flat_search(f->x, f->v.norms, N, DIM, metric, f->x + N * DIM, NQ, K,
			1, f->gt, sc);
}

static void fixture_free(struct fixture *f)
{
	free(f->x);
	free(f->norms);
}

static struct vec_hnsw *build(const struct fixture *f, int threads,
			      uint64_t steps)
{
	struct vec_hnsw_params p = { 16, 100, 7, 0 };
	struct vec_hnsw *g = NULL;
	struct vec_vectors v = f->v;

	if (vec_hnsw_create(&g, &p, DIM, f->metric, NULL))
		return NULL;
	for (uint64_t s = 1; s <= steps; s++) {
		v.count = N * s / steps;
		if (vec_hnsw_insert(g, &v, threads, NULL)) {
			vec_hnsw_free(g);
			return NULL;
		}
	}
	return g;
}

/* recall@K of the graph at ef against the exact answers. */
static double recall(const struct vec_hnsw *g, const struct fixture *f,
		     size_t ef, uint64_t *ids_out, float *sc_out)
{
	uint64_t ids[NQ * K];
	float sc[NQ * K];
	size_t hit = 0;

	if (vec_hnsw_search(g, &f->v, f->x + N * DIM, NQ, K, ef, 2, ids, sc, NULL))
		return -1;
	for (size_t q = 0; q < NQ; q++)
		for (size_t i = 0; i < K; i++)
			for (size_t j = 0; j < K; j++)
				if (ids[q * K + i] == f->gt[q * K + j]) {
					hit++;
					break;
				}
	if (ids_out)
		memcpy(ids_out, ids, sizeof ids);
	if (sc_out)
		memcpy(sc_out, sc, sizeof sc);
	return (double)hit / (NQ * K);
}

/* No id twice in a row of results, every real id < n, padding last. */
static int rows_sane(const uint64_t *ids, size_t nq, size_t k, uint64_t n)
{
	for (size_t q = 0; q < nq; q++) {
		int pad = 0;
		for (size_t i = 0; i < k; i++) {
			uint64_t a = ids[q * k + i];
			if (a == UINT64_MAX) {
				pad = 1;
				continue;
			}
			if (pad || a >= n)
				return 0;
			for (size_t j = 0; j < i; j++)
				if (ids[q * k + j] == a)
					return 0;
		}
	}
	return 1;
}

static struct fixture fx_l2;
static struct vec_hnsw *g_l2;

static void test_recall_l2(void)
{
	uint64_t ids[NQ * K];
	double r;

	EXPECT(g_l2 != NULL);
	if (!g_l2)
		return;
	r = recall(g_l2, &fx_l2, 0, ids, NULL);
	EXPECT_MSG(r >= 0.95, "recall %.4f", r);
	EXPECT(rows_sane(ids, NQ, K, N));
	EXPECT(vec_hnsw_count(g_l2) == N);
	EXPECT(vec_hnsw_default_ef(g_l2, 500) >= 500);
}

static void test_recall_metric(int metric)
{
	struct fixture f;
	struct vec_hnsw *g;
	uint64_t ids[NQ * K];
	float sc[NQ * K];
	double r;

	fixture_init(&f, metric);
	g = build(&f, 2, 1);
	EXPECT(g != NULL);
	if (g) {
		r = recall(g, &f, 0, ids, sc);
		EXPECT_MSG(r >= 0.95, "metric %d: recall %.4f", metric, r);
		EXPECT(rows_sane(ids, NQ, K, N));
		/* Scores are inner products, best first. */
		for (size_t q = 0; q < NQ; q++)
			for (size_t i = 1; i < K; i++)
				EXPECT(sc[q * K + i - 1] >= sc[q * K + i]);
		EXPECT(fabsf(sc[0] - vec_dot(f.x + N * DIM, f.x + ids[0] * DIM, DIM)) < 1e-4f);
	}
	vec_hnsw_free(g);
	fixture_free(&f);
}

static void test_recall_ip(void)
{
	test_recall_metric(VEC_METRIC_IP);
}

static void test_recall_cos(void)
{
	test_recall_metric(VEC_METRIC_COS);
}

/* Serialise a graph's sections into one buffer, as a parsed file. */
static uint8_t *flatten(struct vec_hnsw *g, struct vec_file *f)
{
	struct vec_file_section secs[VEC_HNSW_MAX_SECTIONS];
	size_t n = 0, total = 0, at = 0;
	uint8_t *buf;

	if (vec_hnsw_sections(g, secs, &n, NULL))
		return NULL;
	for (size_t i = 0; i < n; i++)
		total += (secs[i].length + 63) / 64 * 64;
	buf = calloc(total + 64, 1);
	memset(f, 0, sizeof *f);
	f->name = "test";
	f->n_sections = n;
	for (size_t i = 0; i < n; i++) {
		memcpy(buf + at, secs[i].data, secs[i].length);
		f->sec[i] = secs[i];
		f->sec[i].data = buf + at;
		at += (secs[i].length + 63) / 64 * 64;
	}
	return buf;
}

static struct vec_file_section *sec_of(struct vec_file *f, uint32_t id)
{
	for (size_t i = 0; i < f->n_sections; i++)
		if (f->sec[i].id == id)
			return &f->sec[i];
	return NULL;
}

static void test_deterministic(void)
{
	struct vec_hnsw *a = build(&fx_l2, 1, 1), *b = build(&fx_l2, 1, 1);
	struct vec_file fa, fb;
	uint8_t *ba, *bb;

	EXPECT(a && b);
	if (!a || !b)
		goto out;
	ba = flatten(a, &fa);
	bb = flatten(b, &fb);
	EXPECT(fa.n_sections == fb.n_sections);
	for (size_t i = 0; i < fa.n_sections && i < fb.n_sections; i++) {
		EXPECT(fa.sec[i].id == fb.sec[i].id);
		EXPECT(fa.sec[i].length == fb.sec[i].length);
		EXPECT_MSG(fa.sec[i].length == fb.sec[i].length &&
				   !memcmp(fa.sec[i].data, fb.sec[i].data, fa.sec[i].length),
			   "section %zu differs", i);
	}
	free(ba);
	free(bb);
out:
	vec_hnsw_free(a);
	vec_hnsw_free(b);
}

static void test_round_trip(void)
{
	struct vec_file_section secs[VEC_HNSW_MAX_SECTIONS];
	struct vec_hnsw_stats st;
	struct vec_hnsw *o = NULL;
	struct vec_file f;
	char path[4200];
	size_t n = 0;
	uint64_t ids1[NQ * K], ids2[NQ * K];
	float sc1[NQ * K], sc2[NQ * K];
	uint8_t *buf = NULL;
	long len;
	FILE *fp;

	if (!g_l2)
		return;
	snprintf(path, sizeof path, "%s/hnsw.vec", unit_tmpdir);
	EXPECT(vec_hnsw_sections(g_l2, secs, &n, NULL) == VEC_OK);
	EXPECT(n >= 3 && n <= VEC_HNSW_MAX_SECTIONS);
	EXPECT(vec_file_write(path, VEC_TYPE_HNSW, VEC_METRIC_L2, DIM, N, secs, n,
			      NULL) == VEC_OK);
	fp = fopen(path, "rb");
	EXPECT(fp != NULL);
	if (!fp)
		return;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)len);
	EXPECT(fread(buf, 1, (size_t)len, fp) == (size_t)len);
	fclose(fp);
	EXPECT(vec_file_parse(&f, path, buf, (size_t)len, NULL) == VEC_OK);
	EXPECT(vec_file_verify(&f, NULL) == VEC_OK);
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, NULL) == VEC_OK);
	if (o) {
		EXPECT(vec_hnsw_check(o, NULL) == VEC_OK);
		EXPECT(vec_hnsw_count(o) == N);
		recall(g_l2, &fx_l2, 40, ids1, sc1);
		recall(o, &fx_l2, 40, ids2, sc2);
		EXPECT(!memcmp(ids1, ids2, sizeof ids1));
		EXPECT(!memcmp(sc1, sc2, sizeof sc1));
		vec_hnsw_stats(o, &st);
		EXPECT(st.M == 16 && st.M0 == 32 && st.ef_construction == 100);
		EXPECT(st.seed == 7 && st.levels >= 2);
		EXPECT(st.nodes_per_level[0] == N);
		EXPECT(st.nodes_per_level[1] > 0 && st.nodes_per_level[1] < N / 4);
		EXPECT(st.max_degree0 <= 32 && st.avg_degree0 > 4);
		{
			/* What the file holds: HNSL and HNSU. */
			uint64_t gb = 0;
			for (size_t i = 0; i < f.n_sections; i++)
				if (f.sec[i].id == VEC_SEC_HNSL || f.sec[i].id == VEC_SEC_HNSU)
					gb += f.sec[i].length;
			EXPECT_MSG(st.graph_bytes == gb, "graph bytes %llu, sections %llu",
				   (unsigned long long)st.graph_bytes, (unsigned long long)gb);
		}
		EXPECT(st.extra_bytes >= (uint64_t)N * DIM);
		/* A change copies the mapped graph first. */
		EXPECT(vec_hnsw_insert(o, &fx_l2.v, 1, NULL) == VEC_OK);
		recall(o, &fx_l2, 40, ids2, sc2);
		EXPECT(!memcmp(ids1, ids2, sizeof ids1));
	}
	vec_hnsw_free(o);
	free(buf);
}

static void test_growth(void)
{
	struct vec_hnsw *g = build(&fx_l2, 1, 10);
	double r1, r10;

	EXPECT(g != NULL);
	if (!g || !g_l2) {
		vec_hnsw_free(g);
		return;
	}
	/* At ef = k, where the graph's quality shows. */
	r1 = recall(g_l2, &fx_l2, K, NULL, NULL);
	r10 = recall(g, &fx_l2, K, NULL, NULL);
	EXPECT_MSG(r10 >= r1 - 0.01, "one build %.4f, ten steps %.4f", r1, r10);
	EXPECT(vec_hnsw_check(g, NULL) == VEC_OK);
	vec_hnsw_free(g);
}

static void test_threads(void)
{
	struct vec_hnsw *g1 = build(&fx_l2, 1, 1);
	double r1, r2;

	EXPECT(g1 != NULL);
	if (!g1 || !g_l2) {
		vec_hnsw_free(g1);
		return;
	}
	r1 = recall(g1, &fx_l2, K, NULL, NULL);
	r2 = recall(g_l2, &fx_l2, K, NULL, NULL); /* built with 2 threads */
	EXPECT_MSG(r2 >= r1 - 0.01, "1 thread %.4f, 2 threads %.4f", r1, r2);
	EXPECT(vec_hnsw_check(g_l2, NULL) == VEC_OK);
	vec_hnsw_free(g1);
}

/* The traversal is exact integer arithmetic: every level finds the same. */
static void test_simd_levels(void)
{
	uint64_t ref[NQ * K], ids[NQ * K];
	size_t same = 0;

	if (!g_l2)
		return;
	recall(g_l2, &fx_l2, 0, ref, NULL);
	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
		if (!vec_kernels_for(level))
			continue;
		vec_simd_select(level);
		recall(g_l2, &fx_l2, 0, ids, NULL);
		same = 0;
		for (size_t i = 0; i < NQ * K; i++)
			same += ids[i] == ref[i];
		EXPECT_MSG(same >= NQ * K * 99 / 100, "level %d: %zu of %d agree",
			   level, same, NQ * K);
	}
	vec_simd_select(VEC_SIMD_NEON); /* the best this CPU has */
}

/*
 * A thread's queries take turns a node at a time: each must still get, to
 * the bit, the answer it gets searched alone, whatever the batch's size
 * (not a multiple of the turn group), ef, or thread count.
 */
static void test_batch_vs_one(void)
{
	static const size_t efs[] = { 10, 37, 120 };
	static const size_t nqs[] = { 1, 3, 5, 13, NQ };
	uint64_t *ids = malloc(NQ * K * sizeof *ids), one_id[K];
	float *sc = malloc(NQ * K * sizeof *sc), one_sc[K];
	const float *q = fx_l2.x + N * DIM;
	int compared = 0;

	if (!g_l2 || !ids || !sc) {
		EXPECT(g_l2 != NULL);
		free(ids);
		free(sc);
		return;
	}
	for (size_t e = 0; e < sizeof efs / sizeof *efs; e++)
		for (size_t a = 0; a < sizeof nqs / sizeof *nqs; a++)
			for (int t = 1; t <= 2; t++) {
				size_t nq = nqs[a], bad = 0;
				EXPECT(vec_hnsw_search(g_l2, &fx_l2.v, q, nq, K, efs[e], t,
						       ids, sc, NULL) == VEC_OK);
				for (size_t i = 0; i < nq; i++) {
					EXPECT(vec_hnsw_search(g_l2, &fx_l2.v, q + i * DIM, 1, K,
							       efs[e], 1, one_id, one_sc,
							       NULL) == VEC_OK);
					bad += memcmp(one_id, ids + i * K, sizeof one_id) != 0 ||
					       memcmp(one_sc, sc + i * K, sizeof one_sc) != 0;
				}
				EXPECT_MSG(bad == 0, "ef %zu nq %zu threads %d: %zu queries differ",
					   efs[e], nq, t, bad);
				compared++;
			}
	EXPECT(compared == 30);
	free(ids);
	free(sc);
}

static void test_few_nodes(void)
{
	static const uint64_t sizes[] = { 0, 1, 3 };

	for (size_t t = 0; t < 3; t++) {
		struct vec_hnsw *g = NULL;
		struct vec_vectors v = fx_l2.v;
		uint64_t ids[2 * K];
		float sc[2 * K];
		uint64_t n = sizes[t];

		v.count = n;
		EXPECT(vec_hnsw_create(&g, NULL, DIM, VEC_METRIC_L2, NULL) == VEC_OK);
		if (!g)
			continue;
		EXPECT(vec_hnsw_insert(g, &v, 2, NULL) == VEC_OK);
		EXPECT(vec_hnsw_search(g, &v, fx_l2.x + N * DIM, 2, K, 0, 1, ids, sc,
				       NULL) == VEC_OK);
		EXPECT(rows_sane(ids, 2, K, n));
		for (size_t q = 0; q < 2; q++)
			for (size_t i = 0; i < K; i++) {
				if (i < n) {
					EXPECT(ids[q * K + i] < n);
					EXPECT(isfinite(sc[q * K + i]));
				} else {
					EXPECT(ids[q * K + i] == UINT64_MAX);
					EXPECT(sc[q * K + i] == INFINITY);
				}
			}
		if (n == 3) /* all three, nearest first */
			for (size_t i = 1; i < 3; i++)
				EXPECT(sc[i - 1] <= sc[i]);
		vec_hnsw_free(g);
	}
}

static void put32(struct vec_file_section *s, size_t word, uint32_t v)
{
	uint8_t *b = (uint8_t *)(uintptr_t)s->data + word * 4;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

/* Link field `at` of HNSL's ids, w bits each, little-endian bit order. */
static uint32_t get_link(const uint8_t *ids, uint64_t at, unsigned w)
{
	uint64_t v = 0;
	for (unsigned k = 0; k < w; k++) {
		uint64_t b = at * w + k;
		v |= (uint64_t)((ids[b / 8] >> (b % 8)) & 1) << k;
	}
	return (uint32_t)v;
}

static void put_link(uint8_t *ids, uint64_t at, unsigned w, uint32_t v)
{
	for (unsigned k = 0; k < w; k++) {
		uint64_t b = at * w + k;
		ids[b / 8] = (uint8_t)((ids[b / 8] & ~(1u << (b % 8))) |
				       ((v >> k) & 1u) << (b % 8));
	}
}

static void test_corrupt(void)
{
	struct vec_hnsw *o = NULL;
	struct vec_file f;
	struct vec_errbuf eb;
	struct vec_file_section *s0, *su, *sp;
	uint8_t *buf;
	uint64_t ids[NQ * K];
	float sc[NQ * K];
	uint64_t len0;

	if (!g_l2)
		return;
	buf = flatten(g_l2, &f);
	s0 = sec_of(&f, VEC_SEC_HNSL);
	su = sec_of(&f, VEC_SEC_HNSU);
	sp = sec_of(&f, VEC_SEC_HNSP);
	EXPECT(s0 && su && sp);
	if (!s0 || !su || !sp) {
		free(buf);
		return;
	}

	/* A link past the last node (node 5's first: HNSL is one base, N + 1
	 * offsets, then ids of 13 bits, enough for N - 1 = 4999): check
	 * finds it, search survives it. */
	EXPECT(sp->data[53] == 13);
	{
		uint8_t *ids0 = (uint8_t *)(uintptr_t)s0->data + 8 + (N + 1) * 4;
		uint32_t at5 = vec_get_le32(s0->data + 8 + 5 * 4);
		EXPECT(vec_get_le32(s0->data + 8 + 6 * 4) > at5);
		EXPECT(get_link(ids0, at5, 13) < N);
		put_link(ids0, at5, 13, N + 5);
	}
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, NULL) == VEC_OK);
	if (o) {
		EXPECT(vec_hnsw_check(o, &eb) == VEC_E_CORRUPT);
		EXPECT(strstr(eb.msg, "link") != NULL);
		EXPECT(vec_hnsw_search(o, &fx_l2.v, fx_l2.x + N * DIM, NQ, K, 64, 1,
				       ids, sc, NULL) == VEC_OK);
		EXPECT(rows_sane(ids, NQ, K, N));
		vec_hnsw_free(o);
		o = NULL;
	}
	/* Offsets that fall back, or step by more than M0, or an epoch not
	 * starting at 0: refused at open (a degree must fit M0). */
	{
		uint32_t o5 = vec_get_le32(s0->data + 8 + 5 * 4);
		uint32_t o0 = vec_get_le32(s0->data + 8);
		put32(s0, 2 + 5, vec_get_le32(s0->data + 8 + 4 * 4) - 1);
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
		EXPECT(o == NULL && strstr(eb.msg, "HNSL") != NULL);
		put32(s0, 2 + 5, vec_get_le32(s0->data + 8 + 4 * 4) + 33);
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
		put32(s0, 2 + 5, o5);
		put32(s0, 2, 1);
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
		put32(s0, 2, o0);
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, NULL) == VEC_OK);
		vec_hnsw_free(o);
		o = NULL;
	}

	/* Sizes: truncated level 0, a short HNSU, a longer HNSP. */
	len0 = s0->length;
	s0->length -= 4;
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
	EXPECT(o == NULL);
	s0->length = len0;
	su->length -= 4;
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
	su->length += 4;
	sp->length += 4;
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
	sp->length -= 4;
	/* More nodes than vectors, a bad entry point, a reserved byte. */
	{
		struct vec_vectors v = fx_l2.v;
		v.count = N - 1;
		EXPECT(vec_hnsw_open(&o, &f, &v, &eb) == VEC_E_CORRUPT);
	}
	put32(sp, 8, N);
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
	put32(sp, 8, 0);
	put32(sp, 15, 1);
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
	put32(sp, 15, 0);
	/* An upper level offset that jumps. */
	put32(su, 10, 0xffffff00u);
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
	EXPECT(o == NULL);
	free(buf);
}

/*
 * 4-bit traversal codes: the default from VEC_HNSW_SQ4_DIM on; a graph
 * built with them finds the neighbours, scores them exactly, grows,
 * round-trips through its sections with the same answers, and a file
 * whose code bits are damaged is refused.
 */
static void test_sq4(void)
{
	struct vec_hnsw_params p = { 16, 100, 7, 4 };
	struct vec_hnsw *g = NULL, *o = NULL, *h = NULL;
	struct vec_hnsw_stats st;
	struct vec_vectors half = fx_l2.v;
	struct vec_file f;
	struct vec_errbuf eb;
	struct vec_file_section *sp;
	uint64_t ids1[NQ * K], ids2[NQ * K];
	float sc1[NQ * K], sc2[NQ * K];
	uint8_t *buf;
	double r, r8, rh;

	EXPECT(vec_hnsw_create(&h, NULL, VEC_HNSW_SQ4_DIM, VEC_METRIC_L2, NULL) == VEC_OK);
	if (h) {
		vec_hnsw_stats(h, &st);
		EXPECT(st.code_bits == 4);
		vec_hnsw_free(h);
		h = NULL;
	}
	EXPECT(vec_hnsw_create(&h, NULL, VEC_HNSW_SQ4_DIM - 1, VEC_METRIC_L2, NULL) == VEC_OK);
	if (h) {
		vec_hnsw_stats(h, &st);
		EXPECT(st.code_bits == 8);
		vec_hnsw_free(h);
		h = NULL;
	}
	p.sq_bits = 6;
	EXPECT(vec_hnsw_create(&h, &p, DIM, VEC_METRIC_L2, &eb) == VEC_E_USAGE);
	EXPECT(h == NULL && strstr(eb.msg, "bits") != NULL);
	p.sq_bits = 4;

	if (!g_l2 || vec_hnsw_create(&g, &p, DIM, VEC_METRIC_L2, NULL) != VEC_OK)
		return;
	EXPECT(vec_hnsw_insert(g, &fx_l2.v, 2, NULL) == VEC_OK);
	vec_hnsw_stats(g, &st);
	EXPECT(st.code_bits == 4);
	/* Rows this short stay padded (64 bytes), so no spare bytes. */
	EXPECT(st.extra_bytes == (uint64_t)N * vec_sq4_stride(DIM) + (2 * DIM + N) * 4);
	r = recall(g, &fx_l2, 64, ids1, sc1);
	r8 = recall(g_l2, &fx_l2, 64, NULL, NULL);
	EXPECT_MSG(r >= 0.95 && r >= r8 - 0.03, "recall %.4f (8 bits: %.4f)", r, r8);
	/* Scores come from the full vectors, not the codes. */
	EXPECT(fabsf(sc1[0] - sqrtf(vec_l2sq(fx_l2.x + N * DIM,
					      fx_l2.x + ids1[0] * DIM, DIM))) < 1e-4f);

	/* Grown in two steps (the second's rows fit the first's ranges or
	 * retrain them): about the same recall. */
	EXPECT(vec_hnsw_create(&h, &p, DIM, VEC_METRIC_L2, NULL) == VEC_OK);
	if (h) {
		half.count = N / 2;
		EXPECT(vec_hnsw_insert(h, &half, 2, NULL) == VEC_OK);
		EXPECT(vec_hnsw_insert(h, &fx_l2.v, 2, NULL) == VEC_OK);
		rh = recall(h, &fx_l2, 64, NULL, NULL);
		EXPECT_MSG(rh >= r - 0.02, "grown: recall %.4f, at once %.4f", rh, r);
		vec_hnsw_free(h);
	}

	buf = flatten(g, &f);
	EXPECT(buf != NULL);
	if (!buf) {
		vec_hnsw_free(g);
		return;
	}
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, NULL) == VEC_OK);
	if (o) {
		vec_hnsw_stats(o, &st);
		EXPECT(st.code_bits == 4);
		recall(o, &fx_l2, 64, ids2, sc2);
		EXPECT(!memcmp(ids1, ids2, sizeof ids1));
		EXPECT(!memcmp(sc1, sc2, sizeof sc1));
		vec_hnsw_free(o);
		o = NULL;
	}
	sp = sec_of(&f, VEC_SEC_HNSP);
	EXPECT(sp != NULL);
	if (sp) {
		/* Version 3 says the bits in byte 52 (only 4 and 8 exist)
		 * and the bits of a level-0 link in 53 (those of N - 1). */
		EXPECT(vec_get_le32(sp->data) == 3 && sp->data[52] == 4 &&
		       sp->data[53] == 13);
		((uint8_t *)sp->data)[52] = 5;
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
		EXPECT(o == NULL && strstr(eb.msg, "code bits") != NULL);
		((uint8_t *)sp->data)[52] = 4;
		((uint8_t *)sp->data)[53] = 14;
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
		EXPECT(o == NULL && strstr(eb.msg, "link bits") != NULL);
		((uint8_t *)sp->data)[53] = 13;
		((uint8_t *)sp->data)[54] = 1;
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
		EXPECT(o == NULL && strstr(eb.msg, "reserved byte 54") != NULL);
		((uint8_t *)sp->data)[54] = 0;
		/* Versions 1 and 2 keep level 0 in HNS0. */
		put32(sp, 0, 2);
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
		EXPECT(o == NULL && strstr(eb.msg, "HNS0") != NULL);
		put32(sp, 0, 4);
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_VERSION);
		EXPECT(o == NULL);
		put32(sp, 0, 3);
		/* A stride neither packed nor padded. */
		put32(sp, 12, (uint32_t)vec_sq4_packed(DIM) + 1);
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, &eb) == VEC_E_CORRUPT);
		EXPECT(o == NULL && strstr(eb.msg, "stride") != NULL);
		put32(sp, 12, (uint32_t)vec_sq4_stride(DIM));
		EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, NULL) == VEC_OK);
		vec_hnsw_free(o);
	}
	free(buf);
	vec_hnsw_free(g);
}

/*
 * A file without the quantised copy (HSQ8, HSQN: another writer may
 * leave them out) opens with the codes rebuilt from the vectors, with the
 * bits HNSP names: for a graph built in one step, the same codes, so the
 * same answers to the bit.
 */
static void rebuilt_codes(struct vec_hnsw *g, unsigned bits)
{
	struct vec_hnsw *o = NULL;
	struct vec_hnsw_stats st, st0;
	struct vec_file f;
	uint64_t ids1[NQ * K], ids2[NQ * K];
	float sc1[NQ * K], sc2[NQ * K];
	uint8_t *buf = flatten(g, &f);
	size_t kept = 0, dropped = 0;

	EXPECT(buf != NULL);
	if (!buf)
		return;
	for (size_t i = 0; i < f.n_sections; i++) {
		if (f.sec[i].id == VEC_FOURCC('H', 'S', 'Q', '8') ||
		    f.sec[i].id == VEC_FOURCC('H', 'S', 'Q', 'N')) {
			dropped++;
			continue;
		}
		f.sec[kept++] = f.sec[i];
	}
	f.n_sections = kept;
	EXPECT(dropped == 2);
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, NULL) == VEC_OK);
	if (o) {
		vec_hnsw_stats(g, &st0);
		vec_hnsw_stats(o, &st);
		EXPECT_MSG(st.code_bits == bits && st.extra_bytes == st0.extra_bytes,
			   "%u bits: rebuilt as %u bits, %llu bytes", bits, st.code_bits,
			   (unsigned long long)st.extra_bytes);
		recall(g, &fx_l2, 40, ids1, sc1);
		recall(o, &fx_l2, 40, ids2, sc2);
		EXPECT_MSG(!memcmp(ids1, ids2, sizeof ids1) && !memcmp(sc1, sc2, sizeof sc1),
			   "%u bits: other answers from the rebuilt codes", bits);
		vec_hnsw_free(o);
	}
	free(buf);
}

/*
 * Files of versions 1 and 2 (level 0 in fixed rows of 1 + M0 u32, HNS0;
 * code rows padded to 64 bytes; version 1: 8 bits, no bits byte), made
 * here from a version-3 graph's sections by the documented layouts,
 * open and answer as the graph does; saving one writes version 3 again,
 * with the same answers.
 */
static void old_format(struct vec_hnsw *g, unsigned bits)
{
	struct vec_file f, f2;
	struct vec_file_section *sp, *sl, *sq;
	struct vec_hnsw *o = NULL, *o2 = NULL;
	uint64_t ids1[NQ * K], ids2[NQ * K];
	float sc1[NQ * K], sc2[NQ * K];
	uint8_t *buf = flatten(g, &f), *buf2 = NULL, *hnsp, *l0, *codes;
	size_t padded = bits == 4 ? vec_sq4_stride(DIM) : vec_sq8_stride(DIM), st = 0;
	unsigned w = 0;

	if (!buf)
		return;
	sp = sec_of(&f, VEC_SEC_HNSP);
	sl = sec_of(&f, VEC_SEC_HNSL);
	sq = sec_of(&f, VEC_FOURCC('H', 'S', 'Q', '8'));
	EXPECT(sp && sl && sq && sl->data[0] == 0);
	if (sp) {
		st = vec_get_le32(sp->data + 48); /* packed or padded */
		w = sp->data[53];
		EXPECT(w == 13 && st >= (bits == 4 ? DIM / 2 : DIM) && st <= padded);
	}
	hnsp = malloc(64);
	l0 = calloc((size_t)N * 33, 4);
	codes = calloc((size_t)N, padded);
	if (!sp || !sl || !sq || !hnsp || !l0 || !codes)
		goto out;
	memcpy(hnsp, sp->data, 64);
	vec_put_le32(hnsp, bits == 8 ? 1 : 2);
	hnsp[52] = bits == 8 ? 0 : (uint8_t)bits;
	hnsp[53] = 0;
	vec_put_le32(hnsp + 48, (uint32_t)padded);
	/* HNSL: one epoch base (0), N + 1 offsets, w-bit ids. */
	for (size_t i = 0; i < N; i++) {
		uint32_t a = vec_get_le32(sl->data + 8 + 4 * i);
		uint32_t b = vec_get_le32(sl->data + 8 + 4 * (i + 1));
		const uint8_t *ids0 = sl->data + 8 + 4 * (N + 1);
		vec_put_le32(l0 + 4 * 33 * i, b - a);
		for (uint32_t j = 0; j < b - a; j++)
			vec_put_le32(l0 + 4 * (33 * i + 1 + j), get_link(ids0, a + j, w));
	}
	for (size_t i = 0; i < N; i++)
		memcpy(codes + i * padded, sq->data + i * st, st);
	sp->data = hnsp;
	sl->id = VEC_SEC_HNS0;
	sl->data = l0;
	sl->length = (uint64_t)N * 33 * 4;
	sq->data = codes;
	sq->length = (uint64_t)N * padded;
	recall(g, &fx_l2, 40, ids1, sc1);
	EXPECT(vec_hnsw_open(&o, &f, &fx_l2.v, NULL) == VEC_OK);
	if (!o)
		goto out;
	EXPECT(vec_hnsw_check(o, NULL) == VEC_OK);
	recall(o, &fx_l2, 40, ids2, sc2);
	EXPECT_MSG(!memcmp(ids1, ids2, sizeof ids1) && !memcmp(sc1, sc2, sizeof sc1),
		   "version %d: other answers", bits == 8 ? 1 : 2);
	buf2 = flatten(o, &f2);
	EXPECT(buf2 && sec_of(&f2, VEC_SEC_HNSL) && !sec_of(&f2, VEC_SEC_HNS0));
	EXPECT(buf2 && vec_hnsw_open(&o2, &f2, &fx_l2.v, NULL) == VEC_OK);
	if (o2) {
		recall(o2, &fx_l2, 40, ids2, sc2);
		EXPECT(!memcmp(ids1, ids2, sizeof ids1) && !memcmp(sc1, sc2, sizeof sc1));
	}
out:
	vec_hnsw_free(o);
	vec_hnsw_free(o2);
	free(buf);
	free(buf2);
	free(hnsp);
	free(l0);
	free(codes);
}

/* fn on the 8-bit graph g_l2, then on the same data with 4-bit codes. */
static void at_both_bits(void (*fn)(struct vec_hnsw *, unsigned))
{
	struct vec_hnsw_params p = { 16, 100, 7, 4 };
	struct vec_hnsw *g = NULL;

	if (!g_l2)
		return;
	fn(g_l2, 8);
	EXPECT(vec_hnsw_create(&g, &p, DIM, VEC_METRIC_L2, NULL) == VEC_OK);
	if (g && vec_hnsw_insert(g, &fx_l2.v, 2, NULL) == VEC_OK)
		fn(g, 4);
	vec_hnsw_free(g);
}

static void test_old_format(void)
{
	at_both_bits(old_format);
}

/*
 * Rows of 256 padded bytes or more are packed: 8-bit codes of 200
 * components take 200 bytes a row, then 64 spare bytes; the file answers
 * as the graph it was saved from, and its rows are the packed codes.
 */
static void test_packed_rows(void)
{
	const size_t dim = 200, n = 1500, nq = 50;
	struct vec_hnsw_params p = { 16, 100, 7, 8 };
	struct vec_hnsw *g = NULL, *o = NULL;
	struct vec_vectors v;
	struct vec_file f;
	struct vec_file_section *sq, *sp;
	float *x = malloc((n + nq) * dim * sizeof *x), sc1[50 * K], sc2[50 * K];
	uint64_t ids1[50 * K], ids2[50 * K], seed = 99;
	uint8_t *buf = NULL;

	for (size_t i = 0; i < (n + nq) * dim; i++)
		x[i] = unit_uniform(&seed) + (i / dim % 7 == i % 7 ? 2.0f : 0.0f);
	v.x = x;
	v.norms = NULL;
	v.dim = dim;
	v.metric = VEC_METRIC_IP;
	v.count = n;
	EXPECT(vec_hnsw_create(&g, &p, dim, VEC_METRIC_IP, NULL) == VEC_OK);
	if (!g || vec_hnsw_insert(g, &v, 2, NULL) != VEC_OK)
		goto out;
	buf = flatten(g, &f);
	sq = buf ? sec_of(&f, VEC_FOURCC('H', 'S', 'Q', '8')) : NULL;
	sp = buf ? sec_of(&f, VEC_SEC_HNSP) : NULL;
	EXPECT(sq && sp);
	if (!sq || !sp)
		goto out;
	EXPECT(vec_get_le32(sp->data + 48) == dim);
	EXPECT_MSG(sq->length == n * dim + VEC_SQ_SLACK, "HSQ8 %llu bytes",
		   (unsigned long long)sq->length);
	EXPECT(vec_hnsw_search(g, &v, x + n * dim, nq, K, 64, 1, ids1, sc1, NULL) == VEC_OK);
	EXPECT(vec_hnsw_open(&o, &f, &v, NULL) == VEC_OK);
	if (o) {
		EXPECT(vec_hnsw_search(o, &v, x + n * dim, nq, K, 64, 1, ids2, sc2,
				       NULL) == VEC_OK);
		EXPECT(!memcmp(ids1, ids2, sizeof ids1) && !memcmp(sc1, sc2, sizeof sc1));
	}
out:
	vec_hnsw_free(g);
	vec_hnsw_free(o);
	free(buf);
	free(x);
}

static void test_rebuilt_codes(void)
{
	at_both_bits(rebuilt_codes);
}

void suite_hnsw(void)
{
	fixture_init(&fx_l2, VEC_METRIC_L2);
	g_l2 = build(&fx_l2, 2, 1);
	RUN(test_recall_l2);
	RUN(test_recall_ip);
	RUN(test_recall_cos);
	RUN(test_deterministic);
	RUN(test_round_trip);
	RUN(test_growth);
	RUN(test_threads);
	RUN(test_simd_levels);
	RUN(test_batch_vs_one);
	RUN(test_few_nodes);
	RUN(test_corrupt);
	RUN(test_sq4);
	RUN(test_rebuilt_codes);
	RUN(test_old_format);
	RUN(test_packed_rows);
	vec_hnsw_free(g_l2);
	fixture_free(&fx_l2);
}
