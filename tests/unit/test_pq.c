/*
 * test_pq.c - product quantisation: training refuses bad parameters and
 * is reproducible, encode/decode round trips (a centroid exactly, clustered
 * data within the noise), tables against the distances to the decoded
 * vectors, the 4-bit block packing, and the tables, the 4-bit table's
 * quantisation, the scans and vec_pq4_below on every SIMD level this CPU
 * runs against plain reference loops.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pq.h"
#include "unit.h"

static uint64_t rs;
static uint64_t rnd(void)
{
	return unit_xorshift(&rs);
}
static float unit_noise(void)
{
	return unit_uniform(&rs);
}

/*
 * n vectors of dim = m * dsub whose sub-vector j is one of 16 centres of
 * sub-space j (spread over [-10, 10]), plus noise of width `noise`.
 */
static float *clustered(size_t n, size_t m, size_t dsub, float noise)
{
	size_t dim = m * dsub;
	float *centre = malloc(m * 16 * dsub * sizeof *centre);
	float *x = malloc(n * dim * sizeof *x);

	rs = 0x1234567887654321u;
	for (size_t i = 0; i < m * 16 * dsub; i++)
		centre[i] = 20.0f * unit_noise();
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m; j++) {
			size_t c = rnd() % 16;
			for (size_t d = 0; d < dsub; d++)
				x[i * dim + j * dsub + d] =
					centre[(j * 16 + c) * dsub + d] + noise * unit_noise();
		}
	free(centre);
	return x;
}

/* The levels to test: every one this build and CPU run. */
static int levels(int *out)
{
	int k = 0;
	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++)
		if (vec_kernels_for(level))
			out[k++] = level;
	return k;
}

/* The plain code of i from random bytes: an odd m's last high nibble 0. */
static void random_codes(uint8_t *codes, size_t n, size_t m)
{
	size_t cs = (m + 1) / 2;

	if (!cs)
		return;
	for (size_t i = 0; i < n * cs; i++)
		codes[i] = (uint8_t)rnd();
	if (m & 1)
		for (size_t i = 0; i < n; i++)
			codes[i * cs + cs - 1] &= 15;
}

static unsigned nibble(const uint8_t *code, size_t j)
{
	return (code[j / 2] >> ((j & 1) * 4)) & 15;
}

/* ---- training ---- */

static void test_train_usage(void)
{
	float *x = clustered(300, 4, 2, 0.1f);
	float cent[4 * 256 * 2];
	struct vec_errbuf eb = { 0 };

	EXPECT(vec_pq_train(cent, x, 300, 8, 3, 4, 1, 1, &eb) == VEC_E_USAGE);
	EXPECT_MSG(strstr(eb.msg, "3 sub-quantisers do not divide dimension 8"),
		   "message: %s", eb.msg);
	EXPECT(vec_pq_train(cent, x, 300, 8, 0, 4, 1, 1, &eb) == VEC_E_USAGE);
	EXPECT(vec_pq_train(cent, x, 300, 8, 4, 5, 1, 1, &eb) == VEC_E_USAGE);
	EXPECT_MSG(strstr(eb.msg, "5 bits per code"), "message: %s", eb.msg);
	EXPECT(vec_pq_train(cent, x, 300, 8, 4, 16, 1, 1, &eb) == VEC_E_USAGE);
	/* Fewer vectors than centroids: 255 < 256, 15 < 16. */
	EXPECT(vec_pq_train(cent, x, 255, 8, 4, 8, 1, 1, &eb) == VEC_E_USAGE);
	EXPECT_MSG(strstr(eb.msg, "255 training vectors, at least 256 needed"),
		   "message: %s", eb.msg);
	EXPECT(vec_pq_train(cent, x, 15, 8, 4, 4, 1, 1, &eb) == VEC_E_USAGE);
	/* Just enough is fine. */
	EXPECT(vec_pq_train(cent, x, 16, 8, 4, 4, 1, 1, &eb) == VEC_OK);
	EXPECT(vec_pq_train(cent, x, 256, 8, 4, 8, 1, 1, &eb) == VEC_OK);
	free(x);
}

static void test_train_deterministic(void)
{
	enum { N = 3000, M = 4, DSUB = 3, DIM = M * DSUB };
	float *x = clustered(N, M, DSUB, 2.0f);
	size_t sz = M * 16 * DSUB;
	float *a = malloc(sz * sizeof *a), *b = malloc(sz * sizeof *b),
	      *c = malloc(sz * sizeof *c);

	EXPECT(vec_pq_train(a, x, N, DIM, M, 4, 5, 1, NULL) == VEC_OK);
	EXPECT(vec_pq_train(b, x, N, DIM, M, 4, 5, 2, NULL) == VEC_OK);
	EXPECT(!memcmp(a, b, sz * sizeof *a));
	/* A sample, twice. */
	EXPECT(vec_pq_train_sample(b, x, N, DIM, M, 4, 500, 5, 2, NULL) == VEC_OK);
	EXPECT(vec_pq_train_sample(c, x, N, DIM, M, 4, 500, 5, 1, NULL) == VEC_OK);
	EXPECT(!memcmp(b, c, sz * sizeof *b));
	/* Another seed trains other centroids (the seed is used at all). */
	EXPECT(vec_pq_train(c, x, N, DIM, M, 4, 6, 1, NULL) == VEC_OK);
	EXPECT(memcmp(a, c, sz * sizeof *a) != 0);
	free(a);
	free(b);
	free(c);
	free(x);
}

/*
 * Training on residuals named by rows and centroids (vec_pq_train_res)
 * gives the centroids of training on the residual matrix itself, bit for
 * bit, with a sample drawn (8 bits: more rows than k-means keeps) or not
 * (4 bits), on one thread and two.
 */
static void test_train_res(void)
{
	enum { N = 3000, M = 4, DSUB = 3, DIM = M * DSUB, NC = 7, NS = 2500 };
	float *x = clustered(N, M, DSUB, 2.0f), coarse[NC * DIM];
	float *res = malloc((size_t)NS * DIM * sizeof *res);
	uint64_t rows[NS];
	uint32_t asg[NS];
	size_t sz = M * 256 * DSUB;
	float *a = malloc(sz * sizeof *a), *b = malloc(sz * sizeof *b);

	for (size_t i = 0; i < NC * DIM; i++)
		coarse[i] = (float)((i * 37) % 11) - 5.0f;
	for (uint64_t i = 0; i < NS; i++) {
		rows[i] = (i * 7919) % N; /* any rows, in any order */
		asg[i] = (uint32_t)((i * 13) % NC);
		for (size_t d = 0; d < DIM; d++)
			res[i * DIM + d] = x[rows[i] * DIM + d] - coarse[asg[i] * DIM + d];
	}
	for (unsigned bits = 4; bits <= 8; bits += 4)
		for (int threads = 1; threads <= 2; threads++) {
			size_t n = M * ((size_t)1 << bits) * DSUB;
			memset(a, 0, sz * sizeof *a);
			memset(b, 0xff, sz * sizeof *b);
			EXPECT(vec_pq_train(a, res, NS, DIM, M, bits, 9, threads, NULL) == VEC_OK);
			EXPECT(vec_pq_train_res(b, x, rows, coarse, asg, NS, DIM, M, bits,
						9, threads, NULL) == VEC_OK);
			EXPECT_MSG(!memcmp(a, b, n * sizeof *a),
				   "%u bits, %d threads: other centroids", bits, threads);
		}
	free(x);
	free(res);
	free(a);
	free(b);
}

/* ---- encode, decode, tables ---- */

static void roundtrip(unsigned nbits)
{
	enum { N = 2000, M = 4, DSUB = 4, DIM = M * DSUB };
	size_t ksub = (size_t)1 << nbits, cs = vec_pq_code_size(M, nbits);
	float *x = clustered(N, M, DSUB, 0.05f);
	float *cent = malloc(M * ksub * DSUB * sizeof *cent);
	float *y = malloc((size_t)N * DIM * sizeof *y), v[DIM], w[DIM];
	uint8_t *codes = malloc(N * cs), code[M];
	struct vec_pq pq = { DIM, M, DSUB, nbits, ksub, cent, NULL };
	double err = 0, norm = 0;

	EXPECT(vec_pq_train(cent, x, N, DIM, M, nbits, 3, 2, NULL) == VEC_OK);
	vec_pq_encode(&pq, x, N, codes);
	vec_pq_decode(&pq, codes, N, y);
	for (size_t i = 0; i < (size_t)N * DIM; i++) {
		err += (double)(x[i] - y[i]) * (x[i] - y[i]);
		norm += (double)x[i] * x[i];
	}
	/* Noise of width 0.05 (variance 2e-4) against values of about 5^2. */
	EXPECT_MSG(err / norm < 1e-4, "%u bits: relative error %g", nbits,
		   err / norm);
	/* A vector made of centroids comes back exactly. */
	for (size_t e = 0; e < ksub; e += 5) {
		for (size_t j = 0; j < M; j++)
			memcpy(v + j * DSUB,
			       cent + (j * ksub + (e + 3 * j) % ksub) * DSUB,
			       DSUB * sizeof *v);
		vec_pq_encode(&pq, v, 1, code);
		vec_pq_decode(&pq, code, 1, w);
		EXPECT_MSG(!memcmp(v, w, sizeof v), "%u bits, centroid %zu",
			   nbits, e);
	}
	free(x);
	free(y);
	free(cent);
	free(codes);
}

static void test_roundtrip4(void)
{
	roundtrip(4);
}

static void test_roundtrip8(void)
{
	roundtrip(8);
}

/* Nibble packing of plain codes: sub-quantiser 2i low, 2i + 1 high. */
static void test_code_layout(void)
{
	float cent[3 * 16 * 1];
	struct vec_pq pq = { 3, 3, 1, 4, 16, cent, NULL };
	float x[3] = { 5, 11, 15 };
	uint8_t code[2];

	for (size_t j = 0; j < 3; j++)
		for (size_t e = 0; e < 16; e++)
			cent[j * 16 + e] = (float)e;
	EXPECT(vec_pq_code_size(3, 4) == 2 && vec_pq_code_size(3, 8) == 3);
	vec_pq_encode(&pq, x, 1, code);
	EXPECT(code[0] == (5 | 11 << 4));
	EXPECT(code[1] == 15); /* odd m: the last high nibble is 0 */
}

/* The tables give the distance to the decoded vector. */
static void test_table_adc(void)
{
	enum { N = 500, M = 8, DSUB = 2, DIM = M * DSUB };
	float *x = clustered(N, M, DSUB, 1.0f);
	float cent[M * 256 * DSUB], t[M * 256], out[N], y[DIM];
	uint8_t codes[N * M];

	for (unsigned nbits = 4; nbits <= 8; nbits += 4) {
		size_t ksub = (size_t)1 << nbits;
		struct vec_pq pq = { DIM, M, DSUB, nbits, ksub, cent, NULL };
		const float *q = x + 7 * DIM;

		EXPECT(vec_pq_train(cent, x, N, DIM, M, nbits, 9, 1, NULL) == VEC_OK);
		vec_pq_encode(&pq, x, N, codes);
		for (int l2 = 0; l2 <= 1; l2++) {
			vec_pq_table(&pq, q, l2, t);
			vec_pq_adc(&pq, t, codes, N, out);
			for (size_t i = 0; i < N; i += 37) {
				float ref = 0;
				vec_pq_decode(&pq, codes + i * vec_pq_code_size(M, nbits),
					      1, y);
				for (size_t d = 0; d < DIM; d++)
					ref += l2 ? (q[d] - y[d]) * (q[d] - y[d])
						  : -q[d] * y[d];
				EXPECT_MSG(fabsf(out[i] - ref) <= 1e-4f * (1 + fabsf(ref)),
					   "%u bits l2 %d vector %zu: %g vs %g",
					   nbits, l2, i, out[i], ref);
			}
		}
	}
	free(x);
}

/*
 * vec_pq_table on every level against a double-precision reference, for
 * the sub-vector lengths the SIMD kernels handle (1, 2, 4, 8, 16) and
 * others (3, 5, 17: the portable loops), odd m, both ksub.  The table is
 * filled with NaN first, so an entry left unwritten fails.  Tolerance:
 * float rounding of the dsub terms, relative to their absolute sum.
 */
static void test_table_levels(void)
{
	static const size_t ms[] = { 1, 3, 7, 50 };
	static const size_t dsubs[] = { 1, 2, 3, 4, 5, 8, 16, 17 };
	int lv[4], nl = levels(lv), saved = vec_kernels()->level;

	rs = 31337;
	for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
		for (size_t b = 0; b < sizeof dsubs / sizeof *dsubs; b++)
			for (size_t ksub = 16; ksub <= 256; ksub *= 16) {
				size_t m = ms[a], dsub = dsubs[b], dim = m * dsub;
				float *cent = malloc(m * ksub * dsub * sizeof *cent);
				float *q = malloc(dim * sizeof *q);
				float *t = malloc(m * ksub * sizeof *t);
				struct vec_pq pq = { dim, m, dsub, ksub == 16 ? 4 : 8,
						     ksub, cent, NULL };
				float *ct = malloc(m * ksub * dsub * sizeof *ct);
				float *t2 = malloc(m * ksub * sizeof *t2);

				for (size_t i = 0; i < m * ksub * dsub; i++)
					cent[i] = 4.0f * unit_noise() + 1.0f;
				if (ct)
					vec_pq_transpose(&pq, ct);
				for (size_t i = 0; i < dim; i++)
					q[i] = 4.0f * unit_noise() + 1.0f;
				for (int l = 0; l < nl; l++)
					for (int l2 = 0; l2 <= 1; l2++) {
						size_t bad = 0;

						vec_simd_select(lv[l]);
						for (size_t i = 0; i < m * ksub; i++)
							t[i] = NAN;
						vec_pq_table(&pq, q, l2, t);
						for (size_t j = 0; j < m; j++)
							for (size_t e = 0; e < ksub; e++) {
								const float *c = cent + (j * ksub + e) * dsub;
								const float *qs = q + j * dsub;
								double ref = 0, abs = 0, v;
								for (size_t d = 0; d < dsub; d++) {
									v = l2 ? ((double)qs[d] - c[d]) *
										 ((double)qs[d] - c[d])
									       : -(double)qs[d] * c[d];
									ref += v;
									abs += fabs(v);
								}
								v = t[j * ksub + e];
								if (!(fabs(v - ref) <= 4e-7 * (double)dsub * abs + 1e-30) &&
								    bad++ < 3)
									fprintf(stderr,
										"level %d m %zu dsub %zu ksub %zu l2 %d: "
										"t[%zu][%zu] = %.9g, not %.9g\n",
										lv[l], m, dsub, ksub, l2, j, e, v, ref);
							}
						EXPECT_MSG(!bad, "level %d m %zu dsub %zu ksub %zu l2 %d: %zu entries wrong",
							   lv[l], m, dsub, ksub, l2, bad);
						/* From the transposed copy: the same bits. */
						if (ct && t2) {
							struct vec_pq pt = pq;
							pt.cent_t = ct;
							vec_pq_table(&pt, q, l2, t2);
							EXPECT_MSG(!memcmp(t, t2, m * ksub * sizeof *t),
								   "level %d m %zu dsub %zu ksub %zu l2 %d: transposed table differs",
								   lv[l], m, dsub, ksub, l2);
						}
					}
				free(cent);
				free(q);
				free(t);
				free(ct);
				free(t2);
			}
	vec_simd_select(saved);
}

/* ---- 8-bit scan ---- */

static void test_scan8_levels(void)
{
	static const size_t ms[] = { 1, 3, 8, 16, 17, 64, 100, 255, 256 };
	int lv[4], nl = levels(lv), saved = vec_kernels()->level;

	rs = 77;
	for (size_t a = 0; a < sizeof ms / sizeof *ms; a++) {
		size_t m = ms[a], n = 103;
		float *t = malloc(m * 256 * sizeof *t), *ref = malloc(n * sizeof *ref),
		      *out = malloc(n * sizeof *out);
		uint8_t *codes = malloc(n * m);
		struct vec_pq pq = { m, m, 1, 8, 256, NULL, NULL };

		for (size_t i = 0; i < m * 256; i++)
			t[i] = 10.0f * unit_noise();
		for (size_t i = 0; i < n * m; i++)
			codes[i] = (uint8_t)rnd();
		vec_pq_adc(&pq, t, codes, n, ref);
		for (int l = 0; l < nl; l++) {
			vec_simd_select(lv[l]);
			vec_pq_scan8(t, m, codes, n, out);
			for (size_t i = 0; i < n; i++) {
				double s = 0;
				for (size_t j = 0; j < m; j++)
					s += t[j * 256 + codes[i * m + j]];
				EXPECT_MSG(fabsf(out[i] - ref[i]) <= 1e-5f * (float)m * 5 &&
					   fabs(out[i] - s) <= 1e-5 * (double)m * 5,
					   "level %d m %zu code %zu: %g, adc %g", lv[l],
					   m, i, out[i], ref[i]);
			}
		}
		free(t);
		free(ref);
		free(out);
		free(codes);
	}
	vec_simd_select(saved);
}

/* ---- 4-bit fast scan ---- */

static void test_pack(void)
{
	static const size_t ms[] = { 1, 2, 3, 8, 17, 50, 255, 256 };
	static const size_t ns[] = { 1, 31, 32, 33, 100 };

	rs = 99;
	for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
		for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
			size_t m = ms[a], n = ns[b], cs = (m + 1) / 2;
			size_t nb = (n + 31) / 32, bad = 0;
			uint8_t *codes = malloc(n * cs), *blocks, *one = malloc(cs);

			EXPECT(vec_pq4_packed_size(n, m) == nb * 32 * cs);
			blocks = malloc(vec_pq4_packed_size(n, m));
			random_codes(codes, n, m);
			vec_pq4_pack(codes, n, m, blocks);
			for (size_t i = 0; i < n; i++) {
				vec_pq4_unpack_one(blocks, i, m, one);
				bad += memcmp(one, codes + i * cs, cs) != 0;
			}
			/* Padding vectors are code 0. */
			for (size_t i = n; i < nb * 32; i++) {
				vec_pq4_unpack_one(blocks, i, m, one);
				for (size_t p = 0; p < cs; p++)
					bad += one[p] != 0;
			}
			EXPECT_MSG(!bad, "m %zu n %zu: %zu codes differ", m, n, bad);
			free(codes);
			free(blocks);
			free(one);
		}
}

/* sums[i] == sum of lut entries mod 2^16, on every level. */
static void scan4_check(size_t m, size_t n, const uint8_t *lut, int level)
{
	size_t cs = (m + 1) / 2, nb = (n + 31) / 32, bad = 0;
	uint8_t *codes = malloc(n * cs), *blocks = malloc(vec_pq4_packed_size(n, m));
	uint16_t *sums = malloc(nb * 32 * sizeof *sums);

	random_codes(codes, n, m);
	vec_pq4_pack(codes, n, m, blocks);
	vec_pq4_scan(lut, m, blocks, nb, sums);
	for (size_t i = 0; i < nb * 32; i++) {
		uint32_t ref = 0;
		for (size_t j = 0; j < m; j++)
			ref += lut[j * 16 + (i < n ? nibble(codes + i * cs, j) : 0)];
		if (sums[i] != (uint16_t)ref && bad++ < 3)
			fprintf(stderr, "level %d m %zu n %zu: sum %zu is %u, not %u\n",
				level, m, n, i, sums[i], (unsigned)(uint16_t)ref);
	}
	EXPECT_MSG(!bad, "level %d m %zu n %zu: %zu sums differ", level, m, n, bad);
	free(codes);
	free(blocks);
	free(sums);
}

static void test_scan4_levels(void)
{
	static const size_t ms[] = { 1, 2, 3, 4, 7, 16, 31, 50, 64, 129, 256 };
	static const size_t ns[] = { 1, 31, 32, 33, 64, 65, 200 };
	int lv[4], nl = levels(lv), saved = vec_kernels()->level;

	for (int l = 0; l < nl; l++) {
		vec_simd_select(lv[l]);
		rs = 1234;
		for (size_t a = 0; a < sizeof ms / sizeof *ms; a++) {
			size_t m = ms[a];
			uint8_t *lut = calloc(vec_pq4_lut_size(m), 1);
			for (size_t i = 0; i < m * 16; i++)
				lut[i] = (uint8_t)rnd();
			for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
				scan4_check(m, ns[b], lut, lv[l]);
			free(lut);
		}
		/* Sums past 16 bits wrap the same way on every level:
		 * 300 x 255 = 76500. */
		{
			uint8_t *lut = malloc(vec_pq4_lut_size(300));
			memset(lut, 255, vec_pq4_lut_size(300));
			scan4_check(300, 70, lut, lv[l]);
			free(lut);
		}
	}
	vec_simd_select(saved);
}

/*
 * Random tables of several shapes, on every level: entries fit, sums fit,
 * each entry within half a step of (t - min_j) / delta, estimate close,
 * and the same bytes, delta and bias as the scalar level.
 */
static void lut_check(int level)
{
	static const size_t ms[] = { 1, 5, 7, 15, 16, 17, 64, 196, 255, 256, 300,
				    1000 };
	float delta, bias;

	rs = 4242;
	for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
		for (int shape = 0; shape < 4; shape++) {
			size_t m = ms[a];
			float *t = malloc(m * 16 * sizeof *t), rdelta, rbias;
			uint8_t *lut = malloc(vec_pq4_lut_size(m)), code[500];
			uint8_t *ref = malloc(vec_pq4_lut_size(m));
			uint32_t maxsum = 0;
			size_t bad = 0, badq = 0;

			for (size_t i = 0; i < m * 16; i++) {
				float v = unit_noise();
				/* 0: [-0.5, 0.5); 1: negative, ip-like; 2: one
				 * sub-quantiser 1000 times wider; 3: constant. */
				t[i] = shape == 0   ? v
				       : shape == 1 ? -100.0f + 30.0f * v
				       : shape == 2 ? (i / 16 == m / 2 ? 1000.0f * v : v)
						    : 3.25f;
			}
			memset(lut, 0xaa, vec_pq4_lut_size(m));
			vec_simd_select(VEC_SIMD_SCALAR);
			vec_pq4_lut(t, m, lut, &delta, &bias);
			memcpy(ref, lut, vec_pq4_lut_size(m));
			rdelta = delta;
			rbias = bias;
			memset(lut, 0x55, vec_pq4_lut_size(m));
			vec_simd_select(level);
			vec_pq4_lut(t, m, lut, &delta, &bias);
			EXPECT_MSG(!memcmp(lut, ref, vec_pq4_lut_size(m)) &&
				   delta == rdelta && bias == rbias,
				   "level %d m %zu shape %d: differs from scalar", level,
				   m, shape);
			EXPECT(delta > 0 && isfinite(delta) && isfinite(bias));
			for (size_t j = 0; j < m; j++) {
				float lo = t[j * 16];
				for (size_t c = 1; c < 16; c++)
					lo = fminf(lo, t[j * 16 + c]);
				for (size_t c = 0; c < 16; c++) {
					double want = ((double)t[j * 16 + c] - lo) / delta;
					if (!(fabs(lut[j * 16 + c] - want) <= 0.5 + 1e-4))
						badq++;
				}
			}
			EXPECT_MSG(!badq, "level %d m %zu shape %d: %zu entries off by "
				   "more than half a step", level, m, shape, badq);
			for (size_t j = 0; j < m; j++) {
				unsigned mx = 0;
				for (size_t c = 0; c < 16; c++)
					mx = lut[j * 16 + c] > mx ? lut[j * 16 + c] : mx;
				maxsum += mx;
			}
			EXPECT_MSG(maxsum <= 65535, "level %d m %zu shape %d: %u",
				   level, m, shape, (unsigned)maxsum);
			for (size_t i = m * 16; i < vec_pq4_lut_size(m); i++)
				EXPECT(lut[i] == 0);
			for (int r = 0; r < 50; r++) {
				double f = 0;
				uint32_t s = 0;
				float est;

				random_codes(code, 1, m);
				for (size_t j = 0; j < m; j++) {
					unsigned c = nibble(code, j);
					f += t[j * 16 + c];
					s += lut[j * 16 + c];
				}
				est = bias + delta * (float)s;
				/* Half a step per entry, plus float rounding. */
				if (fabs(est - f) > (double)m * delta / 2 * 1.001 +
							    1e-5 * (fabs(f) + fabs(bias)))
					bad++;
			}
			EXPECT_MSG(!bad, "level %d m %zu shape %d: %zu estimates off",
				   level, m, shape, bad);
			/* Up to m = 257 bytes cannot overflow 16 bits: delta is
			 * then set by the widest range alone (1 here); past it
			 * the summed ranges set it. */
			if (shape == 0 && m <= 256)
				EXPECT(delta <= 1.0f / 255 * 1.01f);
			if (shape == 0 && m > 257)
				EXPECT(delta > 1.0f / 255 * 1.01f);
			free(t);
			free(lut);
			free(ref);
		}
}

static void test_lut(void)
{
	int lv[4], nl = levels(lv), saved = vec_kernels()->level;

	for (int l = 0; l < nl; l++)
		lut_check(lv[l]);
	vec_simd_select(saved);
}

/*
 * Tables that are not finite, on every level: rows with NaN entries, with
 * +inf and -inf, all NaN, all +inf; then (many) 320 rows pinned at 255 by
 * infinities, 81600 > 65535, force the step to widen (to infinity).  The bytes are defined (NaN gives
 * 0), the maxima still sum to at most 65535, and every level agrees.
 */
static void test_lut_nonfinite(void)
{
	enum { M = 401 };
	static float t[M * 16];
	static uint8_t ref[16 * (M + 1)], lut[16 * (M + 1)];
	int lv[4], nl = levels(lv), saved = vec_kernels()->level;
	float rdelta = 0, rbias = 0, delta, bias;

	EXPECT(vec_pq4_lut_size(M) == sizeof lut);
	rs = 8080;
	for (int many = 0; many <= 1; many++) {
		for (size_t i = 0; i < M * 16; i++)
			t[i] = unit_noise();
		for (size_t j = 0; j < M; j++) {
			size_t k = j % 5;
			if (k == 0)
				t[j * 16 + j % 16] = NAN;
			else if (k % 2 == 1 && (many || j < 20))
				t[j * 16 + 3] = INFINITY;
			else if (k % 2 == 0 && (many || j < 20))
				t[j * 16 + 7] = -INFINITY;
		}
		for (size_t c = 0; c < 16; c++) {
			t[10 * 16 + c] = NAN;
			t[11 * 16 + c] = INFINITY;
		}
		for (int l = 0; l < nl; l++) {
			uint32_t maxsum = 0;
			size_t nanbad = 0;

			vec_simd_select(lv[l]);
			memset(lut, 0xaa, sizeof lut);
			vec_pq4_lut(t, M, lut, &delta, &bias);
			for (size_t j = 0; j < M; j++) {
				unsigned mx = 0;
				for (size_t c = 0; c < 16; c++) {
					mx = lut[j * 16 + c] > mx ? lut[j * 16 + c] : mx;
					nanbad += isnan(t[j * 16 + c]) && lut[j * 16 + c];
				}
				maxsum += mx;
			}
			EXPECT_MSG(maxsum <= 65535, "level %d many %d: %u", lv[l],
				   many, (unsigned)maxsum);
			EXPECT_MSG(!nanbad, "level %d: %zu NaN entries not 0", lv[l],
				   nanbad);
			EXPECT(delta > 0);
			if (l == 0) {
				memcpy(ref, lut, sizeof lut);
				rdelta = delta;
				rbias = bias;
			} else {
				EXPECT_MSG(!memcmp(ref, lut, sizeof lut) &&
					   delta == rdelta &&
					   (bias == rbias || (isnan(bias) && isnan(rbias))),
					   "level %d many %d: differs from level %d",
					   lv[l], many, lv[0]);
			}
			for (size_t i = M * 16; i < sizeof lut; i++)
				EXPECT(lut[i] == 0);
		}
	}
	vec_simd_select(saved);
}

/*
 * The bias is the rows' minima summed in double in row order, on every
 * level: rows with minima 2^-24 (four), 64 and 2^30, the rest 0, sum in
 * that order to 2^30 + 64 + 2^-22 exactly, a float 2^30 + 128; 2^30
 * first would lose the 2^-24s (under half a double step) and leave the
 * tie 2^30 + 64, a float 2^30.  The six rows at offsets across the
 * kernels' groups of 8 and 16 and their last, partial group.
 */
static void test_lut_sum_order(void)
{
	enum { M = 40 };
	static const float pat[6] = { 0x1p-24f, 0x1p-24f, 0x1p-24f, 0x1p-24f,
				      64.0f, 0x1p30f };
	static const size_t offs[] = { 0, 1, 5, 8, 12, 15, 16, 27, 34 };
	float t[M * 16], delta, bias;
	uint8_t lut[16 * M];
	int lv[4], nl = levels(lv), saved = vec_kernels()->level;

	for (size_t o = 0; o < sizeof offs / sizeof *offs; o++) {
		for (size_t j = 0; j < M; j++) {
			float lo = j >= offs[o] && j < offs[o] + 6 ? pat[j - offs[o]] : 0;
			for (size_t c = 0; c < 16; c++)
				t[j * 16 + (c * 5) % 16] = lo + lo * (float)c / 16;
		}
		for (int l = 0; l < nl; l++) {
			vec_simd_select(lv[l]);
			vec_pq4_lut(t, M, lut, &delta, &bias);
			EXPECT_MSG(bias == 0x1p30f + 128, "level %d offset %zu: bias %.9g",
				   lv[l], offs[o], bias);
		}
	}
	vec_simd_select(saved);
}

/*
 * vec_pq4_lut_l2 on every level: the same bytes, delta, bias and table as
 * its steps (q - c, vec_pq_table, vec_pq4_lut) on that level, and the
 * same bytes, delta and bias as the scalar level wherever the levels'
 * tables agree to the bit: dsub up to 4, dsub 3 (left to the portable
 * loops on every level), and integer-valued data (exact sums in any
 * order).  m around the kernels' groups of 8 and 16 rows; random data,
 * integer-valued data, and data with NaN and infinities: in the query
 * (rows all NaN or all +inf) and in centroids (one NaN or +inf entry in
 * a row); with and without the transposed codebook (without it, every
 * level takes the steps).  Rows differ, so a range taken from a wrong
 * lane or row of the kernels' trees changes the bytes.
 */
static void lut_l2_check(size_t m, size_t dsub, int shape, int tr,
			 const int *lv, int nl)
{
	size_t dim = m * dsub, ls = vec_pq4_lut_size(m);
	float *cent = malloc(m * 16 * dsub * sizeof *cent);
	float *ct = malloc(m * 16 * dsub * sizeof *ct);
	float *q = malloc(dim * sizeof *q), *c = malloc(dim * sizeof *c);
	float *qres = malloc(dim * sizeof *qres);
	float *t = malloc(m * 16 * sizeof *t), *t2 = malloc(m * 16 * sizeof *t2);
	uint8_t *lut = malloc(ls), *lut2 = malloc(ls), *ref = malloc(ls);
	struct vec_pq pq = { dim, m, dsub, 4, 16, cent, NULL };
	float delta, bias, d2, b2, rdelta = 0, rbias = 0;
	int cross = dsub <= 4 || shape == 1;

	for (size_t i = 0; i < m * 16 * dsub; i++)
		cent[i] = shape == 1 ? (float)(int)(rnd() % 17) - 8
				     : 4.0f * unit_noise() + 1.0f;
	for (size_t i = 0; i < dim; i++) {
		q[i] = shape == 1 ? (float)(int)(rnd() % 17) - 8
				  : 4.0f * unit_noise() + 1.0f;
		c[i] = shape == 1 ? (float)(int)(rnd() % 9) - 4 : unit_noise();
	}
	if (shape == 2)
		for (size_t j = 0; j < m; j++) {
			if (j % 7 == 0)
				cent[(j * 16 + j % 16) * dsub] = NAN;
			else if (j % 7 == 2)
				cent[(j * 16 + (j + 5) % 16) * dsub + dsub - 1] = INFINITY;
			if (j % 11 == 3)
				q[j * dsub] = NAN;
			else if (j % 11 == 5)
				q[j * dsub + dsub / 2] = INFINITY;
		}
	vec_pq_transpose(&pq, ct);
	if (tr)
		pq.cent_t = ct;
	for (int l = 0; l < nl; l++) {
		vec_simd_select(lv[l]);
		for (size_t d = 0; d < dim; d++)
			qres[d] = q[d] - c[d];
		vec_pq_table(&pq, qres, 1, t);
		memset(lut, 0xaa, ls);
		vec_pq4_lut(t, m, lut, &delta, &bias);
		for (size_t i = 0; i < m * 16; i++)
			t2[i] = -1;
		memset(qres, 0x55, dim * sizeof *qres);
		memset(lut2, 0x55, ls);
		vec_pq4_lut_l2(&pq, q, c, qres, t2, lut2, &d2, &b2);
		EXPECT_MSG(!memcmp(lut, lut2, ls) && delta == d2 &&
			   (bias == b2 || (isnan(bias) && isnan(b2))) &&
			   !memcmp(t, t2, m * 16 * sizeof *t),
			   "level %d m %zu dsub %zu shape %d transposed %d: "
			   "differs from its steps", lv[l], m, dsub, shape, tr);
		if (l == 0) {
			memcpy(ref, lut2, ls);
			rdelta = d2;
			rbias = b2;
		} else if (cross) {
			EXPECT_MSG(!memcmp(ref, lut2, ls) && rdelta == d2 &&
				   (rbias == b2 || (isnan(rbias) && isnan(b2))),
				   "level %d m %zu dsub %zu shape %d transposed %d: "
				   "differs from level %d", lv[l], m, dsub, shape,
				   tr, lv[0]);
		}
	}
	free(cent);
	free(ct);
	free(q);
	free(c);
	free(qres);
	free(t);
	free(t2);
	free(lut);
	free(lut2);
	free(ref);
}

static void test_lut_l2_levels(void)
{
	static const size_t ms[] = { 1, 7, 15, 16, 17, 33, 196, 300 };
	static const size_t dsubs[] = { 1, 2, 3, 4, 8, 16 };
	int lv[4], nl = levels(lv), saved = vec_kernels()->level;

	rs = 2718;
	for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
		for (size_t b = 0; b < sizeof dsubs / sizeof *dsubs; b++)
			for (int shape = 0; shape < 3; shape++)
				for (int tr = 0; tr <= 1; tr++)
					lut_l2_check(ms[a], dsubs[b], shape, tr, lv, nl);
	vec_simd_select(saved);
}

static void test_below_levels(void)
{
	static const size_t ns[] = { 0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 100, 1000 };
	static const uint16_t thrs[] = { 0, 1, 300, 1000, 30000, 65535 };
	int lv[4], nl = levels(lv), saved = vec_kernels()->level;

	rs = 555;
	for (int l = 0; l < nl; l++) {
		vec_simd_select(lv[l]);
		for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
			for (size_t b = 0; b < sizeof thrs / sizeof *thrs; b++) {
				size_t n = ns[a], cnt, k = 0, bad = 0;
				uint16_t *sums = malloc((n ? n : 1) * sizeof *sums);
				/* Exactly n positions: ASan sees any write past. */
				uint32_t *pos = malloc((n ? n : 1) * sizeof *pos);

				/* Mostly small, some large, so every threshold
				 * splits differently; a few equal to it. */
				for (size_t i = 0; i < n; i++) {
					uint64_t r = rnd();
					sums[i] = (uint16_t)(r % 4 == 0 ? r >> 16 : (r >> 16) % 2000);
					if (r % 17 == 0)
						sums[i] = thrs[b];
				}
				cnt = vec_pq4_below(sums, n, thrs[b], pos);
				for (size_t i = 0; i < n; i++)
					if (sums[i] < thrs[b]) {
						if (k >= cnt || pos[k] != i)
							bad++;
						k++;
					}
				EXPECT_MSG(!bad && k == cnt,
					   "level %d n %zu thr %u: %zu found, %zu expected, %zu wrong",
					   lv[l], n, thrs[b], cnt, k, bad);
				free(sums);
				free(pos);
			}
	}
	vec_simd_select(saved);
}

/* The pieces together: pack, quantised table, scan, below, as a probe. */
static void test_fastscan_pipeline(void)
{
	enum { N = 1000, M = 8, DSUB = 2, DIM = M * DSUB };
	float *x = clustered(N, M, DSUB, 1.0f);
	float cent[M * 16 * DSUB], t[M * 16], f[N], delta, bias;
	uint8_t codes[N * (M / 2)], blocks[(N + 31) / 32 * 32 * (M / 2)];
	uint8_t lut[M * 16];
	uint16_t sums[(N + 31) / 32 * 32];
	uint32_t pos[N];
	struct vec_pq pq = { DIM, M, DSUB, 4, 16, cent, NULL };
	size_t cnt, missed = 0;
	float worst = 0;
	double thr;

	EXPECT(vec_pq4_lut_size(M) == sizeof lut);
	EXPECT(vec_pq_train(cent, x, N, DIM, M, 4, 1, 1, NULL) == VEC_OK);
	vec_pq_encode(&pq, x, N, codes);
	vec_pq4_pack(codes, N, M, blocks);
	vec_pq_table(&pq, x + 3 * DIM, 1, t);
	vec_pq_adc(&pq, t, codes, N, f);
	vec_pq4_lut(t, M, lut, &delta, &bias);
	vec_pq4_scan(lut, M, blocks, (N + 31) / 32, sums);
	/* Every code whose float distance is below 20 passes a threshold
	 * raised by the estimate's error bound. */
	thr = ceil((20 - bias) / delta + M / 2.0 + 1);
	thr = thr < 0 ? 0 : thr > 65535 ? 65535 : thr;
	cnt = vec_pq4_below(sums, N, (uint16_t)thr, pos);
	for (size_t i = 0, k = 0; i < N; i++) {
		while (k < cnt && pos[k] < i)
			k++;
		if (f[i] < 20 && (k == cnt || pos[k] != i))
			missed++;
		worst = fmaxf(worst, fabsf(bias + delta * sums[i] - f[i]));
	}
	EXPECT(cnt > 0 && cnt < N);
	EXPECT_MSG(!missed, "%zu near codes missed", missed);
	EXPECT_MSG(worst <= M * delta / 2 * 1.01f + 1e-3f, "worst %g, delta %g",
		   worst, delta);
	free(x);
}

void suite_pq(void)
{
	RUN(test_train_usage);
	RUN(test_train_deterministic);
	RUN(test_train_res);
	RUN(test_roundtrip4);
	RUN(test_roundtrip8);
	RUN(test_code_layout);
	RUN(test_table_adc);
	RUN(test_table_levels);
	RUN(test_scan8_levels);
	RUN(test_pack);
	RUN(test_scan4_levels);
	RUN(test_lut);
	RUN(test_lut_nonfinite);
	RUN(test_lut_sum_order);
	RUN(test_lut_l2_levels);
	RUN(test_below_levels);
	RUN(test_fastscan_pipeline);
}
