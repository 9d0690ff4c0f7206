/*
 * test_kmeans.c - k-means: the same seed gives the same centroids (on one
 * thread or two), well-separated clusters are recovered, an empty cluster
 * is refilled by a split, spherical k-means keeps unit centroids, the
 * training sample has the size asked for, and
 * degenerate inputs (k > n, identical points) are handled.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "unit.h"

#define DIM 8
#define NC 6       /* true clusters */
#define PER 300    /* points per cluster */

static uint64_t rs;
static float unit_noise(void)
{
	return unit_uniform(&rs);
}

/* NC clusters of PER points, centre c at 100 c along axis c % DIM (plus a
 * shift), noise of width 1; label[i] the true cluster.  Points are
 * interleaved so that no cluster is a contiguous block. */
static float *separated(int *label, float centre[NC][DIM])
{
	float *x = malloc((size_t)NC * PER * DIM * sizeof *x);

	rs = 0x1234567887654321u;
	for (int c = 0; c < NC; c++)
		for (int d = 0; d < DIM; d++)
			centre[c][d] = (d == c % DIM ? 100.0f * (float)(c + 1) : 0.0f) +
				       (float)d;
	for (int i = 0; i < NC * PER; i++) {
		int c = i % NC;
		label[i] = c;
		for (int d = 0; d < DIM; d++)
			x[(size_t)i * DIM + d] = centre[c][d] + unit_noise();
	}
	return x;
}

static void test_deterministic(void)
{
	int label[NC * PER];
	float centre[NC][DIM], a[NC * DIM], b[NC * DIM], c[NC * DIM];
	float *x = separated(label, centre);
	struct vec_kmeans_params p = { NC, 0, 0, 7, 1, NULL, 0 };
	struct vec_kmeans_result r1, r2;

	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, a, &r1, NULL) == VEC_OK);
	p.threads = 2;
	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, b, &r2, NULL) == VEC_OK);
	EXPECT(!memcmp(a, b, sizeof a));
	EXPECT(r1.iters == r2.iters && r1.inertia == r2.inertia);
	/* A sample of the input, another seed: still reproducible. */
	p.train_size = 500;
	p.seed = 8;
	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, a, NULL, NULL) == VEC_OK);
	p.threads = 1;
	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, c, NULL, NULL) == VEC_OK);
	EXPECT(!memcmp(a, c, sizeof a));
	free(x);
}

static void test_separated(void)
{
	int label[NC * PER];
	float centre[NC][DIM], cent[NC * DIM];
	float *x = separated(label, centre);
	uint32_t *as = malloc(NC * PER * sizeof *as);
	int owner[NC];
	struct vec_kmeans_params p = { NC, 0, 0, 3, 0, NULL, 0 };
	struct vec_kmeans_result r;

	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, cent, &r, NULL) == VEC_OK);
	EXPECT(r.trained == NC * PER);
	EXPECT(r.iters >= 1 && r.iters <= 20);
	EXPECT(vec_kmeans_assign(x, NC * PER, DIM, cent, NC, 2, as, NULL, NULL) == VEC_OK);
	/* Each true cluster lands whole in one centroid, a different one each. */
	for (int c = 0; c < NC; c++)
		owner[c] = -1;
	for (int i = 0; i < NC * PER; i++) {
		int c = label[i];
		if (owner[c] < 0)
			owner[c] = (int)as[i];
		EXPECT_MSG(owner[c] == (int)as[i], "point %d of cluster %d", i, c);
		if (owner[c] != (int)as[i])
			break;
	}
	for (int c = 0; c < NC; c++)
		for (int e = c + 1; e < NC; e++)
			EXPECT(owner[c] != owner[e]);
	/* And the centroid is the cluster's centre, within the noise. */
	for (int c = 0; c < NC && owner[c] >= 0; c++)
		for (int d = 0; d < DIM; d++)
			EXPECT(fabsf(cent[owner[c] * DIM + d] - centre[c][d]) < 0.1f);
	/* Every point is at most the noise away from its centroid. */
	EXPECT(r.inertia < (double)NC * PER * DIM * 0.25);
	free(as);
	free(x);
}

static void test_empty_split(void)
{
	int label[NC * PER];
	float centre[NC][DIM], init[NC * DIM], cent[NC * DIM];
	float *x = separated(label, centre);
	uint32_t *as = malloc(NC * PER * sizeof *as);
	uint64_t count[NC] = { 0 };
	struct vec_kmeans_params p = { NC, 0, 0, 5, 1, init, 0 };
	struct vec_kmeans_result r;

	/* Start with two centroids on cluster 0's centre, none on cluster
	 * 5, and one far from every point: it is empty at once. */
	for (int c = 0; c < NC; c++)
		memcpy(init + c * DIM, centre[c], sizeof centre[c]);
	memcpy(init + 5 * DIM, centre[0], sizeof centre[0]);
	for (int d = 0; d < DIM; d++)
		init[4 * DIM + d] = -1e4f;
	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, cent, &r, NULL) == VEC_OK);
	EXPECT(r.splits >= 1);
	EXPECT(vec_kmeans_assign(x, NC * PER, DIM, cent, NC, 1, as, NULL, NULL) == VEC_OK);
	for (int i = 0; i < NC * PER; i++)
		count[as[i]]++;
	for (int c = 0; c < NC; c++)
		EXPECT_MSG(count[c] > 0, "cluster %d is empty", c);
	for (int d = 0; d < DIM; d++)
		EXPECT(isfinite(cent[4 * DIM + d]) && cent[4 * DIM + d] > -1e3f);
	free(as);
	free(x);
}

/*
 * Spherical: on unit vectors whose clusters overlap, every centroid is
 * unit length and each vector's nearest centroid is the one of largest
 * inner product with it; plain means are shorter.
 */
static void test_spherical(void)
{
	const size_t n = 2000, k = 12;
	float *x = malloc(n * DIM * sizeof *x), *cent = malloc(k * DIM * sizeof *cent);
	uint32_t *as = malloc(n * sizeof *as);
	struct vec_kmeans_params p = { 12, 0, 0, 9, 1, NULL, 1 };
	double shortest = 1;

	rs = 0x5eed5eed5eedu;
	for (size_t i = 0; i < n * DIM; i++)
		x[i] = unit_noise() - 0.5f + (i % DIM == (i / DIM) % 3 ? 0.5f : 0);
	for (size_t i = 0; i < n; i++)
		vec_normalize(x + i * DIM, DIM);
	EXPECT(vec_kmeans(x, n, DIM, &p, cent, NULL, NULL) == VEC_OK);
	for (size_t c = 0; c < k; c++) {
		double nn = 0;
		for (int d = 0; d < DIM; d++)
			nn += (double)cent[c * DIM + d] * cent[c * DIM + d];
		EXPECT_MSG(fabs(nn - 1) < 1e-5, "centroid %zu: |c|^2 = %g", c, nn);
	}
	EXPECT(vec_kmeans_assign(x, n, DIM, cent, k, 1, as, NULL, NULL) == VEC_OK);
	for (size_t i = 0; i < n; i++) {
		size_t best = 0;
		float bd = -INFINITY;
		for (size_t c = 0; c < k; c++) {
			float dp = vec_dot(x + i * DIM, cent + c * DIM, DIM);
			if (dp > bd) {
				bd = dp;
				best = c;
			}
		}
		EXPECT_MSG(as[i] == best, "vector %zu: nearest %u, largest dot %zu",
			   i, as[i], best);
	}
	p.spherical = 0;
	EXPECT(vec_kmeans(x, n, DIM, &p, cent, NULL, NULL) == VEC_OK);
	for (size_t c = 0; c < k; c++) {
		double nn = 0;
		for (int d = 0; d < DIM; d++)
			nn += (double)cent[c * DIM + d] * cent[c * DIM + d];
		shortest = nn < shortest ? nn : shortest;
	}
	EXPECT_MSG(shortest < 0.9, "plain means: shortest |c|^2 %g", shortest);
	free(x);
	free(cent);
	free(as);
}

static void test_train_size(void)
{
	int label[NC * PER];
	float centre[NC][DIM], cent[NC * DIM];
	float *x = separated(label, centre);
	struct vec_kmeans_params p = { NC, 500, 0, 1, 1, NULL, 0 };
	struct vec_kmeans_result r;

	EXPECT(vec_kmeans_train_size(10, 5000) == 5000);
	EXPECT(vec_kmeans_train_size(200, 1000000) == 12800);
	EXPECT(vec_kmeans_train_size(10, 1000000) == 10000);
	EXPECT(vec_kmeans_train_size(1, 5) == 5);
	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, cent, &r, NULL) == VEC_OK);
	EXPECT(r.trained == 500);
	/* Never fewer than k, never more than n. */
	p.train_size = 2;
	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, cent, &r, NULL) == VEC_OK);
	EXPECT(r.trained == NC);
	p.train_size = 1u << 30;
	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, cent, &r, NULL) == VEC_OK);
	EXPECT(r.trained == NC * PER);
	/* A sample of 500 of these clusters still finds them all. */
	p.train_size = 500;
	EXPECT(vec_kmeans(x, NC * PER, DIM, &p, cent, &r, NULL) == VEC_OK);
	for (int c = 0; c < NC; c++) {
		float best = INFINITY;
		for (int j = 0; j < NC; j++) {
			float d2 = vec_l2sq(cent + j * DIM, centre[c], DIM);
			best = d2 < best ? d2 : best;
		}
		EXPECT_MSG(best < 1.0f, "cluster %d: nearest centroid %g away", c,
			   sqrt(best));
	}
	free(x);
}

static void test_degenerate(void)
{
	float x[20 * 3], cent[4 * 3];
	struct vec_kmeans_params p = { 4, 0, 0, 0, 1, NULL, 0 };
	struct vec_kmeans_result r;
	struct vec_errbuf eb;

	for (int i = 0; i < 20 * 3; i++)
		x[i] = 2.5f;
	/* Identical points: every cluster but one stays empty, nothing to split. */
	EXPECT(vec_kmeans(x, 20, 3, &p, cent, &r, NULL) == VEC_OK);
	for (int i = 0; i < 4 * 3; i++)
		EXPECT(isfinite(cent[i]));
	p.k = 21;
	EXPECT(vec_kmeans(x, 20, 3, &p, cent, &r, &eb) == VEC_E_USAGE);
	EXPECT(strstr(eb.msg, "21 clusters of 20 vectors") != NULL);
	p.k = 0;
	EXPECT(vec_kmeans(x, 20, 3, &p, cent, &r, NULL) == VEC_E_USAGE);
	/* k = n: each point its own cluster. */
	for (int i = 0; i < 4; i++)
		x[i * 3] = (float)(10 * i);
	p.k = 4;
	EXPECT(vec_kmeans(x, 4, 3, &p, cent, &r, NULL) == VEC_OK);
	EXPECT(r.inertia == 0);
}

void suite_kmeans(void)
{
	RUN(test_deterministic);
	RUN(test_separated);
	RUN(test_empty_split);
	RUN(test_spherical);
	RUN(test_train_size);
	RUN(test_degenerate);
}
