/*
 * test_flat.c - vec_flat_search against a naive double-precision brute
 * force, for every metric, SIMD level and thread count, over shapes that
 * exercise every kernel path: a single query, narrow leftovers, padded and
 * full wide blocks, tiny bases, k larger than the base, split bases.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "unit.h"
#include "vec.h"

static uint64_t rng_state = 0x853c49e6748fea9bu;
/* xorshift64: a fixed sequence, so that failures reproduce. */
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Uniform in [-1, 1). */
static float frand(void)
{
	return (float)((double)(rng() >> 11) / (double)(1ull << 53) * 2 - 1);
}

/* One query's reference: every row's exact score, and the rows in order. */
struct ref {
	double *score;  /* nq * n: squared L2, or inner product */
	uint32_t *order; /* nq * n: rows best first, ties by id */
	double *mag;    /* nq: scale of the float error for this query */
};

static const double *cmp_row;
static int cmp_l2;

/* Best first: small distance / large product, then small id. */
static int order_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	double sx = cmp_row[x], sy = cmp_row[y];

	if (sx != sy)
		return (cmp_l2 ? sx < sy : sx > sy) ? -1 : 1;
	return x < y ? -1 : 1;
}

/* Exact scores in double and the true order, per query. */
static void ref_build(struct ref *r, const float *base, size_t n,
		      const float *q, size_t nq, size_t dim, int l2)
{
	r->score = malloc((nq * n + 1) * sizeof *r->score);
	r->order = malloc((nq * n + 1) * sizeof *r->order);
	r->mag = malloc(nq * sizeof *r->mag);
	for (size_t i = 0; i < nq; i++) {
		double qn = 0, xmax = 0;
		for (size_t d = 0; d < dim; d++)
			qn += (double)q[i * dim + d] * q[i * dim + d];
		for (size_t j = 0; j < n; j++) {
			double s = 0, xn = 0;
			for (size_t d = 0; d < dim; d++) {
				double a = q[i * dim + d], b = base[j * dim + d];
				s += l2 ? (a - b) * (a - b) : a * b;
				xn += b * b;
			}
			r->score[i * n + j] = s;
			r->order[i * n + j] = (uint32_t)j;
			if (xn > xmax)
				xmax = xn;
		}
		r->mag[i] = qn + xmax;
		cmp_row = r->score + i * n;
		cmp_l2 = l2;
		qsort(r->order + i * n, n, sizeof *r->order, order_cmp);
	}
}

/* Release what ref_build made. */
static void ref_free(struct ref *r)
{
	free(r->score);
	free(r->order);
	free(r->mag);
}

/*
 * Check one result against the reference.  exact: integer data, where
 * every score is exact and the answer must be the reference order itself.
 * Otherwise tie-aware: each returned row must be no worse than the true
 * k-th best plus a small multiple of float's error, and its reported score
 * must be close to its true one.  Returns the number of problems.
 */
static int check(const struct ref *r, size_t n, size_t nq, size_t k, int l2,
		 const uint64_t *ids, const float *sc, int exact,
		 const char *what)
{
	size_t want = n < k ? n : k;
	char *seen = malloc(n + 1);
	int bad = 0;

	for (size_t i = 0; i < nq && bad < 5; i++) {
		const double *row = r->score + i * n;
		const uint32_t *ord = r->order + i * n;
		double eps = 2e-5 * r->mag[i] + 1e-30;
		double kth = want ? row[ord[want - 1]] : 0;

		memset(seen, 0, n + 1);
		for (size_t e = 0; e < k; e++) {
			uint64_t id = ids[i * k + e];
			float s = sc[i * k + e];
			if (e >= want) {
				if (id != UINT64_MAX ||
				    s != (l2 ? INFINITY : -INFINITY)) {
					fprintf(stderr, "%s: q%zu rank %zu: padding %llu %g\n",
						what, i, e, (unsigned long long)id, s);
					bad++;
				}
				continue;
			}
			if (id >= n || seen[id]) {
				fprintf(stderr, "%s: q%zu rank %zu: bad id %llu\n",
					what, i, e, (unsigned long long)id);
				bad++;
				continue;
			}
			seen[id] = 1;
			double t = row[id];
			double got = l2 ? (double)s * s : s;
			if (exact) {
				/* sqrt of an exact float is correctly rounded */
				if (id != ord[e] ||
				    (l2 ? s != (float)sqrt(t) : got != t)) {
					fprintf(stderr, "%s: q%zu rank %zu: id %llu score %g, want %u %g\n",
						what, i, e, (unsigned long long)id, got,
						ord[e], row[ord[e]]);
					bad++;
				}
				continue;
			}
			if (l2 ? t > kth + eps : t < kth - eps) {
				fprintf(stderr, "%s: q%zu rank %zu: id %llu true %g, k-th %g\n",
					what, i, e, (unsigned long long)id, t, kth);
				bad++;
			}
			if (fabs(got - t) > eps) {
				fprintf(stderr, "%s: q%zu rank %zu: score %g, true %g\n",
					what, i, e, got, t);
				bad++;
			}
			if (e > 0 && (l2 ? s < sc[i * k + e - 1]
					 : s > sc[i * k + e - 1])) {
				fprintf(stderr, "%s: q%zu rank %zu: not sorted\n",
					what, i, e);
				bad++;
			}
		}
	}
	free(seen);
	return bad;
}

static const int metrics[] = { VEC_METRIC_L2, VEC_METRIC_IP, VEC_METRIC_COS };

/*
 * Search with every level and thread count and check each result.
 * Returns the number of failed searches.
 */
static int search_all(const float *base, const float *norms, size_t n,
		      size_t dim, int metric, const float *q, size_t nq,
		      const struct ref *r, const size_t *ks, size_t nks,
		      int exact)
{
	const struct vec_kernels *best = vec_kernels();
	int failed = 0;

	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
		if (!vec_kernels_for(level))
			continue;
		vec_simd_select(level);
		for (int threads = 1; threads <= 2; threads++) {
			for (size_t ki = 0; ki < nks; ki++) {
				size_t k = ks[ki];
				uint64_t *ids = malloc(nq * k * sizeof *ids);
				float *sc = malloc(nq * k * sizeof *sc);
				char what[160];
				int rc;

				snprintf(what, sizeof what,
					 "%s %s n=%zu dim=%zu nq=%zu k=%zu threads=%d%s",
					 vec_kernels()->name, vec_metric_name(metric),
					 n, dim, nq, k, threads,
					 norms ? " norms" : "");
				rc = vec_flat_search(base, norms, n, dim, metric,
						     q, nq, k, threads, ids, sc);
				EXPECT_MSG(rc == VEC_OK, "%s: rc %d", what, rc);
				if (rc != VEC_OK ||
				    check(r, n, nq, k, metric == VEC_METRIC_L2,
					  ids, sc, exact, what))
					failed++;
				free(ids);
				free(sc);
			}
		}
	}
	vec_simd_select(best->level);
	return failed;
}

/* Random data over the grid of shapes of the brief. */
static void test_flat_random(void)
{
	static const size_t nqs[] = { 1, 3, 17, 100 };
	static const size_t ns[] = { 1, 5, 1000, 3001 };
	static const size_t dims[] = { 1, 4, 17, 64, 100 };
	int failed = 0;

	for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
	for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
	for (size_t qi = 0; qi < sizeof nqs / sizeof *nqs; qi++) {
		size_t n = ns[ni], dim = dims[di], nq = nqs[qi];
		size_t ks[4] = { 1, 10, 100, n + 7 };
		float *base = malloc(n * dim * sizeof *base);
		float *q = malloc(nq * dim * sizeof *q);

		/* the biggest shapes only at a few dimensions: time */
		if (n == 3001 && nq == 100 && dim != 17 && dim != 100) {
			free(base);
			free(q);
			continue;
		}
		for (size_t m = 0; m < 3; m++) {
			int metric = metrics[m];
			struct ref r;
			for (size_t e = 0; e < n * dim; e++)
				base[e] = frand() * 2 + 0.5f;
			for (size_t e = 0; e < nq * dim; e++)
				q[e] = frand() * 2 + 0.5f;
			if (metric == VEC_METRIC_COS) {
				for (size_t j = 0; j < n; j++)
					vec_normalize(base + j * dim, dim);
				for (size_t j = 0; j < nq; j++)
					vec_normalize(q + j * dim, dim);
			}
			ref_build(&r, base, n, q, nq, dim,
				  metric == VEC_METRIC_L2);
			failed += search_all(base, NULL, n, dim, metric, q, nq,
					     &r, ks, 4, 0);
			ref_free(&r);
		}
		free(base);
		free(q);
	}
	EXPECT_MSG(failed == 0, "%d searches failed", failed);
}

/*
 * Integer-valued data (0..16, dim 64, like the digits set) drawn from a few
 * prototypes, so that many rows are exact duplicates: every score is exact
 * in float, and the result must be the reference order, ties by id.
 */
static void test_flat_integer_ties(void)
{
	const size_t n = 1500, dim = 64, nq = 40, protos = 30;
	const size_t ks[] = { 1, 10, 57, 100 };
	float *pr = malloc(protos * dim * sizeof *pr);
	float *base = malloc(n * dim * sizeof *base);
	float *q = malloc(nq * dim * sizeof *q);
	float *norms = malloc(n * sizeof *norms);
	int failed = 0;

	for (size_t e = 0; e < protos * dim; e++)
		pr[e] = (float)(rng() % 17);
	for (size_t j = 0; j < n; j++)
		memcpy(base + j * dim, pr + (rng() % protos) * dim,
		       dim * sizeof *base);
	for (size_t j = 0; j < nq; j++) {
		memcpy(q + j * dim, pr + (rng() % protos) * dim,
		       dim * sizeof *q);
		if (j % 2)
			q[j * dim + rng() % dim] = (float)(rng() % 17);
	}
	for (size_t j = 0; j < n; j++) {
		double s = 0;
		for (size_t d = 0; d < dim; d++)
			s += (double)base[j * dim + d] * base[j * dim + d];
		norms[j] = (float)s;
	}
	for (size_t m = 0; m < 2; m++) {
		int metric = metrics[m];
		struct ref r;
		ref_build(&r, base, n, q, nq, dim, metric == VEC_METRIC_L2);
		/* nq = 40, 1 and 4: wide with leftovers, one query, narrow */
		failed += search_all(base, NULL, n, dim, metric, q, nq, &r,
				     ks, 4, 1);
		failed += search_all(base, norms, n, dim, metric, q, nq, &r,
				     ks, 4, 1);
		ref_free(&r);
		ref_build(&r, base, n, q, 4, dim, metric == VEC_METRIC_L2);
		failed += search_all(base, NULL, n, dim, metric, q, 4, &r,
				     ks, 4, 1);
		ref_free(&r);
	}
	EXPECT_MSG(failed == 0, "%d searches failed", failed);
	free(pr);
	free(base);
	free(q);
	free(norms);
}

/*
 * A base large enough to be split into parts with their own heaps (few
 * queries, several threads), and the merge of those heaps; also a k large
 * enough that the queries are searched in several batches.
 */
static void test_flat_parts_and_batches(void)
{
	const size_t n = 9000, dim = 8;
	const size_t ks[] = { 1, 10, 100 };
	const size_t kbig[] = { 4000 };
	float *base = malloc(n * dim * sizeof *base);
	float *q = malloc(300 * dim * sizeof *q);
	int failed = 0;
	struct ref r;

	for (size_t e = 0; e < n * dim; e++)
		base[e] = (float)(rng() % 5); /* many ties across parts */
	for (size_t e = 0; e < 300 * dim; e++)
		q[e] = (float)(rng() % 5);
	for (size_t m = 0; m < 2; m++) {
		int metric = metrics[m];
		ref_build(&r, base, n, q, 5, dim, metric == VEC_METRIC_L2);
		failed += search_all(base, NULL, n, dim, metric, q, 1, &r, ks,
				     3, 1);
		failed += search_all(base, NULL, n, dim, metric, q, 5, &r, ks,
				     3, 1);
		ref_free(&r);
	}
	ref_build(&r, base, 5000, q, 300, dim, 1);
	failed += search_all(base, NULL, 5000, dim, VEC_METRIC_L2, q, 300, &r,
			     kbig, 1, 1);
	ref_free(&r);
	EXPECT_MSG(failed == 0, "%d searches failed", failed);
	free(base);
	free(q);
}

/* Empty base, k = 0, nq = 0, bad arguments. */
static void test_flat_edges(void)
{
	float q[4] = { 1, 2, 3, 4 }, base[8] = { 0 };
	uint64_t ids[6];
	float sc[6];

	EXPECT(vec_flat_search(NULL, NULL, 0, 2, VEC_METRIC_L2, q, 2, 3, 1,
			       ids, sc) == VEC_OK);
	for (int i = 0; i < 6; i++)
		EXPECT(ids[i] == UINT64_MAX && sc[i] == INFINITY);
	EXPECT(vec_flat_search(NULL, NULL, 0, 2, VEC_METRIC_IP, q, 2, 3, 0,
			       ids, sc) == VEC_OK);
	for (int i = 0; i < 6; i++)
		EXPECT(ids[i] == UINT64_MAX && sc[i] == -INFINITY);
	EXPECT(vec_flat_search(base, NULL, 4, 2, VEC_METRIC_L2, q, 0, 3, 1,
			       ids, sc) == VEC_OK);
	EXPECT(vec_flat_search(base, NULL, 4, 2, VEC_METRIC_L2, q, 2, 0, 1,
			       ids, sc) == VEC_OK);
	EXPECT(vec_flat_search(base, NULL, 4, 2, 99, q, 2, 3, 1, ids, sc) ==
	       VEC_E_USAGE);
	EXPECT(vec_flat_search(base, NULL, 4, 0, VEC_METRIC_L2, q, 2, 3, 1,
			       ids, sc) == VEC_E_USAGE);
	/* the zero vectors are all at distance |q| = sqrt(5); ties by id */
	EXPECT(vec_flat_search(base, NULL, 4, 2, VEC_METRIC_L2, q, 1, 3, 1,
			       ids, sc) == VEC_OK);
	EXPECT(ids[0] == 0 && ids[1] == 1 && ids[2] == 2);
	EXPECT(fabsf(sc[0] - sqrtf(5)) < 1e-6f);
}


/*
 * The reduced-precision prefilter (bf16 on CPUs that have it, for batches
 * of at least 128 queries per thread on bases of at least 2048 rows) must
 * return exactly what the fp32 path returns: the same ids in the same
 * order and bit-identical scores.  VEC_FLAT_BF16=0 turns it off.  Kinds
 * of data: 0 random, 1 integers with many exact ties, 2 a wide dynamic
 * range (1e-3..1e3, mixed signs) where the bound is loose, 3 every row
 * the same (each query overflows its candidate list and is searched again
 * in fp32), 4 a few values too large for the bound (the batch goes fp32).
 */
static void fill_kind(float *v, size_t count, size_t dim, int kind,
		      const float *proto, size_t protos)
{
	for (size_t j = 0; j < count; j++) {
		float *r = v + j * dim;
		for (size_t d = 0; d < dim; d++) {
			switch (kind) {
			case 0:
				r[d] = frand() + 0.25f;
				break;
			case 1:
				r[d] = proto[(j % protos) * dim + d];
				if (rng() % 16 == 0)
					r[d] = (float)(rng() % 4);
				break;
			case 2:
				r[d] = (rng() & 1 ? 1 : -1) *
				       (float)pow(10, frand() * 3);
				break;
			case 3:
				r[d] = (float)(d % 7) * 0.5f + 1;
				break;
			default:
				r[d] = frand();
				if (rng() % 5000 == 0)
					r[d] = 3e30f;
			}
		}
	}
}

/* Search nq queries with the prefilter off, then on; 0 if identical. */
static int prefilter_same(const float *base, const float *norms, size_t n,
			  size_t dim, int metric, const float *q, size_t nq,
			  size_t k, int threads, const char *what)
{
	uint64_t *id0 = malloc(nq * k * sizeof *id0);
	uint64_t *id1 = malloc(nq * k * sizeof *id1);
	float *s0 = malloc(nq * k * sizeof *s0);
	float *s1 = malloc(nq * k * sizeof *s1);
	int rc0, rc1, bad = 0;

	setenv("VEC_FLAT_BF16", "0", 1);
	rc0 = vec_flat_search(base, norms, n, dim, metric, q, nq, k, threads,
			      id0, s0);
	unsetenv("VEC_FLAT_BF16");
	rc1 = vec_flat_search(base, norms, n, dim, metric, q, nq, k, threads,
			      id1, s1);
	if (rc0 != VEC_OK || rc1 != VEC_OK) {
		fprintf(stderr, "%s: rc %d %d\n", what, rc0, rc1);
		bad = 1;
	}
	for (size_t e = 0; e < nq * k && !bad; e++) {
		if (id0[e] != id1[e] || memcmp(&s0[e], &s1[e], sizeof *s0)) {
			fprintf(stderr, "%s: q%zu rank %zu: id %llu score %.9g, fp32 %llu %.9g\n",
				what, e / k, e % k, (unsigned long long)id1[e],
				s1[e], (unsigned long long)id0[e], s0[e]);
			bad = 1;
		}
	}
	free(id0);
	free(id1);
	free(s0);
	free(s1);
	return bad;
}

static void test_flat_prefilter_exact(void)
{
	/* nq 260: full wide blocks and 4 narrow queries; 300: a partly
	 * filled last block.  (k, threads) pairs, for time. */
	static const size_t dims[] = { 17, 100, 300 };
	static const size_t nqs[] = { 260, 300 };
	static const size_t ks[] = { 1, 10, 100 };
	static const int ts[] = { 1, 2, 1 };
	const size_t n = 3000, protos = 12, nqmax = 300;
	int failed = 0;

	for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
		size_t dim = dims[di];
		float *base = malloc(n * dim * sizeof *base);
		float *q = malloc(nqmax * dim * sizeof *q);
		float *proto = malloc(protos * dim * sizeof *proto);
		float *norms = malloc(n * sizeof *norms);

		for (size_t e = 0; e < protos * dim; e++)
			proto[e] = (float)(rng() % 256);
		for (int kind = 0; kind <= 4; kind++) {
			fill_kind(base, n, dim, kind, proto, protos);
			fill_kind(q, nqmax, dim, kind == 3 ? 0 : kind, proto,
				  protos);
			for (size_t j = 0; j < n; j++)
				norms[j] = vec_dot(base + j * dim,
						   base + j * dim, dim);
			for (size_t m = 0; m < 3; m++) {
				int metric = metrics[m];
				float *b = base, *qq = q;
				if (metric == VEC_METRIC_COS) {
					b = malloc(n * dim * sizeof *b);
					qq = malloc(nqmax * dim * sizeof *qq);
					memcpy(b, base, n * dim * sizeof *b);
					memcpy(qq, q, nqmax * dim * sizeof *qq);
					for (size_t j = 0; j < n; j++)
						vec_normalize(b + j * dim, dim);
					for (size_t j = 0; j < nqmax; j++)
						vec_normalize(qq + j * dim, dim);
				}
				for (size_t qi = 0; qi < 2; qi++)
				for (size_t ki = 0; ki < 3; ki++) {
					char what[160];
					int t = ts[ki];
					const float *nr =
						metric == VEC_METRIC_L2 && ki == 1
							? norms
							: NULL;
					snprintf(what, sizeof what,
						 "%s kind %d dim %zu nq %zu k %zu threads %d%s",
						 vec_metric_name(metric), kind,
						 dim, nqs[qi], ks[ki], t,
						 nr ? " norms" : "");
					failed += prefilter_same(b, nr, n, dim,
								 metric, qq,
								 nqs[qi], ks[ki],
								 t, what);
				}
				if (b != base) {
					free(b);
					free(qq);
				}
			}
		}
		free(base);
		free(q);
		free(proto);
		free(norms);
	}
	EXPECT_MSG(failed == 0, "%d searches differ", failed);
}

/*
 * Against the AVX2 level, forced with vec_simd_select: its wide kernel
 * sums each lane exactly as the AVX-512 one does, so with every query in
 * a full wide block (nq a multiple of 32) inner products agree bit for bit
 * with the prefiltered search.  (L2 re-scores with each level's own l2sq,
 * checked against the reference elsewhere.)
 */
static void test_flat_prefilter_vs_avx2(void)
{
	const size_t n = 3000, dim = 96, nq = 256, k = 10;
	const struct vec_kernels *best = vec_kernels();
	float *base = malloc(n * dim * sizeof *base);
	float *q = malloc(nq * dim * sizeof *q);
	uint64_t *id0 = malloc(nq * k * sizeof *id0);
	uint64_t *id1 = malloc(nq * k * sizeof *id1);
	float *s0 = malloc(nq * k * sizeof *s0);
	float *s1 = malloc(nq * k * sizeof *s1);
	int bad = 0;

	if (!vec_kernels_for(VEC_SIMD_AVX2) || !vec_kernels_for(VEC_SIMD_AVX512))
		goto done;
	for (int m = 1; m < 3; m++) {
		fill_kind(base, n, dim, m == 1 ? 2 : 0, NULL, 0);
		fill_kind(q, nq, dim, m == 1 ? 2 : 0, NULL, 0);
		if (metrics[m] == VEC_METRIC_COS) {
			for (size_t j = 0; j < n; j++)
				vec_normalize(base + j * dim, dim);
			for (size_t j = 0; j < nq; j++)
				vec_normalize(q + j * dim, dim);
		}
		vec_simd_select(VEC_SIMD_AVX2);
		EXPECT(vec_flat_search(base, NULL, n, dim, metrics[m], q, nq,
				       k, 1, id0, s0) == VEC_OK);
		vec_simd_select(VEC_SIMD_AVX512);
		EXPECT(vec_flat_search(base, NULL, n, dim, metrics[m], q, nq,
				       k, 1, id1, s1) == VEC_OK);
		for (size_t e = 0; e < nq * k; e++)
			if (id0[e] != id1[e] || s0[e] != s1[e])
				bad++;
	}
	vec_simd_select(best->level);
done:
	EXPECT_MSG(bad == 0, "%d results differ from avx2", bad);
	free(base);
	free(q);
	free(id0);
	free(id1);
	free(s0);
	free(s1);
}

/*
 * The wide kernel's pass masks (kernels.h): with out and pass set, bit l
 * of pass[row] is set exactly when lane l is real and its score is <= its
 * threshold, ties included; at every level, with padded lanes, L2 and IP,
 * a tail of rows, and thresholds +-inf, NaN and equal to a score.
 */
static void test_wide_pass(void)
{
	const size_t dim = 21, nb = 37;
	float *x = malloc(nb * dim * sizeof *x), norms[37];
	float *qp = aligned_alloc(64, dim * 64 * sizeof *qp);
	float *out = malloc(nb * 64 * sizeof *out), thr[64];
	uint64_t pass[37];
	const struct vec_kernels *best = vec_kernels();
	int bad = 0, checked = 0;

	for (size_t e = 0; e < nb * dim; e++)
		x[e] = frand();
	for (size_t j = 0; j < nb; j++)
		norms[j] = vec_kernels()->dot(x + j * dim, x + j * dim, dim);
	for (int lv = VEC_SIMD_SCALAR; lv <= VEC_SIMD_NEON; lv++) {
		const struct vec_flat_kernels *fk;
		if (!vec_kernels_for((enum vec_simd)lv))
			continue;
		vec_simd_select((enum vec_simd)lv);
		fk = vec_flat_kernels();
		for (int l2 = 0; l2 < 2; l2++)
			for (unsigned nl = fk->qb - 3; nl <= fk->qb; nl += 3) {
				struct vec_flat_wide w;
				memset(&w, 0, sizeof w);
				for (size_t e = 0; e < dim * fk->qb; e++)
					qp[e] = e % fk->qb < nl ? frand() : 0;
				w.qp = qp;
				w.x = x;
				w.norms = l2 ? norms : NULL;
				w.nb = nb;
				w.dim = dim;
				w.nlanes = nl;
				w.out = out;
				fk->wide(&w); /* scores first, for the ties */
				for (unsigned l = 0; l < fk->qb; l++)
					thr[l] = l % 5 == 0 ? out[(l % nb) * fk->qb + l]
						 : l % 5 == 1 ? INFINITY
						 : l % 5 == 2 ? -INFINITY
						 : l % 5 == 3 ? NAN
							      : (float)(frand() * 2);
				w.pthr = thr;
				w.pass = pass;
				fk->wide(&w);
				for (size_t j = 0; j < nb; j++)
					for (unsigned l = 0; l < fk->qb; l++) {
						int want = l < nl && out[j * fk->qb + l] <= thr[l];
						bad += want != (int)(pass[j] >> l & 1);
						checked += want;
					}
			}
	}
	vec_simd_select(best->level);
	EXPECT_MSG(bad == 0, "%d pass bits wrong", bad);
	EXPECT(checked > 0);
	free(x);
	free(qp);
	free(out);
}

/*
 * The kernels' scores (kernels.h): the score of each chosen row for each
 * query is, to the bit, the one the narrow kernel offers for that row and
 * query alone, at every level, L2 and IP, one to four queries, dimensions
 * around the vector widths, rows contiguous (rows NULL) and gathered in
 * any order with repeats, and row counts that leave every tile shape.
 */
static void test_scores_as_narrow(void)
{
	static const size_t dims[] = { 1, 7, 8, 15, 16, 17, 33, 100 };
	enum { NB = 29, NQ = VEC_FLAT_NARROW_MAX };
	const struct vec_kernels *best = vec_kernels();
	float *x = malloc(NB * 100 * sizeof *x), q[NQ * 100];
	float out[NQ * NB], want[NQ][NB];
	uint32_t rows[NB];
	uint64_t hid[NB];
	float hsc[NB];
	struct vec_topk h;
	int bad = 0, checked = 0;

	EXPECT(vec_topk_init(&h, NB) == 0);
	for (size_t e = 0; e < NB * 100; e++)
		x[e] = frand() * 4 - 2;
	for (size_t j = 0; j < NB; j++)
		rows[j] = (uint32_t)((j * 7 + 3) % NB / 2); /* repeats */
	for (int lv = VEC_SIMD_SCALAR; lv <= VEC_SIMD_NEON; lv++) {
		const struct vec_flat_kernels *fk;
		if (!vec_kernels_for((enum vec_simd)lv))
			continue;
		vec_simd_select((enum vec_simd)lv);
		fk = vec_flat_kernels();
		for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
			for (int l2 = 0; l2 < 2; l2++) {
				size_t dim = dims[di];

				for (size_t e = 0; e < NQ * dim; e++)
					q[e] = frand() * 4 - 2;
				/* narrow, each query alone: every row offered
				 * (a heap of NB) */
				for (unsigned i = 0; i < NQ; i++) {
					struct vec_topk *hp = &h;
					struct vec_flat_narrow nw;
					size_t n;
					memset(&nw, 0, sizeof nw);
					nw.q = q + i * dim;
					nw.nq = 1;
					nw.x = x;
					nw.nb = NB;
					nw.dim = dim;
					nw.l2 = l2;
					nw.heap = &hp;
					vec_topk_reset(&h);
					fk->narrow(&nw);
					n = vec_topk_extract(&h, hid, hsc);
					EXPECT(n == NB);
					for (size_t e = 0; e < n; e++)
						want[i][hid[e]] = hsc[e];
				}
				for (unsigned nq = 1; nq <= NQ; nq++)
					for (size_t m = 1; m <= NB; m += 4) {
						fk->scores(q, nq, x, dim, NULL, m, l2, out);
						for (unsigned i = 0; i < nq; i++)
							for (size_t j = 0; j < m; j++, checked++)
								bad += memcmp(&out[i * m + j],
									      &want[i][j], 4) != 0;
						fk->scores(q, nq, x, dim, rows, m, l2, out);
						for (unsigned i = 0; i < nq; i++)
							for (size_t j = 0; j < m; j++, checked++)
								bad += memcmp(&out[i * m + j],
									      &want[i][rows[j]], 4) != 0;
					}
			}
	}
	vec_simd_select(best->level);
	EXPECT_MSG(bad == 0, "%d of %d scores differ from the narrow kernel's",
		   bad, checked);
	EXPECT(checked > 0);
	vec_topk_free(&h);
	free(x);
}

void suite_flat(void)
{
	RUN(test_flat_random);
	RUN(test_flat_integer_ties);
	RUN(test_flat_parts_and_batches);
	RUN(test_flat_edges);
	RUN(test_flat_prefilter_exact);
	RUN(test_flat_prefilter_vs_avx2);
	RUN(test_wide_pass);
	RUN(test_scores_as_narrow);
}
