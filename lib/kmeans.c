/*
 * kmeans.c - Euclidean k-means: k-means++ seeding on a sample, Lloyd
 * iterations, empty clusters refilled by splitting the largest; optionally
 * spherical (centroids kept at unit length, for unit-length data).
 *
 * The expensive step, finding each vector's nearest centroid, is an exact
 * 1-nearest-neighbour search of the vectors against the centroids, so it
 * runs through vec_flat_search: the SIMD kernels, blocked and threaded,
 * with ties to the smaller centroid number.  Every other step is a sum in
 * one fixed order on the calling thread, which is what makes the result
 * independent of the thread count (see kmeans.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kmeans.h"

#define ASSIGN_BATCH 65536 /* vectors searched against the centroids at once */
/*
 * ... and at most about this many bytes of them.  The search copies its
 * batch.  With 16 MiB batches, glibc's malloc (which raises its threshold
 * for mapping a block on its own as such blocks are freed) came to take
 * the copies from its heap, where the lists growing between them kept the
 * freed space from being returned: a fashion-mnist build peaked at 2.1x
 * the raw vectors instead of 1.5x (same index, no slower now).
 */
#define ASSIGN_BYTES (2u << 20)
#define SPLIT_EPS (1.0f / 1024) /* relative nudge of a split centroid */

/* splitmix64: a small, well-mixed generator; the state is the seed. */
static uint64_t next_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double next_unit(uint64_t *s)
{
	return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t vec_kmeans_train_size(size_t k, uint64_t n)
{
	uint64_t t = (uint64_t)k * VEC_KMEANS_TRAIN_PER_CLUSTER;
	if (t < VEC_KMEANS_TRAIN_MIN)
		t = VEC_KMEANS_TRAIN_MIN;
	if (t < k)
		t = k;
	return t < n ? t : n;
}

/*
 * m of n indices, uniformly without replacement, in increasing order
 * (selection sampling: each index is taken with probability
 * still-needed / still-left), into out[0..m).
 */
static void sample_sorted(uint64_t n, uint64_t m, uint64_t *rng, uint64_t *out)
{
	uint64_t got = 0;
	for (uint64_t i = 0; i < n && got < m; i++)
		if ((double)(n - i) * next_unit(rng) < (double)(m - got))
			out[got++] = i;
}

int vec_kmeans_assign(const float *x, uint64_t n, size_t dim,
		      const float *centroids, size_t k, int threads,
		      uint32_t *assign, float *dist2, struct vec_errbuf *eb)
{
	/* The search packs a copy of its queries: keep that copy near
	 * ASSIGN_BYTES, so that assigning a collection never doubles it. */
	size_t cap = ASSIGN_BYTES / (dim * sizeof(float)) + 1;
	size_t batch = n < ASSIGN_BATCH ? (size_t)n : ASSIGN_BATCH;
	uint64_t *ids;
	float *sc;
	int rc = VEC_OK;

	if (n == 0)
		return VEC_OK;
	if (batch > cap)
		batch = cap < 64 ? 64 : cap;
	ids = malloc(batch * sizeof *ids);
	sc = malloc(batch * sizeof *sc);
	if (!ids || !sc) {
		free(ids);
		free(sc);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	for (uint64_t i0 = 0; i0 < n; i0 += batch) {
		size_t m = n - i0 < batch ? (size_t)(n - i0) : batch;
		rc = vec_flat_search(centroids, NULL, k, dim, VEC_METRIC_L2,
				     x + i0 * dim, m, 1, threads, ids, sc);
		if (rc) {
			rc = vec_err(eb, rc, "clustering failed: %s", vec_strerror(rc));
			break;
		}
		for (size_t j = 0; j < m; j++) {
			/* Finite vectors always have a nearest centroid. */
			assign[i0 + j] = ids[j] < k ? (uint32_t)ids[j] : 0;
			if (dist2)
				dist2[i0 + j] = sc[j] * sc[j];
		}
	}
	free(ids);
	free(sc);
	return rc;
}

/* k-means++ seeding: state shared with the distance update tasks. */
struct seed_ctx {
	const float *x;      /* the seeding sample, m rows */
	size_t dim, chunk;
	uint64_t m;
	const float *c;      /* the centroid just chosen */
	float *d2;           /* each row's squared distance to its nearest */
	const struct vec_kernels *kr;
};

/* Lower each row's distance with the new centroid (rows independent). */
static void seed_task(void *ctx, size_t t, int worker)
{
	const struct seed_ctx *s = ctx;
	uint64_t lo = (uint64_t)t * s->chunk;
	uint64_t hi = lo + s->chunk < s->m ? lo + s->chunk : s->m;
	(void)worker;
	for (uint64_t i = lo; i < hi; i++) {
		float d = s->kr->l2sq(s->x + i * s->dim, s->c, s->dim);
		if (d < s->d2[i])
			s->d2[i] = d;
	}
}

/*
 * Choose k starting centroids among the m rows of x: the first uniformly,
 * each next one with probability proportional to its squared distance to
 * the nearest already chosen (k-means++).  When every row coincides with a
 * chosen centroid, the next one is drawn uniformly (it repeats one: the
 * split step takes care of the empty cluster that makes).
 */
static int seed_plusplus(const float *x, uint64_t m, size_t dim, size_t k,
			 int threads, uint64_t *rng, float *cent,
			 struct vec_errbuf *eb)
{
	struct seed_ctx s;
	size_t ntasks;

	s.d2 = malloc(m * sizeof *s.d2);
	if (!s.d2)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	s.x = x;
	s.m = m;
	s.dim = dim;
	s.kr = vec_kernels();
	/* Tasks of about 64 Ki floats: thread start-up stays noise. */
	s.chunk = 65536 / dim + 1;
	ntasks = (size_t)((m + s.chunk - 1) / s.chunk);
	for (uint64_t i = 0; i < m; i++)
		s.d2[i] = INFINITY;
	for (size_t c = 0; c < k; c++) {
		uint64_t pick = m - 1;
		if (c == 0) {
			pick = next_u64(rng) % m;
		} else {
			double total = 0, r, acc = 0;
			for (uint64_t i = 0; i < m; i++)
				total += s.d2[i];
			if (total > 0) {
				r = next_unit(rng) * total;
				for (uint64_t i = 0; i < m; i++) {
					acc += s.d2[i];
					if (acc > r && s.d2[i] > 0) {
						pick = i;
						break;
					}
				}
			} else {
				pick = next_u64(rng) % m;
			}
		}
		memcpy(cent + c * dim, x + pick * dim, dim * sizeof *cent);
		s.c = cent + c * dim;
		if (c + 1 < k)
			vec_pool_run(ntasks > 1 ? threads : 1, ntasks, seed_task, &s);
	}
	free(s.d2);
	return VEC_OK;
}

/*
 * Refill every empty cluster from the largest one: copy its centroid and
 * push the two copies a little apart along a random sign pattern, so that
 * the next assignment shares the large cluster's vectors between them.
 * Returns the number of clusters refilled.
 */
static uint64_t split_empty(float *cent, uint64_t *count, size_t k, size_t dim,
			    uint64_t *rng)
{
	uint64_t splits = 0;

	for (size_t j = 0; j < k; j++) {
		size_t big = 0;
		if (count[j])
			continue;
		for (size_t c = 1; c < k; c++)
			if (count[c] > count[big])
				big = c;
		if (count[big] < 2)
			break; /* nothing left to share */
		for (size_t d = 0; d < dim; d++) {
			float v = cent[big * dim + d];
			float e = SPLIT_EPS * (fabsf(v) > 1e-3f ? fabsf(v) : 1e-3f);
			if (next_u64(rng) & 1)
				e = -e;
			cent[j * dim + d] = v + e;
			cent[big * dim + d] = v - e;
		}
		count[j] = count[big] / 2;
		count[big] -= count[j];
		splits++;
	}
	return splits;
}

int vec_kmeans(const float *x, uint64_t n, size_t dim,
	       const struct vec_kmeans_params *p, float *centroids,
	       struct vec_kmeans_result *res, struct vec_errbuf *eb)
{
	struct vec_kmeans_result r = { 0, 0, 0, 0 };
	uint64_t rng = p->seed ? p->seed : VEC_KMEANS_DEFAULT_SEED;
	unsigned max_iter = p->max_iter ? p->max_iter : VEC_KMEANS_DEFAULT_ITERS;
	size_t k = p->k;
	uint64_t nt, *pick = NULL, *count = NULL, bytes;
	const float *tx = x;
	float *own = NULL, *seedx = NULL, *d2 = NULL;
	uint32_t *a = NULL;
	double *sum = NULL;
	int rc = VEC_OK;

	if (k == 0 || k > n || k > UINT32_MAX)
		return vec_err(eb, VEC_E_USAGE,
			       "cannot make %zu clusters of %llu vectors", k,
			       (unsigned long long)n);
	if (dim == 0 || vec_mul_overflows(n, (uint64_t)dim * sizeof(float), &bytes) ||
	    bytes > SIZE_MAX)
		return vec_err(eb, VEC_E_USAGE, "bad k-means input size");
	nt = p->train_size ? p->train_size : vec_kmeans_train_size(k, n);
	if (nt < k)
		nt = k;
	if (nt > n)
		nt = n;

	/* The training set: a sorted random sample, copied, or all of x. */
	if (nt < n) {
		pick = malloc(nt * sizeof *pick);
		own = malloc(nt * dim * sizeof *own);
		if (!pick || !own)
			goto nomem;
		sample_sorted(n, nt, &rng, pick);
		for (uint64_t i = 0; i < nt; i++)
			memcpy(own + i * dim, x + pick[i] * dim, dim * sizeof *own);
		tx = own;
		free(pick);
		pick = NULL;
	}
	r.trained = nt;

	if (p->init) {
		memcpy(centroids, p->init, k * dim * sizeof *centroids);
	} else {
		/* Seed on a sample of a few times k: plenty to spread k
		 * centroids, and k-means++ costs k passes over it. */
		uint64_t m = (uint64_t)k * 4 < 1024 ? 1024 : (uint64_t)k * 4;
		if (m > nt)
			m = nt;
		pick = malloc(m * sizeof *pick);
		seedx = malloc(m * dim * sizeof *seedx);
		if (!pick || !seedx)
			goto nomem;
		sample_sorted(nt, m, &rng, pick);
		for (uint64_t i = 0; i < m; i++)
			memcpy(seedx + i * dim, tx + pick[i] * dim, dim * sizeof *seedx);
		rc = seed_plusplus(seedx, m, dim, k, p->threads, &rng, centroids, eb);
		if (rc)
			goto done;
	}

	a = malloc(nt * sizeof *a);
	d2 = malloc(nt * sizeof *d2);
	count = malloc(k * sizeof *count);
	sum = malloc(k * dim * sizeof *sum);
	if (!a || !d2 || !count || !sum)
		goto nomem;
	for (uint64_t i = 0; i < nt; i++)
		a[i] = UINT32_MAX;

	for (unsigned it = 0; it < max_iter; it++) {
		uint64_t changed = 0;
		double inertia = 0;

		/* Assign into a fresh array so that changes can be counted. */
		{
			uint32_t *fresh = malloc(nt * sizeof *fresh);
			if (!fresh)
				goto nomem;
			rc = vec_kmeans_assign(tx, nt, dim, centroids, k, p->threads,
					       fresh, d2, eb);
			if (rc) {
				free(fresh);
				goto done;
			}
			for (uint64_t i = 0; i < nt; i++) {
				changed += fresh[i] != a[i];
				inertia += d2[i];
			}
			free(a);
			a = fresh;
		}
		r.iters = it + 1;
		r.inertia = inertia;
		if (changed == 0)
			break;
		/* New centroids: the means, summed in input order. */
		memset(count, 0, k * sizeof *count);
		memset(sum, 0, k * dim * sizeof *sum);
		for (uint64_t i = 0; i < nt; i++) {
			double *s = sum + (size_t)a[i] * dim;
			const float *v = tx + i * dim;
			count[a[i]]++;
			for (size_t d = 0; d < dim; d++)
				s[d] += v[d];
		}
		for (size_t c = 0; c < k; c++) {
			if (!count[c])
				continue; /* refilled below */
			for (size_t d = 0; d < dim; d++)
				centroids[c * dim + d] =
					(float)(sum[c * dim + d] / (double)count[c]);
		}
		r.splits += split_empty(centroids, count, k, dim, &rng);
		/* Spherical: the means scaled back to unit length, so that
		 * the nearest centroid is the one of largest inner product. */
		for (size_t c = 0; p->spherical && c < k; c++)
			vec_normalize(centroids + c * dim, dim);
	}
	goto done;
nomem:
	rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
done:
	free(pick);
	free(own);
	free(seedx);
	free(a);
	free(d2);
	free(count);
	free(sum);
	if (rc == VEC_OK && res)
		*res = r;
	return rc;
}
