/*
 * test_sq8.c - the 8-bit scalar quantiser: train/encode/decode within half
 * a step, fits, the query's numerics, every kernel variant this CPU runs
 * against an exact reference (scanned and gathered rows, the largest
 * sums), the estimates against true distances within the quantisation
 * bound, and constant dimensions.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sq8.h"
#include "unit.h"
#include "vec.h"


static uint64_t rng_state;
/* xorshift64: a fixed sequence, so that failures reproduce. */
static uint64_t rng(void)
{
	return unit_xorshift(&rng_state);
}

static double unif(void)
{
	return ((double)(rng() >> 11) + 0.5) / (double)(1ull << 53);
}

static float gauss(void)
{
	return (float)(sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif()));
}

/* n x dim gaussian floats, each dimension with its own offset and spread. */
static float *random_rows(size_t n, size_t dim)
{
	float *x = malloc(n * dim * sizeof *x);
	for (size_t d = 0; d < dim; d++) {
		float off = 3 * gauss(), sd = 0.1f + 2 * (float)unif();
		for (size_t i = 0; i < n; i++)
			x[i * dim + d] = off + sd * gauss();
	}
	return x;
}

/* The exact dot product of a code row and a query row, in 64 bits. */
static int64_t ref_dot(const uint8_t *c, const int8_t *q, size_t stride)
{
	int64_t s = 0;
	for (size_t i = 0; i < stride; i++)
		s += (int64_t)c[i] * q[i];
	return s;
}

static const size_t dims[] = { 1, 7, 63, 64, 65, 100, 200, 784 };
#define NDIMS (sizeof dims / sizeof dims[0])

static void test_stride(void)
{
	EXPECT(vec_sq8_stride(1) == 64);
	EXPECT(vec_sq8_stride(64) == 64);
	EXPECT(vec_sq8_stride(65) == 128);
	EXPECT(vec_sq8_stride(784) == 832);
	EXPECT(vec_sq8_stride(VEC_DIM_MAX) == VEC_DIM_MAX);
}

/* Every component within half a step of its reconstruction; the ends of
 * each dimension's range code to 0 and 255; norms and padding. */
static void test_round_trip(void)
{
	const size_t n = 300;

	rng_state = 0x1234567887654321u;
	for (size_t t = 0; t < NDIMS; t++) {
		size_t dim = dims[t], stride = vec_sq8_stride(dim), bad = 0;
		float *x = random_rows(n, dim), *r = malloc(n * dim * sizeof *r);
		float *lo = malloc(dim * 4), *scale = malloc(dim * 4);
		float *norms = malloc(n * 4);
		uint8_t *codes = malloc(n * stride);
		struct vec_sq8 q = vec_sq8_view(dim, lo, scale);

		vec_sq8_train(lo, scale, x, n, dim);
		EXPECT(q.stride == stride);
		EXPECT(vec_sq8_fits(&q, x, n));
		memset(codes, 0xaa, n * stride);
		vec_sq8_encode(&q, x, n, codes, norms);
		vec_sq8_decode(&q, codes, n, r);
		for (size_t d = 0; d < dim; d++) {
			int seen0 = 0, seen255 = 0;
			EXPECT(scale[d] > 0);
			for (size_t i = 0; i < n; i++) {
				double e = fabs((double)r[i * dim + d] - x[i * dim + d]);
				if (e > 0.5 * scale[d] * (1 + 1e-5) + 1e-6 * fabs(x[i * dim + d]))
					bad++;
				seen0 |= codes[i * stride + d] == 0;
				seen255 |= codes[i * stride + d] == 255;
			}
			EXPECT_MSG(seen0 && seen255, "dim %zu: component %zu", dim, d);
		}
		EXPECT_MSG(bad == 0, "dim %zu: %zu components off by more than half a step",
			   dim, bad);
		bad = 0;
		for (size_t i = 0; i < n; i++) {
			double s = 0;
			for (size_t d = 0; d < dim; d++)
				s += (double)r[i * dim + d] * r[i * dim + d];
			bad += norms[i] != (float)s;
			for (size_t b = dim; b < stride; b++)
				bad += codes[i * stride + b] != 0;
		}
		EXPECT_MSG(bad == 0, "dim %zu: %zu bad norms or padding bytes", dim, bad);
		/* norms may be NULL: the same codes. */
		{
			uint8_t *c2 = malloc(n * stride);
			vec_sq8_encode(&q, x, n, c2, NULL);
			EXPECT(memcmp(c2, codes, n * stride) == 0);
			free(c2);
		}
		free(x);
		free(r);
		free(lo);
		free(scale);
		free(norms);
		free(codes);
	}
}

/* Half a step beyond either end still fits; more does not. */
static void test_fits(void)
{
	const float lo[2] = { -1, 10 }, scale[2] = { 0.01f, 0 };
	struct vec_sq8 q = vec_sq8_view(2, lo, scale);
	float x[2];

	x[0] = -1; x[1] = 10;
	EXPECT(vec_sq8_fits(&q, x, 1));
	x[0] = -1 - 0.004f;
	EXPECT(vec_sq8_fits(&q, x, 1));
	x[0] = -1 - 0.006f;
	EXPECT(!vec_sq8_fits(&q, x, 1));
	x[0] = -1 + 2.555f - 0.001f;
	EXPECT(vec_sq8_fits(&q, x, 1));
	x[0] = -1 + 2.555f + 0.001f;
	EXPECT(!vec_sq8_fits(&q, x, 1));
	x[0] = 0; x[1] = 10.001f; /* a constant dimension: only its value */
	EXPECT(!vec_sq8_fits(&q, x, 1));
	EXPECT(vec_sq8_fits(&q, x, 0));
}

/* Query codes: |cq| <= 127 with 127 reached, t cq[d] within t/2 of
 * x[d] scale[d], qlo = <x, lo>, rounding half away, NaN coded 0. */
static void test_query(void)
{
	rng_state = 0x0badc0ffee0ddf00u;
	for (size_t t = 0; t < NDIMS; t++) {
		size_t dim = dims[t], stride = vec_sq8_stride(dim), bad = 0;
		float *lo = malloc(dim * 4), *scale = malloc(dim * 4);
		float *x = random_rows(1, dim), step, qlo;
		int8_t *cq = malloc(stride);
		struct vec_sq8 q = vec_sq8_view(dim, lo, scale);
		double want = 0;
		int amax = 0;

		double lane[8] = { 0 };
		for (size_t d = 0; d < dim; d++) {
			lo[d] = gauss();
			scale[d] = 0.01f + (float)unif();
			/* the documented order (sq8.h) */
			if (d < (dim & ~(size_t)7))
				lane[d & 7] += (double)x[d] * lo[d];
		}
		want = vec_sq8_sum8(lane);
		for (size_t d = dim & ~(size_t)7; d < dim; d++)
			want += (double)x[d] * lo[d];
		memset(cq, 0x55, stride);
		vec_sq8_query(&q, x, cq, &step, &qlo);
		EXPECT(step > 0);
		EXPECT(qlo == (float)want);
		for (size_t d = 0; d < dim; d++) {
			double w = (double)x[d] * scale[d];
			amax = abs(cq[d]) > amax ? abs(cq[d]) : amax;
			bad += cq[d] < -127 || fabs(step * (double)cq[d] - w) > 0.5 * step * (1 + 1e-5);
		}
		for (size_t b = dim; b < stride; b++)
			bad += cq[b] != 0;
		EXPECT_MSG(bad == 0 && amax == 127, "dim %zu: %zu bad codes, max |cq| %d",
			   dim, bad, amax);
		free(lo);
		free(scale);
		free(x);
		free(cq);
	}
	{
		const float lo[3] = { 1, 2, 3 }, scale[3] = { 1, 1, 1 };
		struct vec_sq8 q = vec_sq8_view(3, lo, scale);
		int8_t cq[64];
		float x[3] = { 127, 63.5f, -63.5f }, step, qlo;

		vec_sq8_query(&q, x, cq, &step, &qlo);
		EXPECT(step == 1 && cq[0] == 127 && cq[1] == 64 && cq[2] == -64);
		EXPECT(qlo == 127 + 127 - 190.5f);
		x[1] = NAN;
		vec_sq8_query(&q, x, cq, &step, &qlo);
		EXPECT(step == 1 && cq[0] == 127 && cq[1] == 0 && cq[2] == -64);
		x[0] = x[1] = x[2] = 0;
		vec_sq8_query(&q, x, cq, &step, &qlo);
		EXPECT(step == 0 && qlo == 0 && !cq[0] && !cq[1] && !cq[2]);
	}
}

/* Random codes and queries (padding zero), the extremes in a few rows. */
static void fill_codes(uint8_t *c, int8_t *q, size_t n, size_t dim,
		       size_t stride)
{
	memset(c, 0, n * stride);
	memset(q, 0, stride);
	for (size_t d = 0; d < dim; d++)
		q[d] = (int8_t)((int)(rng() % 255) - 127);
	for (size_t i = 0; i < n; i++)
		for (size_t d = 0; d < dim; d++)
			c[i * stride + d] = i % 7 == 3 ? 255 : (uint8_t)rng();
}

/* Every variant this build and CPU run; at least the scalar one. */
static int variants(const struct vec_sq8_kernels **kr)
{
	int m = 0;
	for (int l = 0; l < VEC_SQ8_NLEVELS; l++)
		if ((kr[m] = vec_sq8_kernels_for(l)) != NULL) {
			EXPECT(kr[m]->level == l);
			m++;
		}
	return m;
}

/* The query of every variant equals the reference's bytes, step and qlo
 * exactly: random queries of every size, one with a NaN, components far
 * apart in size, halves exactly on the rounding edge, and zero. */
static void test_query_levels(void)
{
	const struct vec_sq8_kernels *kr[VEC_SQ8_NLEVELS];
	int nk = variants(kr);

	rng_state = 0x71e5c0de71e5c0deu;
	EXPECT(nk >= 1 && kr[0]->level == VEC_SQ8_SCALAR);
	for (size_t t = 0; t < NDIMS; t++) {
		size_t dim = dims[t], stride = vec_sq8_stride(dim);
		float *lo = malloc(dim * 4), *scale = malloc(dim * 4);
		float *x = malloc(dim * 4);
		int8_t *ref = malloc(stride), *cq = malloc(stride);
		struct vec_sq8 q = vec_sq8_view(dim, lo, scale);

		for (size_t d = 0; d < dim; d++) {
			lo[d] = 3 * gauss();
			scale[d] = 0.001f + (float)unif();
		}
		for (int shape = 0; shape < 5; shape++) {
			float rt, rq;
			for (size_t d = 0; d < dim; d++) {
				x[d] = gauss();
				if (shape == 1 && d == dim / 2)
					x[d] = NAN;
				if (shape == 2)
					x[d] *= (float)ldexp(1, (int)(rng() % 40) - 20);
				if (shape == 3) /* x scale = +-k/2 on a 127 grid */
					x[d] = (float)((double)((int)(rng() % 255) - 127) / 2 /
						       scale[d]);
				if (shape == 4)
					x[d] = 0;
			}
			if (shape == 3)
				x[0] = (float)(127 / (double)scale[0]);
			memset(ref, 0x55, stride);
			kr[0]->query(&q, x, ref, &rt, &rq);
			for (int k = 1; k < nk; k++) {
				float kt, kq;
				memset(cq, 0x55, stride);
				kr[k]->query(&q, x, cq, &kt, &kq);
				EXPECT_MSG(!memcmp(cq, ref, stride) && kt == rt &&
						   (kq == rq || (isnan(kq) && isnan(rq))),
					   "%s: dim %zu, query shape %d differs", kr[k]->name,
					   dim, shape);
			}
		}
		free(lo);
		free(scale);
		free(x);
		free(ref);
		free(cq);
	}
}

/* The scanning kernel of every variant equals the reference exactly,
 * from row counts 0 to past the 4-row blocks, on unaligned rows. */
static void test_scan_levels(void)
{
	static const size_t counts[] = { 0, 1, 3, 4, 5, 8, 17, 301 };
	const struct vec_sq8_kernels *kr[VEC_SQ8_NLEVELS];
	int nk = variants(kr);

	EXPECT(nk >= 1 && kr[0]->level == VEC_SQ8_SCALAR);
	rng_state = 0xfeedfacecafebeefu;
	for (size_t t = 0; t < NDIMS; t++) {
		size_t dim = dims[t], stride = vec_sq8_stride(dim);
		size_t nmax = counts[sizeof counts / sizeof counts[0] - 1];
		uint8_t *buf = malloc(nmax * stride + 1), *c = buf + 1;
		int8_t *qbuf = malloc(stride + 1), *q = qbuf + 1;
		int32_t *out = malloc((nmax + 1) * 4);

		fill_codes(c, q, nmax, dim, stride);
		for (int k = 0; k < nk; k++)
			for (size_t u = 0; u < sizeof counts / sizeof counts[0]; u++) {
				size_t n = counts[u], bad = 0;
				out[n] = 12345;
				kr[k]->scan(c, stride, q, n, out);
				for (size_t j = 0; j < n; j++)
					bad += out[j] != ref_dot(c + j * stride, q, stride);
				EXPECT_MSG(bad == 0 && out[n] == 12345,
					   "%s: dim %zu, %zu rows: %zu wrong", kr[k]->name,
					   dim, n, bad);
			}
		free(buf);
		free(qbuf);
		free(out);
	}
}

/* The gathered kernel: random ids (repeats too) into the same rows. */
static void test_gather_levels(void)
{
	const struct vec_sq8_kernels *kr[VEC_SQ8_NLEVELS];
	int nk = variants(kr);
	const size_t n = 500, m = 203;

	rng_state = 0x5eed5eed5eed5eedu;
	/* Padded rows, then packed ones (stride dim; the kernels read past
	 * a row into the next, or into the slack, here all 0xff, and must
	 * count none of it). */
	for (size_t t = 0; t < 2 * NDIMS; t++) {
		size_t dim = dims[t % NDIMS];
		size_t stride = t < NDIMS ? vec_sq8_stride(dim) : dim;
		size_t qb = vec_sq_span(stride), slack = vec_sq_slack(stride);
		uint8_t *c = malloc(n * stride + slack);
		int8_t *q = malloc(qb);
		uint32_t ids[203];
		int32_t out[204];

		fill_codes(c, q, n, dim, stride);
		memset(c + n * stride, 0xff, slack);
		memset(q + dim, 0, qb - dim);
		for (size_t j = 0; j < m; j++)
			ids[j] = (uint32_t)(rng() % n);
		ids[0] = 0;
		ids[m - 1] = (uint32_t)(n - 1);
		for (int k = 0; k < nk; k++)
			for (size_t cnt = 0; cnt <= m; cnt += cnt < 5 ? 1 : m - 5) {
				size_t bad = 0;
				out[cnt] = 12345;
				kr[k]->gather(c, stride, q, ids, cnt, out);
				for (size_t j = 0; j < cnt; j++)
					bad += out[j] != ref_dot(c + ids[j] * stride, q, dim);
				EXPECT_MSG(bad == 0 && out[cnt] == 12345,
					   "%s: dim %zu, stride %zu, %zu ids: %zu wrong",
					   kr[k]->name, dim, stride, cnt, bad);
			}
		free(c);
		free(q);
	}
}

/* The largest sums there can be (VEC_DIM_MAX components of 255 times
 * +-127) do not overflow on any level. */
static void test_extremes(void)
{
	const struct vec_sq8_kernels *kr[VEC_SQ8_NLEVELS];
	int nk = variants(kr);
	size_t stride = vec_sq8_stride(VEC_DIM_MAX);
	uint8_t *c = malloc(5 * stride);
	int8_t *q = malloc(stride);
	uint32_t ids[5] = { 4, 0, 2, 1, 3 };
	int32_t out[5];

	memset(c, 255, 5 * stride);
	for (int sign = -1; sign <= 1; sign += 2) {
		memset(q, sign * 127, stride);
		for (int k = 0; k < nk; k++) {
			int ok = 1;
			kr[k]->scan(c, stride, q, 5, out);
			for (int j = 0; j < 5; j++)
				ok &= out[j] == sign * 255 * 127 * (int64_t)stride;
			kr[k]->gather(c, stride, q, ids, 5, out);
			for (int j = 0; j < 5; j++)
				ok &= out[j] == sign * 255 * 127 * (int64_t)stride;
			EXPECT_MSG(ok, "%s: sign %d", kr[k]->name, sign);
		}
	}
	free(c);
	free(q);
}

/* vec_sq8_kernels follows vec_simd_select: scalar, avx2, then avx512 or
 * vnni, and whatever it picks gives the scalar sums. */
static void test_dispatch(void)
{
	int saved = vec_kernels()->level, tried = 0;

	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
		const struct vec_sq8_kernels *k;
		if (!vec_kernels_for(level))
			continue;
		vec_simd_select(level);
		k = vec_sq8_kernels();
		tried++;
		EXPECT(k != NULL && vec_sq8_kernels_for(k->level) == k);
		if (level == VEC_SIMD_SCALAR || level == VEC_SIMD_NEON)
			EXPECT(k->level == VEC_SQ8_SCALAR);
		if (level == VEC_SIMD_AVX2)
			EXPECT(k->level == VEC_SQ8_AVX2);
		if (level == VEC_SIMD_AVX512)
			EXPECT_MSG(k->level == (vec_sq8_kernels_for(VEC_SQ8_VNNI)
							? VEC_SQ8_VNNI : VEC_SQ8_AVX512),
				   "got %s", k->name);
	}
	vec_simd_select(saved);
	EXPECT(tried >= 1 && vec_kernels()->level == saved);
	EXPECT(vec_sq8_kernels_for(-1) == NULL);
	EXPECT(vec_sq8_kernels_for(VEC_SQ8_NLEVELS) == NULL);
}

/*
 * Estimates against true distances.  With r the reconstruction of y,
 * s = scale and c the codes, the query's quantisation errs by at most
 * t/2 per code unit and the row's by s/2 per component, so
 *   ip: |est + <x,y>|               <= t/2 sum c + sum |x| s/2
 *   l2: |est + |x|^2 - |x - y|^2|   <= 2 (the above) + sum s/2 |r + y|
 * up to float rounding of the terms.  Each estimate must also be exactly
 * the one formed from the scalar reference sum, on every SIMD level.
 */
/* constant_dims: 0 none, 1 every fourth (from 1), 2 all. */
static int is_constant(size_t d, int constant_dims)
{
	return constant_dims == 2 || (constant_dims == 1 && d % 4 == 1);
}

static void check_scores(size_t dim, int constant_dims)
{
	const size_t n = 700, nq = 8;
	size_t stride = vec_sq8_stride(dim), bad = 0, inexact = 0;
	float *x = random_rows(n + nq, dim), *lo = malloc(dim * 4);
	float *scale = malloc(dim * 4), *norms = malloc(n * 4);
	float *r = malloc(n * dim * 4), *out = malloc(n * 4);
	uint8_t *codes = malloc(n * stride);
	int8_t *cq = malloc(stride);
	struct vec_sq8 q = vec_sq8_view(dim, lo, scale);
	int saved = vec_kernels()->level;
	double maxrel = 0;

	for (size_t i = 0; i < n + nq; i++)
		for (size_t d = 0; d < dim; d++)
			if (is_constant(d, constant_dims))
				x[i * dim + d] = 0.75f + (float)d;
	vec_sq8_train(lo, scale, x, n, dim);
	vec_sq8_encode(&q, x, n, codes, norms);
	vec_sq8_decode(&q, codes, n, r);
	for (size_t d = 0; d < dim; d++)
		if (is_constant(d, constant_dims))
			EXPECT(scale[d] == 0 && codes[d] == 0 && r[d] == lo[d]);
	for (size_t k = 0; k < nq; k++) {
		const float *qx = x + (n + k) * dim;
		float t, qlo;
		double xx = 0;

		vec_sq8_query(&q, qx, cq, &t, &qlo);
		if (constant_dims == 2)
			EXPECT(t == 0);
		for (size_t d = 0; d < dim; d++)
			xx += (double)qx[d] * qx[d];
		for (int l2 = 0; l2 <= 1; l2++) {
			vec_sq8_scores(&q, codes, n, l2 ? norms : NULL, cq, t, qlo, out);
			for (size_t i = 0; i < n; i++) {
				const float *y = x + i * dim, *ri = r + i * dim;
				double xy = 0, yy = 0, sc = 0, sx = 0, sry = 0, truth, b;
				int32_t dot = (int32_t)ref_dot(codes + i * stride, cq, stride);
				float want = l2 ? vec_sq8_est_l2(norms[i], t, qlo, dot)
						: vec_sq8_est_ip(t, qlo, dot);

				inexact += out[i] != want;
				for (size_t d = 0; d < dim; d++) {
					xy += (double)qx[d] * y[d];
					yy += (double)y[d] * y[d];
					sc += codes[i * stride + d];
					sx += fabs(qx[d]) * scale[d] / 2;
					sry += scale[d] / 2 * fabs((double)ri[d] + y[d]);
				}
				b = t / 2.0 * sc + sx;
				if (l2) {
					truth = yy - 2 * xy; /* |x - y|^2 - |x|^2 */
					b = 2 * b + sry;
				} else {
					truth = -xy;
				}
				/* float rounding of norms, qlo and t dot */
				b += 1e-5 * (yy + xx + 2 * fabs(qlo) + 2 * fabs(t * (double)dot));
				bad += !(fabs(out[i] - truth) <= b);
				if (b > 0 && fabs(out[i] - truth) / b > maxrel)
					maxrel = fabs(out[i] - truth) / b;
			}
		}
	}
	EXPECT_MSG(bad == 0, "dim %zu (constant %d): %zu estimates outside the bound",
		   dim, constant_dims, bad);
	EXPECT_MSG(inexact == 0, "dim %zu: %zu estimates differ from the reference",
		   dim, inexact);
	/* the bound is not vacuous: some error comes near it */
	if (constant_dims < 2)
		EXPECT_MSG(maxrel > 0.01, "dim %zu: largest error %.4f of the bound",
			   dim, maxrel);
	/* every SIMD level: the same estimates, bit for bit */
	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
		float t, qlo, *o2 = malloc(n * 4);
		if (!vec_kernels_for(level)) {
			free(o2);
			continue;
		}
		vec_sq8_query(&q, x + n * dim, cq, &t, &qlo);
		vec_simd_select(VEC_SIMD_SCALAR);
		vec_sq8_scores(&q, codes, n, norms, cq, t, qlo, out);
		vec_simd_select(level);
		vec_sq8_scores(&q, codes, n, norms, cq, t, qlo, o2);
		EXPECT_MSG(memcmp(out, o2, n * 4) == 0, "level %d", level);
		free(o2);
	}
	vec_simd_select(saved);
	free(x);
	free(lo);
	free(scale);
	free(norms);
	free(r);
	free(out);
	free(codes);
	free(cq);
}

static void test_scores_bound(void)
{
	rng_state = 0xabcdef0123456789u;
	check_scores(1, 0);
	check_scores(50, 0);
	check_scores(100, 0);
	check_scores(784, 0);
}

/* Constant dimensions (scale 0): some of them, then all of them. */
static void test_constant(void)
{
	rng_state = 0x13579bdf2468ace0u;
	check_scores(20, 1);
	check_scores(20, 2);
	check_scores(1, 2);
}

/*
 * The float kernels (l2f, dotf) at every level against a sum in double:
 * within (stride + 8) 2^-24 of the sum of the terms' magnitudes, the
 * bound the refine's skipping relies on (lib/ivf.c), for strides of one
 * and several 64-byte blocks; zero padding adds nothing.
 */
static void test_float_levels(void)
{
	static const size_t fdims[] = { 1, 63, 64, 100, 257 };
	for (size_t di = 0; di < sizeof fdims / sizeof fdims[0]; di++) {
		size_t dim = fdims[di], stride = vec_sq8_stride(dim);
		float *qp = calloc(stride, sizeof *qp), *sc = calloc(stride, sizeof *sc);
		uint8_t *c = calloc(stride, 1);
		if (!qp || !sc || !c)
			goto next;
		rng_state = 0x77 + dim;
		for (size_t d = 0; d < dim; d++) {
			qp[d] = 10 * gauss();
			sc[d] = (float)unif() * 0.1f;
			c[d] = (uint8_t)(rng() & 255);
		}
		for (int l = 0; l < VEC_SQ8_NLEVELS; l++) {
			const struct vec_sq8_kernels *k = vec_sq8_kernels_for(l);
			double l2 = 0, l2m = 0, dt = 0, dtm = 0, tol;
			if (!k)
				continue;
			for (size_t d = 0; d < dim; d++) {
				double t = (double)qp[d] - (double)sc[d] * c[d];
				l2 += t * t;
				l2m += (fabs(qp[d]) + sc[d] * c[d]) * (fabs(qp[d]) + sc[d] * c[d]);
				dt += (double)qp[d] * c[d];
				dtm += fabs((double)qp[d] * c[d]);
			}
			tol = (double)(stride + 8) / 16777216.0;
			EXPECT_MSG(fabs(k->l2f(qp, sc, c, stride) - l2) <= tol * l2m,
				   "%s dim %zu: l2f %g, want %g", k->name, dim,
				   k->l2f(qp, sc, c, stride), l2);
			EXPECT_MSG(fabs(k->dotf(qp, c, stride) - dt) <= tol * dtm,
				   "%s dim %zu: dotf %g, want %g", k->name, dim,
				   k->dotf(qp, c, stride), dt);
		}
next:
		free(qp);
		free(sc);
		free(c);
	}
}

/* ---- 4-bit rows ---- */

/* Component d's code in a 4-bit row, by the layout sq8.h documents
 * (written out here, not taken from the library). */
static unsigned sq4_code(const uint8_t *row, size_t d)
{
	uint8_t b = row[d / 128 * 64 + d % 64];
	return d % 128 < 64 ? b & 15u : b >> 4;
}

static void test_sq4_round_trip(void)
{
	rng_state = 0x4b174b174b174b17u;
	for (size_t t = 0; t < NDIMS; t++) {
		size_t dim = dims[t], n = 40, stride = vec_sq4_stride(dim);
		float *x = random_rows(n, dim), *lo = malloc(dim * 4);
		float *scale = malloc(dim * 4), *r = malloc(n * dim * 4);
		float *norms = malloc(n * 4);
		uint8_t *c = malloc(n * stride + 1);
		struct vec_sq8 q;
		size_t bad = 0, badpad = 0, badnorm = 0;

		vec_sq4_train(lo, scale, x, n, dim);
		q = vec_sq4_view(dim, lo, scale);
		EXPECT(q.bits == 4 && q.stride == (dim + 127) / 128 * 64);
		EXPECT(vec_sq_qbytes(&q) == 2 * q.stride);
		EXPECT(vec_sq8_fits(&q, x, n));
		c[n * stride] = 0xa5;
		vec_sq8_encode(&q, x, n, c, norms);
		EXPECT(c[n * stride] == 0xa5); /* nothing past the rows */
		vec_sq8_decode(&q, c, n, r);
		for (size_t i = 0; i < n; i++) {
			double s = 0;
			for (size_t d = 0; d < dim; d++) {
				unsigned code = sq4_code(c + i * stride, d);
				float want = lo[d] + scale[d] * (float)code;
				bad += r[i * dim + d] != want || code > 15 ||
				       fabsf(r[i * dim + d] - x[i * dim + d]) >
					       0.5f * scale[d] * 1.0001f + 1e-6f;
				s += (double)want * want;
			}
			for (size_t d = dim; d < 2 * stride; d++)
				badpad += sq4_code(c + i * stride, d) != 0;
			badnorm += fabs(norms[i] - s) > 1e-5 * (s + 1);
		}
		EXPECT_MSG(bad == 0 && badpad == 0 && badnorm == 0,
			   "dim %zu: %zu wrong codes, %zu nonzero padding, %zu norms",
			   dim, bad, badpad, badnorm);
		/* The range is 15 steps: half a step over still fits, more
		 * does not, and encoding clamps it to 15. */
		if (scale[0] > 0) {
			x[0] = lo[0] + 15.4f * scale[0];
			EXPECT(vec_sq8_fits(&q, x, 1));
			x[0] = lo[0] + 16.0f * scale[0];
			EXPECT(!vec_sq8_fits(&q, x, 1));
			x[0] = lo[0] + 40.0f * scale[0];
			vec_sq8_encode(&q, x, 1, c, NULL);
			EXPECT(sq4_code(c, 0) == 15);
		}
		free(x);
		free(lo);
		free(scale);
		free(r);
		free(norms);
		free(c);
	}
}

/* A 4-bit view's query: the 8-bit query's bytes, zero up to 2 x stride. */
static void test_sq4_query(void)
{
	rng_state = 0x9a9a9a9a12121212u;
	for (size_t t = 0; t < NDIMS; t++) {
		size_t dim = dims[t], s4 = vec_sq4_stride(dim);
		float *x = random_rows(2, dim), *lo = malloc(dim * 4);
		float *scale = malloc(dim * 4);
		int8_t *a = malloc(2 * s4 + 64), *b = malloc(2 * s4 + 64);
		struct vec_sq8 q4, q8;
		float t4, t8, l4, l8;
		size_t nz = 0;

		vec_sq4_train(lo, scale, x, 1, dim);
		for (size_t d = 0; d < dim; d++)
			scale[d] = 0.01f + (float)unif();
		q4 = vec_sq4_view(dim, lo, scale);
		q8 = vec_sq8_view(dim, lo, scale);
		memset(a, 0x55, 2 * s4 + 64);
		vec_sq8_query(&q4, x + dim, a, &t4, &l4);
		vec_sq8_query(&q8, x + dim, b, &t8, &l8);
		EXPECT(t4 == t8 && l4 == l8 && !memcmp(a, b, dim));
		for (size_t d = dim; d < 2 * s4; d++)
			nz += a[d] != 0;
		EXPECT_MSG(nz == 0 && a[2 * s4] == 0x55,
			   "dim %zu: %zu padding bytes not zero, or written past", dim, nz);
		free(x);
		free(lo);
		free(scale);
		free(a);
		free(b);
	}
}

/* gather4 of every variant equals the sum over components of code times
 * query byte, taken by the documented layout, exactly: random rows with
 * every code 15 in some, random and extreme query bytes. */
static void test_sq4_gather_levels(void)
{
	const struct vec_sq8_kernels *kr[VEC_SQ8_NLEVELS];
	int nk = variants(kr);
	const size_t n = 300, m = 131;
	static const size_t d4[] = { 1, 63, 64, 65, 127, 128, 129, 300, 784,
				     VEC_DIM_MAX };

	const size_t nd = sizeof d4 / sizeof d4[0];

	rng_state = 0x0f0f0f0f33445566u;
	/* Padded rows, then packed ones, their slack all 0xff. */
	for (size_t t = 0; t < 2 * nd; t++) {
		size_t dim = d4[t % nd];
		size_t stride = t < nd ? vec_sq4_stride(dim) : vec_sq4_packed(dim);
		size_t rows = dim > 1000 ? 5 : n, cnt_max = dim > 1000 ? 5 : m;
		size_t slack = vec_sq_slack(stride);
		uint8_t *c = calloc(rows * stride + slack, 1);
		int8_t *q = calloc(2 * vec_sq_span(stride), 1);
		uint32_t ids[131];
		int32_t out[132];

		for (size_t d = 0; d < dim; d++)
			q[d] = dim > 1000 ? (d % 2 ? 127 : -128 + 1) :
					    (int8_t)((int)(rng() % 255) - 127);
		for (size_t i = 0; i < rows; i++)
			for (size_t d = 0; d < dim; d++) {
				unsigned v = i % 5 == 2 ? 15 : (unsigned)(rng() & 15);
				c[i * stride + d / 128 * 64 + d % 64] |=
					(uint8_t)(d % 128 < 64 ? v : v << 4);
			}
		memset(c + rows * stride, 0xff, slack);
		for (size_t j = 0; j < cnt_max; j++)
			ids[j] = (uint32_t)(rng() % rows);
		ids[0] = 0;
		ids[cnt_max - 1] = (uint32_t)(rows - 1);
		for (int k = 0; k < nk; k++)
			for (size_t cnt = 0; cnt <= cnt_max;
			     cnt += cnt < 6 ? 1 : cnt_max - 6) {
				size_t bad = 0;
				out[cnt] = 12345;
				kr[k]->gather4(c, stride, q, ids, cnt, out);
				for (size_t j = 0; j < cnt; j++) {
					int64_t s = 0;
					for (size_t d = 0; d < dim; d++)
						s += (int64_t)sq4_code(c + ids[j] * stride, d) * q[d];
					bad += out[j] != s;
				}
				EXPECT_MSG(bad == 0 && out[cnt] == 12345,
					   "%s: dim %zu, stride %zu, %zu ids: %zu wrong",
					   kr[k]->name, dim, stride, cnt, bad);
			}
		free(c);
		free(q);
	}
}

void suite_sq8(void)
{
	RUN(test_stride);
	RUN(test_round_trip);
	RUN(test_fits);
	RUN(test_query);
	RUN(test_scan_levels);
	RUN(test_gather_levels);
	RUN(test_query_levels);
	RUN(test_extremes);
	RUN(test_dispatch);
	RUN(test_scores_bound);
	RUN(test_constant);
	RUN(test_float_levels);
	RUN(test_sq4_round_trip);
	RUN(test_sq4_query);
	RUN(test_sq4_gather_levels);
}
