/*
 * pq.c - product quantisation: training, encoding, tables, the 8-bit ADC
 * scan and the 4-bit fast scan (scalar kernels and dispatch; the SIMD
 * kernels are in pq_avx2.c and pq_avx512.c).
 *
 * Fast-scan block layout.  Codes are stored in blocks of 32 vectors; with
 * P = ceil(m / 2) sub-quantiser pairs a block is P slices of 32 bytes, and
 * slice p holds sub-quantisers 2p and 2p + 1:
 *
 *   byte k      (k < 16): code of sub-quantiser 2p     of vector k in the
 *                         low nibble, of vector k + 16 in the high nibble;
 *   byte 16 + k (k < 16): the same for sub-quantiser 2p + 1.
 *
 * The quantised table (vec_pq4_lut) is m x 16 bytes, padded to P x 32, so
 * slice p of every block lines up with bytes [32p, 32p + 32) of the table:
 * one 256-bit load of each, the low nibbles as indices, and vpshufb (a
 * 16-entry table per 128-bit lane) gives vectors 0..15's entries for
 * sub-quantiser 2p in the low lane and for 2p + 1 in the high lane; the
 * high nibbles give vectors 16..31.  A 512-bit register takes two slices
 * (four sub-quantisers) at once.  An odd m leaves the last slice's second
 * half as code 0 against table entries 0.  Padding vectors are code 0.
 *
 * The 8-bit entries are summed in 16 bits: a register of 32 looked-up
 * bytes, read as 16 words, is word = even byte + 256 * odd byte; adding
 * those words and, separately, the words shifted right by 8 (the odd bytes
 * alone) gives per word A = sum even + 256 sum odd and B = sum odd
 * (mod 2^16), so sum even = A - 256 B (mod 2^16).  Every level computes
 * the sums modulo 2^16, and vec_pq4_lut makes them fit.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kmeans.h"
#include "pq.h"

size_t vec_pq_code_size(size_t m, unsigned nbits)
{
	return nbits == 4 ? (m + 1) / 2 : m;
}

/* ---- training ---- */

/* splitmix64 (as in kmeans.c): the state is the seed. */
static uint64_t next_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* k of n indices, uniformly without replacement, increasing (selection
 * sampling). */
static void sample_sorted(uint64_t n, uint64_t k, uint64_t *rng, uint64_t *out)
{
	uint64_t got = 0;
	for (uint64_t i = 0; i < n && got < k; i++) {
		double u = (double)(next_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
		if ((double)(n - i) * u < (double)(k - got))
			out[got++] = i;
	}
}

struct train_ctx {
	float *cent;
	const float *x;
	const uint64_t *outer; /* the training vectors' rows of x, or NULL */
	const float *minus;    /* subtracted: minus[which[v]], or NULL */
	const uint32_t *which;
	const uint64_t *rows;  /* nt sampled training vectors, or NULL: 0..nt-1 */
	uint64_t nt;
	size_t dim, dsub, ksub;
	uint64_t seed;
	int threads;           /* per k-means run */
	int *rc;               /* m results */
	struct vec_errbuf *ebs; /* m error buffers */
};

/* Sub-space j: its sub-vectors made contiguous, then k-means. */
static void train_task(void *vctx, size_t j, int worker)
{
	struct train_ctx *c = vctx;
	struct vec_kmeans_params p = { 0 };
	float *sub = malloc(c->nt * c->dsub * sizeof *sub);

	(void)worker;
	if (!sub) {
		c->rc[j] = vec_err(&c->ebs[j], VEC_E_NOMEM,
				   "pq training: out of memory");
		return;
	}
	for (uint64_t i = 0; i < c->nt; i++) {
		uint64_t v = c->rows ? c->rows[i] : i;
		uint64_t r = c->outer ? c->outer[v] : v;
		const float *src = c->x + r * c->dim + j * c->dsub;
		if (c->minus) {
			const float *m = c->minus + (size_t)c->which[v] * c->dim +
					 j * c->dsub;
			for (size_t t = 0; t < c->dsub; t++)
				sub[i * c->dsub + t] = src[t] - m[t];
		} else {
			memcpy(sub + i * c->dsub, src, c->dsub * sizeof *sub);
		}
	}
	p.k = c->ksub;
	p.train_size = c->nt; /* the sample is already drawn */
	/* A different stream per sub-space; never 0 (k-means' "default"). */
	p.seed = c->seed + 0x9e3779b97f4a7c15u * (j + 1);
	if (!p.seed)
		p.seed = 1;
	p.threads = c->threads;
	c->rc[j] = vec_kmeans(sub, c->nt, c->dsub, &p,
			      c->cent + j * c->ksub * c->dsub, NULL, &c->ebs[j]);
	free(sub);
}

static int train_core(float *cent, const float *x, const uint64_t *outer,
		      const float *minus, const uint32_t *which, uint64_t n,
		      size_t dim, size_t m, unsigned nbits, uint64_t train_size,
		      uint64_t seed, int threads, struct vec_errbuf *eb)
{
	struct train_ctx c;
	size_t ksub;
	uint64_t nt, rng, bytes;
	uint64_t *rows = NULL;
	int rc = VEC_OK;

	if (nbits != 4 && nbits != 8)
		return vec_err(eb, VEC_E_USAGE,
			       "pq: %u bits per code: only 4 and 8 are supported",
			       nbits);
	if (m == 0 || dim == 0 || dim % m)
		return vec_err(eb, VEC_E_USAGE,
			       "pq: %zu sub-quantisers do not divide dimension %zu",
			       m, dim);
	ksub = (size_t)1 << nbits;
	if (n < ksub)
		return vec_err(eb, VEC_E_USAGE,
			       "pq: %llu training vectors, at least %zu needed "
			       "(one per centroid of %u bits)",
			       (unsigned long long)n, ksub, nbits);
	nt = train_size ? train_size : vec_kmeans_train_size(ksub, n);
	if (nt < ksub)
		nt = ksub;
	if (nt > n)
		nt = n;
	if (vec_mul_overflows(nt, (uint64_t)(dim / m) * sizeof(float), &bytes) ||
	    bytes > SIZE_MAX || vec_mul_overflows(n, dim, &bytes))
		return vec_err(eb, VEC_E_USAGE, "pq: training set too large");

	if (nt < n) {
		rows = malloc(nt * sizeof *rows);
		if (!rows)
			return vec_err(eb, VEC_E_NOMEM, "pq training: out of memory");
		rng = seed ? seed : VEC_KMEANS_DEFAULT_SEED;
		sample_sorted(n, nt, &rng, rows);
	}
	c.cent = cent;
	c.x = x;
	c.outer = outer;
	c.minus = minus;
	c.which = which;
	c.rows = rows;
	c.nt = nt;
	c.dim = dim;
	c.dsub = dim / m;
	c.ksub = ksub;
	c.seed = seed ? seed : VEC_KMEANS_DEFAULT_SEED;
	c.rc = calloc(m, sizeof *c.rc);
	c.ebs = calloc(m, sizeof *c.ebs);
	if (!c.rc || !c.ebs) {
		rc = vec_err(eb, VEC_E_NOMEM, "pq training: out of memory");
		goto done;
	}
	/*
	 * Sub-spaces side by side when there are enough of them to keep the
	 * threads busy, one at a time with every thread otherwise; k-means
	 * gives the same centroids either way.
	 */
	if (threads != 1 && m > 1) {
		c.threads = 1;
		vec_pool_run(threads, m, train_task, &c);
	} else {
		c.threads = threads;
		for (size_t j = 0; j < m; j++)
			train_task(&c, j, 0);
	}
	for (size_t j = 0; j < m; j++)
		if (c.rc[j]) {
			rc = c.rc[j];
			if (eb)
				*eb = c.ebs[j];
			break;
		}
done:
	free(c.rc);
	free(c.ebs);
	free(rows);
	return rc;
}

int vec_pq_train_sample(float *cent, const float *x, uint64_t n, size_t dim,
			size_t m, unsigned nbits, uint64_t train_size,
			uint64_t seed, int threads, struct vec_errbuf *eb)
{
	return train_core(cent, x, NULL, NULL, NULL, n, dim, m, nbits,
			  train_size, seed, threads, eb);
}

int vec_pq_train_res(float *cent, const float *x, const uint64_t *rows,
		     const float *coarse, const uint32_t *assign, uint64_t n,
		     size_t dim, size_t m, unsigned nbits, uint64_t seed,
		     int threads, struct vec_errbuf *eb)
{
	return train_core(cent, x, rows, coarse, assign, n, dim, m, nbits, 0,
			  seed, threads, eb);
}

int vec_pq_train(float *cent, const float *x, uint64_t n, size_t dim,
		 size_t m, unsigned nbits, uint64_t seed, int threads,
		 struct vec_errbuf *eb)
{
	return vec_pq_train_sample(cent, x, n, dim, m, nbits, 0, seed, threads,
				   eb);
}

/* ---- encode, decode, tables ---- */

/* Code j of a plain code (either width). */
static inline unsigned code_get(const uint8_t *code, size_t j, unsigned nbits)
{
	if (nbits == 8)
		return code[j];
	return (code[j / 2] >> ((j & 1) * 4)) & 15;
}

/* Sub-vectors this short are encoded against a transposed copy of the
 * centroids (ENC_DSUB x 256 floats on the stack); longer ones through the
 * distance kernel, whose call then costs little against its work. */
#define ENC_DSUB 16

/*
 * Squared distances from xs to the ksub centroids of ct (transposed:
 * component d of centroid e at ct[d * ksub + e]).  Inlined with ksub a
 * constant (16 or 256) so that the compiler vectorises over centroids.
 */
static inline __attribute__((always_inline)) void
sub_dist(const float *xs, const float *ct, size_t dsub, size_t ksub,
	 float *dist)
{
	for (size_t e = 0; e < ksub; e++)
		dist[e] = 0;
	for (size_t d = 0; d < dsub; d++) {
		const float v = xs[d], *cd = ct + d * ksub;
		for (size_t e = 0; e < ksub; e++) {
			float t = v - cd[e];
			dist[e] += t * t;
		}
	}
}

/* The first of the k smallest of dist (ties: the smaller number). */
static inline __attribute__((always_inline)) size_t
argmin(const float *dist, size_t k)
{
	float lo = dist[0];
	size_t best = 0;
	for (size_t e = 1; e < k; e++)
		lo = dist[e] < lo ? dist[e] : lo;
	while (best + 1 < k && !(dist[best] <= lo))
		best++;
	return best;
}

/*
 * Sub-space by sub-space.  The distance to a centroid is the sum of
 * squared differences in component order, so a sub-vector equal to a
 * centroid is at distance 0 exactly and gets that centroid (or an equal
 * one of a smaller number): decode(encode(centroid)) is the centroid.
 */
void vec_pq_encode(const struct vec_pq *pq, const float *x, size_t n,
		   uint8_t *codes)
{
	const struct vec_kernels *k = vec_kernels();
	size_t cs = vec_pq_code_size(pq->m, pq->nbits), ksub = pq->ksub;
	size_t dsub = pq->dsub;
	float ct[ENC_DSUB * 256], dist[256];

	memset(codes, 0, n * cs);
	for (size_t j = 0; j < pq->m; j++) {
		const float *c = pq->cent + j * ksub * dsub;

		if (dsub <= ENC_DSUB)
			for (size_t e = 0; e < ksub; e++)
				for (size_t d = 0; d < dsub; d++)
					ct[d * ksub + e] = c[e * dsub + d];
		for (size_t i = 0; i < n; i++) {
			const float *xs = x + i * pq->dim + j * dsub;
			size_t best;

			if (dsub <= ENC_DSUB && ksub == 256) {
				sub_dist(xs, ct, dsub, 256, dist);
				best = argmin(dist, 256);
			} else if (dsub <= ENC_DSUB) {
				sub_dist(xs, ct, dsub, 16, dist);
				best = argmin(dist, 16);
			} else {
				for (size_t e = 0; e < ksub; e++)
					dist[e] = k->l2sq(xs, c + e * dsub, dsub);
				best = argmin(dist, ksub);
			}
			if (pq->nbits == 8)
				codes[i * cs + j] = (uint8_t)best;
			else
				codes[i * cs + j / 2] |= (uint8_t)(best << ((j & 1) * 4));
		}
	}
}

void vec_pq_decode(const struct vec_pq *pq, const uint8_t *codes, size_t n,
		   float *x)
{
	size_t cs = vec_pq_code_size(pq->m, pq->nbits);

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < pq->m; j++) {
			unsigned e = code_get(codes + i * cs, j, pq->nbits);
			memcpy(x + i * pq->dim + j * pq->dsub,
			       pq->cent + (j * pq->ksub + e) * pq->dsub,
			       pq->dsub * sizeof *x);
		}
}

/*
 * One sub-space's ksub entries without a call per centroid: the dsub terms
 * summed in four partial sums, (s0 + s1) + (s2 + s3), as the scalar
 * distance kernels do.  Inlined with dsub and l2 constants for the short
 * sub-vectors, where the call and loop overhead was most of the cost.
 */
static inline __attribute__((always_inline)) void
table_sub(const float *qs, const float *c, size_t dsub, size_t ksub, int l2,
	  float *t)
{
	for (size_t e = 0; e < ksub; e++, c += dsub) {
		float s0 = 0, s1 = 0, s2 = 0, s3 = 0, r;
		size_t d = 0;

		for (; d + 4 <= dsub; d += 4) {
			float v0 = qs[d] - c[d], v1 = qs[d + 1] - c[d + 1];
			float v2 = qs[d + 2] - c[d + 2], v3 = qs[d + 3] - c[d + 3];
			s0 += l2 ? v0 * v0 : qs[d] * c[d];
			s1 += l2 ? v1 * v1 : qs[d + 1] * c[d + 1];
			s2 += l2 ? v2 * v2 : qs[d + 2] * c[d + 2];
			s3 += l2 ? v3 * v3 : qs[d + 3] * c[d + 3];
		}
		for (; d < dsub; d++) {
			float v = qs[d] - c[d];
			s0 += l2 ? v * v : qs[d] * c[d];
		}
		r = (s0 + s1) + (s2 + s3);
		t[e] = l2 ? r : -r;
	}
}

#define TABLE_LOOP(dsub, l2)                                                \
	for (size_t j = 0; j < pq->m; j++)                                  \
		table_sub(q + j * (dsub), pq->cent + j * ksub * (dsub), (dsub), \
			  ksub, (l2), t + j * ksub)

/* The portable table: constant dsub for the short sub-vectors, the
 * distance kernels (whose call then costs little) for long ones. */
static void table_portable(const struct vec_pq *pq, const float *q, int l2,
			   float *t)
{
	const struct vec_kernels *k = vec_kernels();
	size_t ksub = pq->ksub, dsub = pq->dsub;

	switch (dsub * 2 + !!l2) {
	case 2: TABLE_LOOP(1, 0); return;
	case 3: TABLE_LOOP(1, 1); return;
	case 4: TABLE_LOOP(2, 0); return;
	case 5: TABLE_LOOP(2, 1); return;
	case 8: TABLE_LOOP(4, 0); return;
	case 9: TABLE_LOOP(4, 1); return;
	case 16: TABLE_LOOP(8, 0); return;
	case 17: TABLE_LOOP(8, 1); return;
	}
	if (dsub <= 16) {
		if (l2)
			TABLE_LOOP(dsub, 1);
		else
			TABLE_LOOP(dsub, 0);
		return;
	}
	for (size_t j = 0; j < pq->m; j++) {
		const float *qs = q + j * dsub, *c = pq->cent + j * ksub * dsub;
		for (size_t e = 0; e < ksub; e++)
			t[j * ksub + e] = l2 ? k->l2sq(qs, c + e * dsub, dsub)
					     : -k->dot(qs, c + e * dsub, dsub);
	}
}

void vec_pq_transpose(const struct vec_pq *pq, float *out)
{
	size_t ksub = pq->ksub, dsub = pq->dsub;

	for (size_t j = 0; j < pq->m; j++)
		for (size_t e = 0; e < ksub; e++)
			for (size_t d = 0; d < dsub; d++)
				out[(j * dsub + d) * ksub + e] =
					pq->cent[(j * ksub + e) * dsub + d];
}

void vec_pq_table(const struct vec_pq *pq, const float *q, int l2, float *t)
{
#ifdef VEC_HAVE_X86
	int level = vec_kernels()->level;
	if (level == VEC_SIMD_AVX512 && vec_pq_table_avx512(pq, q, l2, t))
		return;
	if (level == VEC_SIMD_AVX2 && vec_pq_table_avx2(pq, q, l2, t))
		return;
#endif
	table_portable(pq, q, l2, t);
}

/* One code at a time, sub-quantisers in order; 8-bit codes go through
 * vec_pq_scan8, which sums each code in that same order. */
void vec_pq_adc(const struct vec_pq *pq, const float *t, const uint8_t *codes,
		size_t n, float *out)
{
	size_t cs = vec_pq_code_size(pq->m, pq->nbits);

	if (pq->nbits == 8) {
		vec_pq_scan8(t, pq->m, codes, n, out);
		return;
	}

	for (size_t i = 0; i < n; i++) {
		const uint8_t *code = codes + i * cs;
		float s = 0;
		for (size_t j = 0; j < pq->m; j++)
			s += t[j * pq->ksub + code_get(code, j, pq->nbits)];
		out[i] = s;
	}
}

/* ---- 8-bit scan ---- */

/*
 * Four codes at once: four independent sums give the adds and the table
 * loads room to overlap, where one code's sum is a chain of dependent
 * adds.  Each code is still summed in sub-quantiser order, so the result
 * equals vec_pq_adc's exactly.  About twice the reference's speed; an
 * AVX-512 version with gathers (16 sub-quantisers of one code per gather)
 * measured at half this speed on an AMD Zen 5, so every level uses this.
 */
void vec_pq_scan8(const float *t, size_t m, const uint8_t *codes, size_t n,
		  float *out)
{
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		const uint8_t *c0 = codes + i * m, *c1 = c0 + m, *c2 = c1 + m,
			      *c3 = c2 + m;
		float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
		for (size_t j = 0; j < m; j++) {
			const float *tj = t + j * 256;
			s0 += tj[c0[j]];
			s1 += tj[c1[j]];
			s2 += tj[c2[j]];
			s3 += tj[c3[j]];
		}
		out[i] = s0;
		out[i + 1] = s1;
		out[i + 2] = s2;
		out[i + 3] = s3;
	}
	for (; i < n; i++) {
		const uint8_t *c = codes + i * m;
		float s = 0;
		for (size_t j = 0; j < m; j++)
			s += t[j * 256 + c[j]];
		out[i] = s;
	}
}

/* ---- 4-bit fast scan ---- */

#define SLICE 32 /* bytes of one sub-quantiser pair in a block */

size_t vec_pq4_packed_size(size_t n, size_t m)
{
	return (n + VEC_PQ_BLOCK - 1) / VEC_PQ_BLOCK * SLICE * ((m + 1) / 2);
}

void vec_pq4_pack(const uint8_t *codes, size_t n, size_t m, uint8_t *blocks)
{
	size_t np = (m + 1) / 2;

	memset(blocks, 0, vec_pq4_packed_size(n, m));
	for (size_t i = 0; i < n; i++) {
		uint8_t *blk = blocks + i / VEC_PQ_BLOCK * SLICE * np;
		size_t k = i % VEC_PQ_BLOCK, byte = k & 15;
		unsigned shift = k < 16 ? 0 : 4;

		for (size_t p = 0; p < np; p++) {
			unsigned c = codes[i * np + p];
			blk[p * SLICE + byte] |= (uint8_t)((c & 15) << shift);
			if (2 * p + 1 < m)
				blk[p * SLICE + 16 + byte] |= (uint8_t)((c >> 4) << shift);
		}
	}
}

void vec_pq4_unpack_one(const uint8_t *blocks, size_t i, size_t m,
			uint8_t *code)
{
	size_t np = (m + 1) / 2;
	const uint8_t *blk = blocks + i / VEC_PQ_BLOCK * SLICE * np;
	size_t k = i % VEC_PQ_BLOCK, byte = k & 15;
	unsigned shift = k < 16 ? 0 : 4;

	for (size_t p = 0; p < np; p++) {
		unsigned lo = (blk[p * SLICE + byte] >> shift) & 15;
		unsigned hi = (blk[p * SLICE + 16 + byte] >> shift) & 15;
		if (2 * p + 1 >= m)
			hi = 0;
		code[p] = (uint8_t)(lo | hi << 4);
	}
}

void vec_pq4_set_one(uint8_t *blocks, size_t i, size_t m,
		     const uint8_t *code)
{
	size_t np = (m + 1) / 2;
	uint8_t *blk = blocks + i / VEC_PQ_BLOCK * SLICE * np;
	size_t k = i % VEC_PQ_BLOCK, byte = k & 15;
	unsigned shift = k < 16 ? 0 : 4, keep = k < 16 ? 0xf0 : 0x0f;

	for (size_t p = 0; p < np; p++) {
		unsigned lo = code[p] & 15, hi = code[p] >> 4;
		if (2 * p + 1 >= m)
			hi = 0;
		blk[p * SLICE + byte] = (uint8_t)((blk[p * SLICE + byte] & keep) |
						  lo << shift);
		blk[p * SLICE + 16 + byte] =
			(uint8_t)((blk[p * SLICE + 16 + byte] & keep) | hi << shift);
	}
}

size_t vec_pq4_lut_size(size_t m)
{
	return SLICE * ((m + 1) / 2);
}

/* Round x in [0, 255] to the nearest integer, ties to even: adding
 * 1.5 * 2^23 leaves no fraction bits, as the SIMD conversions round. */
static inline float round_even(float x)
{
	return (x + 12582912.0f) - 12582912.0f;
}

/* An entry of the quantised table, from (t - lo) (see pq.h). */
static inline unsigned quant1(float diff, float inv)
{
	float x = diff * inv;
	x = x > 0 ? x : 0; /* NaN too */
	x = x < 255 ? x : 255;
	return (unsigned)round_even(x);
}

static void lut_range_scalar(const float *t, size_t m, uint8_t *lut,
			     struct vec_pq4_lut_stat *st)
{
	struct vec_pq4_lut_stat acc = *st;

	for (size_t j = 0; j < m; j++) {
		/* Four columns of four, so that the compiler may use one
		 * vector; a NaN loses every comparison, so it takes no part. */
		float l[4] = { INFINITY, INFINITY, INFINITY, INFINITY };
		float h[4] = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
		float lo, hi, r;

		for (size_t c = 0; c < 16; c += 4)
			for (size_t i = 0; i < 4; i++) {
				float v = t[j * 16 + c + i];
				l[i] = v < l[i] ? v : l[i];
				h[i] = v > h[i] ? v : h[i];
			}
		lo = l[0] < l[1] ? l[0] : l[1];
		lo = l[2] < lo ? l[2] : lo;
		lo = l[3] < lo ? l[3] : lo;
		hi = h[0] > h[1] ? h[0] : h[1];
		hi = h[2] > hi ? h[2] : hi;
		hi = h[3] > hi ? h[3] : hi;
		r = hi - lo;
		memcpy(lut + j * 16, &lo, sizeof lo);
		memcpy(lut + j * 16 + 4, &r, sizeof r);
		vec_pq4_lut_stat(&acc, lo, r);
	}
	*st = acc;
}

/* A row is built in row[] and then copied: stores straight into lut (bytes,
 * which may alias t as far as the compiler knows) would keep the loop
 * from being vectorised. */
static void lut_quant_scalar(const float *t, size_t m, float inv,
			     uint8_t *lut)
{
	for (size_t j = 0; j < m; j++) {
		uint8_t row[16];
		float lo;

		memcpy(&lo, lut + j * 16, sizeof lo);
		for (size_t c = 0; c < 16; c++)
			row[c] = (uint8_t)quant1(t[j * 16 + c] - lo, inv);
		memcpy(lut + j * 16, row, sizeof row);
	}
}

/*
 * Two passes over the table.  The first finds each row's min and range
 * (kept in the row's own bytes of lut until the second pass writes them).
 * delta is then the largest of (a) the widest range over 255, so that
 * every entry fits a byte, and (b) the summed ranges over 65535 - m / 2,
 * so that the sum of m entries, each rounded up by at most half a step,
 * fits 16 bits.  A row's largest entry is the quantised range (every step
 * is monotonic), so the sum of the largest entries is known before the
 * second pass; float rounding could still overstep 65535 by a hair, and
 * the loop below widens delta until it does not.  The second pass writes
 * the bytes, multiplying by 1 / delta.  The first pass is lut_range (or
 * a kernel of vec_pq4_lut_l2), the rest lut_finish.
 */
static void lut_range(int level, const float *t, size_t m, uint8_t *lut,
		      struct vec_pq4_lut_stat *st)
{
#ifdef VEC_HAVE_X86
	if (level == VEC_SIMD_AVX512) {
		vec_pq4_lut_range_avx512(t, m, lut, st);
		return;
	}
	if (level == VEC_SIMD_AVX2) {
		vec_pq4_lut_range_avx2(t, m, lut, st);
		return;
	}
#endif
	(void)level;
	lut_range_scalar(t, m, lut, st);
}

/* After the first pass: delta, then the second pass. */
static void lut_finish(int level, const float *t, size_t m, uint8_t *lut,
		       const struct vec_pq4_lut_stat *st, float *delta,
		       float *bias)
{
	double d, room;
	float fd, inv;

	(void)level; /* no SIMD kernels but on x86 */
	room = 65535.0 - (double)m / 2;
	if (room < 1)
		room = 1;
	d = st->maxr / 255;
	if (st->sumr / room > d)
		d = st->sumr / room;
	/* All entries equal: any step works.  A table that is not finite
	 * gets a step of 1 (its entries are then 0 or 255, never NaN). */
	fd = d > 0 && d < HUGE_VAL ? (float)d : 1.0f;
	if (!(fd < HUGE_VALF))
		fd = FLT_MAX;
	for (;;) {
		unsigned long total = 0;
		inv = 1.0f / fd;
		/* Entries are at most 255: m of them cannot overflow. */
		if (m * 255 <= 65535)
			break;
		for (size_t j = 0; j < m; j++) {
			float r;
			memcpy(&r, lut + j * 16 + 4, sizeof r);
			total += quant1(r, inv);
		}
		if (total <= 65535)
			break;
		/* Far over only when rows of infinities pin entries at 255:
		 * double until the step is infinite and inv 0 (entries 0). */
		fd = nextafterf(fd * (total > 70000 ? 2.0f : 1.0001f), INFINITY);
	}
#ifdef VEC_HAVE_X86
	if (level == VEC_SIMD_AVX512)
		vec_pq4_lut_quant_avx512(t, m, inv, lut);
	else if (level == VEC_SIMD_AVX2)
		vec_pq4_lut_quant_avx2(t, m, inv, lut);
	else
#endif
		lut_quant_scalar(t, m, inv, lut);
	memset(lut + m * 16, 0, vec_pq4_lut_size(m) - m * 16);
	*delta = fd;
	*bias = (float)st->bias;
}

void vec_pq4_lut(const float *t, size_t m, uint8_t *lut, float *delta,
		 float *bias)
{
	struct vec_pq4_lut_stat st = { 0, 0, 0 };
	int level = vec_kernels()->level;

	lut_range(level, t, m, lut, &st);
	lut_finish(level, t, m, lut, &st, delta, bias);
}

/*
 * The SIMD levels make each row of the table in a register and range it
 * there (vec_pq4_lut_l2_range_*), so that the first pass need not read
 * the table back: the rows are those vec_pq_table makes, by the same
 * operations, and the ranges and the sums in st those of lut_range.
 * Otherwise the steps as written in pq.h.
 */
void vec_pq4_lut_l2(const struct vec_pq *pq, const float *q, const float *c,
		    float *qres, float *t, uint8_t *lut, float *delta,
		    float *bias)
{
	struct vec_pq4_lut_stat st = { 0, 0, 0 };
	int level = vec_kernels()->level;

#ifdef VEC_HAVE_X86
	/* The fused kernels take the transposed codebook's shapes. */
	int fused = pq->cent_t && pq->ksub == 16 && pq->dsub <= 16 &&
		    (pq->dsub & (pq->dsub - 1)) == 0;

	if (fused && level == VEC_SIMD_AVX512)
		vec_pq4_lut_l2_range_avx512(pq, q, c, qres, t, lut, &st);
	else if (fused && level == VEC_SIMD_AVX2)
		vec_pq4_lut_l2_range_avx2(pq, q, c, qres, t, lut, &st);
	else
#endif
	{
		for (size_t d = 0; d < pq->dim; d++)
			qres[d] = q[d] - c[d];
		vec_pq_table(pq, qres, 1, t);
		lut_range(level, t, pq->m, lut, &st);
	}
	lut_finish(level, t, pq->m, lut, &st, delta, bias);
}

static void pq4_scan_scalar(const uint8_t *lut, size_t m, const uint8_t *blocks,
			    size_t nblocks, uint16_t *sums)
{
	size_t np = (m + 1) / 2;

	for (size_t b = 0; b < nblocks; b++) {
		const uint8_t *blk = blocks + b * SLICE * np;
		uint16_t s[VEC_PQ_BLOCK] = { 0 };

		for (size_t p = 0; p < np; p++) {
			const uint8_t *l0 = lut + p * SLICE, *l1 = l0 + 16;
			const uint8_t *c0 = blk + p * SLICE, *c1 = c0 + 16;
			for (size_t k = 0; k < 16; k++) {
				s[k] = (uint16_t)(s[k] + l0[c0[k] & 15] + l1[c1[k] & 15]);
				s[k + 16] = (uint16_t)(s[k + 16] + l0[c0[k] >> 4] +
						       l1[c1[k] >> 4]);
			}
		}
		memcpy(sums + b * VEC_PQ_BLOCK, s, sizeof s);
	}
}

static size_t pq4_below_scalar(const uint16_t *sums, size_t n, uint16_t thr,
			       uint32_t *pos)
{
	size_t cnt = 0;
	for (size_t i = 0; i < n; i++)
		if (sums[i] < thr)
			pos[cnt++] = (uint32_t)i;
	return cnt;
}

void vec_pq4_scan(const uint8_t *lut, size_t m, const uint8_t *blocks,
		  size_t nblocks, uint16_t *sums)
{
#ifdef VEC_HAVE_X86
	int level = vec_kernels()->level;
	if (level == VEC_SIMD_AVX512) {
		vec_pq4_scan_avx512(lut, m, blocks, nblocks, sums);
		return;
	}
	if (level == VEC_SIMD_AVX2) {
		vec_pq4_scan_avx2(lut, m, blocks, nblocks, sums);
		return;
	}
#endif
	pq4_scan_scalar(lut, m, blocks, nblocks, sums);
}

size_t vec_pq4_below(const uint16_t *sums, size_t n, uint16_t thr,
		     uint32_t *pos)
{
#ifdef VEC_HAVE_X86
	int level = vec_kernels()->level;
	if (level == VEC_SIMD_AVX512)
		return vec_pq4_below_avx512(sums, n, thr, pos);
	if (level == VEC_SIMD_AVX2)
		return vec_pq4_below_avx2(sums, n, thr, pos);
#endif
	return pq4_below_scalar(sums, n, thr, pos);
}
