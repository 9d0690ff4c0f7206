/*
 * pq_avx2.c - the query's table, its 4-bit quantisation and the 4-bit fast
 * scan for AVX2 (compiled with -mavx2; pq.c calls them only after the CPU
 * check passed).  The block layout and the
 * 16-bit summing trick are described at the top of pq.c.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <string.h>

#include "pq.h"

#define SLICE 32

/* ---- the query's table ---- */

/*
 * Lanes 2i and 2i + 1 of the 16 lanes a:b added into lane i: hadd works
 * within 128-bit lanes (a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, ...), and
 * swapping the middle 64-bit quarters puts the sums in order.
 */
static inline __m256 pairs(__m256 a, __m256 b)
{
	return _mm256_castpd_ps(_mm256_permute4x64_pd(
		_mm256_castps_pd(_mm256_hadd_ps(a, b)), 0xd8));
}

/*
 * One sub-space, 8 centroids at a time in their file layout: the 8 x dsub
 * floats are dsub registers, each term (c - q)^2 or c q against the query
 * sub-vector repeated across the register (two registers for dsub 16),
 * then log2(dsub) levels of pairs() leave one register of 8 sums, in
 * centroid order: the same balanced tree as the AVX-512 kernel.
 */
static inline __attribute__((always_inline)) void
sub_table(const float *qs, const float *c, size_t dsub, size_t ksub, int l2,
	  float *t)
{
	__m256 qv[2], r[16];

	if (dsub == 1) {
		qv[0] = _mm256_set1_ps(qs[0]);
	} else if (dsub == 2) {
		double d2;
		memcpy(&d2, qs, sizeof d2);
		qv[0] = _mm256_castpd_ps(_mm256_set1_pd(d2));
	} else if (dsub == 4) {
		qv[0] = _mm256_broadcast_ps((const __m128 *)qs);
	} else {
		qv[0] = _mm256_loadu_ps(qs);
	}
	qv[1] = dsub == 16 ? _mm256_loadu_ps(qs + 8) : qv[0];
	for (size_t e = 0; e < ksub; e += 8, c += 8 * dsub) {
		for (size_t i = 0; i < dsub; i++) {
			__m256 v = _mm256_loadu_ps(c + 8 * i);
			if (l2) {
				v = _mm256_sub_ps(v, qv[i & 1]);
				r[i] = _mm256_mul_ps(v, v);
			} else {
				r[i] = _mm256_mul_ps(v, qv[i & 1]);
			}
		}
		for (size_t n = dsub; n > 1; n /= 2)
			for (size_t i = 0; i < n / 2; i++)
				r[i] = pairs(r[2 * i], r[2 * i + 1]);
		if (!l2)
			r[0] = _mm256_sub_ps(_mm256_setzero_ps(), r[0]);
		_mm256_storeu_ps(t + e, r[0]);
	}
}

/* The same from the transposed centroids (pq->cent_t, see pq.h): the
 * terms of 8 centroids per register, summed in pairs() order.  One
 * register: centroids e..e+7 of the sub-space whose transposed centroids
 * (dsub rows of ksub) start at ct. */
static inline __attribute__((always_inline)) __m256
sub_row_t(const float *qs, const float *ct, size_t dsub, size_t ksub, int l2)
{
	__m256 r[16];

#pragma GCC unroll 16
	for (size_t i = 0; i < dsub; i++) {
		__m256 v = _mm256_loadu_ps(ct + i * ksub);
		__m256 qv = _mm256_set1_ps(qs[i]);
		if (l2) {
			v = _mm256_sub_ps(v, qv);
			r[i] = _mm256_mul_ps(v, v);
		} else {
			r[i] = _mm256_mul_ps(v, qv);
		}
	}
#pragma GCC unroll 4
	for (size_t n = dsub; n > 1; n /= 2)
#pragma GCC unroll 8
		for (size_t i = 0; i < n / 2; i++)
			r[i] = _mm256_add_ps(r[2 * i], r[2 * i + 1]);
	return l2 ? r[0] : _mm256_sub_ps(_mm256_setzero_ps(), r[0]);
}

static inline __attribute__((always_inline)) void
sub_table_t(const float *qs, const float *ct, size_t dsub, size_t ksub, int l2,
	    float *t)
{
	for (size_t e = 0; e < ksub; e += 8)
		_mm256_storeu_ps(t + e, sub_row_t(qs, ct + e, dsub, ksub, l2));
}

#define TABLE_LOOP(dsub, l2) \
	VEC_PQ_TABLE_LOOP(sub_table, sub_table_t, dsub, l2)

int vec_pq_table_avx2(const struct vec_pq *pq, const float *q, int l2,
		      float *t)
{
	size_t ksub = pq->ksub;

	if (ksub % 16)
		return 0;
	switch (pq->dsub * 2 + !!l2) {
	case 2: TABLE_LOOP(1, 0); return 1;
	case 3: TABLE_LOOP(1, 1); return 1;
	case 4: TABLE_LOOP(2, 0); return 1;
	case 5: TABLE_LOOP(2, 1); return 1;
	case 8: TABLE_LOOP(4, 0); return 1;
	case 9: TABLE_LOOP(4, 1); return 1;
	case 16: TABLE_LOOP(8, 0); return 1;
	case 17: TABLE_LOOP(8, 1); return 1;
	case 32: TABLE_LOOP(16, 0); return 1;
	case 33: TABLE_LOOP(16, 1); return 1;
	}
	return 0;
}

/* ---- the 4-bit table's quantisation (contracts in pq.h) ---- */

/*
 * The range pass, 8 rows at a time, as the AVX-512 kernel does 16 (see
 * there): row k is a_k (entries 0..7) and b_k (8..15), and a tree of
 * steps halves the partial minima (maxima) per row until float s of
 * 128-bit half q of lo (hi) is row q + 2 s's:
 *   0. a against b: 8 per row, a register per row (this one compare,
 *      unordered, sees every entry for NaN);
 *   1. rows 2i, 2i + 1: halves [low | low] against [high | high]: half k
 *      is row 2i + k, 4 each;
 *   2. two of those: within each half, floats [0 1 | 0 1] against
 *      [2 3 | 2 3]: half k holds rows k and k + 2 of the four, 2 each;
 *   3. two of those: floats [0 2 | 0 2] against [1 3 | 1 3].
 * A group with a NaN entry is done again row by row, NaN lanes set to
 * +inf for the min and -inf for the max.
 */
#define TREE_STEP0(a, b, l, h, nan)                                         \
	do {                                                                \
		__m256 u_ = _mm256_cmp_ps((a), (b), _CMP_UNORD_Q);          \
		(nan) = _mm256_or_ps((nan), u_);                            \
		(l) = _mm256_min_ps((a), (b));                              \
		(h) = _mm256_max_ps((a), (b));                              \
	} while (0)
#define TREE_STEP(op, shuf, a, b, i0, i1) \
	op(shuf((a), (b), (i0)), shuf((a), (b), (i1)))
#define TREE_MIN(shuf, a, b, i0, i1) TREE_STEP(_mm256_min_ps, shuf, a, b, i0, i1)
#define TREE_MAX(shuf, a, b, i0, i1) TREE_STEP(_mm256_max_ps, shuf, a, b, i0, i1)

static inline float hmin(__m256 v)
{
	__m128 x = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	x = _mm_min_ps(x, _mm_movehl_ps(x, x));
	x = _mm_min_ss(x, _mm_shuffle_ps(x, x, 1));
	return _mm_cvtss_f32(x);
}

static inline float hmax(__m256 v)
{
	__m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	x = _mm_max_ps(x, _mm_movehl_ps(x, x));
	x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
	return _mm_cvtss_f32(x);
}

/* st in registers, as struct stat2 of the AVX-512 kernel: lane 0 of sum
 * the summed r > 0 ? r : 0, lane 1 the summed lo, max the widest r. */
struct stat2 {
	__m128d sum;
	__m256 max;
};

static inline struct stat2 stat2_get(const struct vec_pq4_lut_stat *st)
{
	struct stat2 a = { _mm_set_pd(st->bias, st->sumr),
			   _mm256_set1_ps(-__builtin_inff()) };
	return a;
}

static inline void stat2_put(struct stat2 a, struct vec_pq4_lut_stat *st)
{
	double mx = hmax(a.max);

	st->sumr = _mm_cvtsd_f64(a.sum);
	st->bias = _mm_cvtsd_f64(_mm_unpackhi_pd(a.sum, a.sum));
	st->maxr = mx > st->maxr ? mx : st->maxr;
}

/* Row j + k, as group_row of the AVX-512 kernel: from t (dsub 0; rows
 * past n are row n - 1 again) or made and stored to t. */
static inline __attribute__((always_inline)) void
group_row(float *t, const float *qres, const float *ct, size_t dsub,
	  size_t j, size_t k, size_t n, __m256 *a, __m256 *b)
{
	if (!dsub) {
		const float *row = t + (j + (k < n ? k : n - 1)) * 16;
		*a = _mm256_loadu_ps(row);
		*b = _mm256_loadu_ps(row + 8);
		return;
	}
	*a = sub_row_t(qres + (j + k) * dsub, ct + (j + k) * 16 * dsub, dsub,
		       16, 1);
	*b = sub_row_t(qres + (j + k) * dsub, ct + (j + k) * 16 * dsub + 8,
		       dsub, 16, 1);
	_mm256_storeu_ps(t + (j + k) * 16, *a);
	_mm256_storeu_ps(t + (j + k) * 16 + 8, *b);
}

/*
 * Rows j..j + n - 1 (n <= 8) through the tree, two and two; then, as the
 * AVX-512 kernel, row k's 16 bytes of lut get lo, r, max(r, 0), lo (two
 * rows a store), the last two read back as the doubles added to a.
 */
static inline __attribute__((always_inline)) void
group_range(float *t, const float *qres, const float *ct, size_t dsub,
	    size_t j, size_t n, uint8_t *lut, struct stat2 *a)
{
	__m256 l2[2], h2[2], lo, hi, r, sr, u[4];
	__m256 nan = _mm256_setzero_ps();

#pragma GCC unroll 2
	for (size_t g = 0; g < 2; g++) {
		__m256 l4[2], h4[2];
#pragma GCC unroll 2
		for (size_t p = 0; p < 2; p++) {
			size_t k = 4 * g + 2 * p;
			__m256 x, y, lx, hx, ly, hy;
			group_row(t, qres, ct, dsub, j, k, n, &x, &y);
			TREE_STEP0(x, y, lx, hx, nan);
			group_row(t, qres, ct, dsub, j, k + 1, n, &x, &y);
			TREE_STEP0(x, y, ly, hy, nan);
			l4[p] = TREE_MIN(_mm256_permute2f128_ps, lx, ly, 0x20, 0x31);
			h4[p] = TREE_MAX(_mm256_permute2f128_ps, hx, hy, 0x20, 0x31);
		}
		l2[g] = TREE_MIN(_mm256_shuffle_ps, l4[0], l4[1], 0x44, 0xee);
		h2[g] = TREE_MAX(_mm256_shuffle_ps, h4[0], h4[1], 0x44, 0xee);
	}
	lo = TREE_MIN(_mm256_shuffle_ps, l2[0], l2[1], 0x88, 0xdd);
	hi = TREE_MAX(_mm256_shuffle_ps, h2[0], h2[1], 0x88, 0xdd);

	if (__builtin_expect(_mm256_movemask_ps(nan) != 0, 0)) {
		/* Row by row, into the tree's lanes (row k in lane
		 * 4 (k % 2) + k / 2); rows past n are row n - 1 again. */
		const __m256 pinf = _mm256_set1_ps(__builtin_inff());
		const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
		float l[8], h[8];
		for (size_t k = 0; k < 8; k++) {
			const float *row = t + (j + (k < n ? k : n - 1)) * 16;
			__m256 x = _mm256_loadu_ps(row);
			__m256 y = _mm256_loadu_ps(row + 8);
			__m256 nx = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
			__m256 ny = _mm256_cmp_ps(y, y, _CMP_UNORD_Q);
			size_t lane = 4 * (k % 2) + k / 2;

			l[lane] = hmin(_mm256_min_ps(_mm256_blendv_ps(x, pinf, nx),
						     _mm256_blendv_ps(y, pinf, ny)));
			h[lane] = hmax(_mm256_max_ps(_mm256_blendv_ps(x, ninf, nx),
						     _mm256_blendv_ps(y, ninf, ny)));
		}
		lo = _mm256_loadu_ps(l);
		hi = _mm256_loadu_ps(h);
	}
	r = _mm256_sub_ps(hi, lo);
	sr = _mm256_max_ps(r, _mm256_setzero_ps()); /* r > 0 ? r : 0 */
	a->max = _mm256_max_ps(r, a->max);
	/* Lanes hold rows 0 2 4 6 | 1 3 5 7: (lo, r) and (max(r, 0), lo)
	 * pairs of rows 0 2 | 1 3 and 4 6 | 5 7, as 64-bit units paired
	 * into rows 0 1, 2 3, 4 5, 6 7. */
	u[0] = _mm256_unpacklo_ps(lo, r);
	u[1] = _mm256_unpacklo_ps(sr, lo);
	u[2] = _mm256_unpackhi_ps(lo, r);
	u[3] = _mm256_unpackhi_ps(sr, lo);
#pragma GCC unroll 4
	for (size_t p = 0; p < 4; p++) {
		__m256d x0 = _mm256_castps_pd(u[p / 2 * 2]);
		__m256d x1 = _mm256_castps_pd(u[p / 2 * 2 + 1]);
		__m256 x = _mm256_castpd_ps(p & 1 ? _mm256_unpackhi_pd(x0, x1)
						  : _mm256_unpacklo_pd(x0, x1));
		uint8_t *out = lut + (j + 2 * p) * 16;

		if (2 * p + 1 < n)
			_mm256_storeu_ps((float *)(void *)out, x);
		else if (2 * p < n) /* only the row there is */
			_mm_storeu_ps((float *)(void *)out, _mm256_castps256_ps128(x));
	}
	for (size_t k = 0; k < n; k++) {
		const __m128i *p = (const __m128i *)(lut + (j + k) * 16 + 8);
		a->sum = _mm_add_pd(a->sum,
				    _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(p))));
	}
}

void vec_pq4_lut_range_avx2(const float *t, size_t m, uint8_t *lut,
			    struct vec_pq4_lut_stat *st)
{
	struct stat2 a = stat2_get(st);

	/* group_range reads t through its non-const pointer, never writes
	 * it with dsub 0. */
	for (size_t j = 0; j < m; j += 8)
		group_range((float *)t, NULL, NULL, 0, j, m - j < 8 ? m - j : 8,
			    lut, &a);
	stat2_put(a, st);
}

/* The table of q - c and its range pass in one, as the AVX-512 kernel:
 * groups of 8 rows made and ranged in registers, the last m % 8 made,
 * then ranged from t. */
#define L2_GROUPS(dsub)                                                    \
	do {                                                                \
		for (; j + 8 <= m; j += 8)                                  \
			group_range(t, qres, ct, (dsub), j, 8, lut, &a);    \
		for (size_t k = j; k < m; k++)                              \
			sub_table_t(qres + k * (dsub), ct + k * 16 * (dsub), \
				    (dsub), 16, 1, t + k * 16);             \
	} while (0)

void vec_pq4_lut_l2_range_avx2(const struct vec_pq *pq, const float *q,
			      const float *c, float *qres, float *t,
			      uint8_t *lut, struct vec_pq4_lut_stat *st)
{
	const float *ct = pq->cent_t;
	size_t m = pq->m, dim = pq->dim, j = 0, d = 0;
	struct stat2 a;

	for (; d + 8 <= dim; d += 8)
		_mm256_storeu_ps(qres + d, _mm256_sub_ps(_mm256_loadu_ps(q + d),
							 _mm256_loadu_ps(c + d)));
	for (; d < dim; d++)
		qres[d] = q[d] - c[d];
	a = stat2_get(st);
	switch (pq->dsub) {
	case 1: L2_GROUPS(1); break;
	case 2: L2_GROUPS(2); break;
	case 4: L2_GROUPS(4); break;
	case 8: L2_GROUPS(8); break;
	case 16: L2_GROUPS(16); break;
	}
	if (j < m)
		group_range(t, NULL, NULL, 0, j, m - j, lut, &a);
	stat2_put(a, st);
}

/* As vec_pq4_lut_quant_avx512: max(x, 0) maps NaN to 0, the conversion
 * rounds to nearest even, and the packs cannot saturate. */
void vec_pq4_lut_quant_avx2(const float *t, size_t m, float inv,
			    uint8_t *lut)
{
	const __m256 vinv = _mm256_set1_ps(inv), zero = _mm256_setzero_ps();
	const __m256 top = _mm256_set1_ps(255.0f);

	for (size_t j = 0; j < m; j++) {
		float lo;
		__m256 vlo, a, b;
		__m256i ia, ib;

		memcpy(&lo, lut + j * 16, sizeof lo);
		vlo = _mm256_set1_ps(lo);
		a = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(t + j * 16), vlo), vinv);
		b = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(t + j * 16 + 8), vlo), vinv);
		a = _mm256_min_ps(_mm256_max_ps(a, zero), top);
		b = _mm256_min_ps(_mm256_max_ps(b, zero), top);
		ia = _mm256_cvtps_epi32(a);
		ib = _mm256_cvtps_epi32(b);
		_mm_storeu_si128(
			(__m128i *)(lut + j * 16),
			_mm_packus_epi16(
				_mm_packs_epi32(_mm256_castsi256_si128(ia),
						_mm256_extracti128_si256(ia, 1)),
				_mm_packs_epi32(_mm256_castsi256_si128(ib),
						_mm256_extracti128_si256(ib, 1))));
	}
}

/* ---- 4-bit fast scan ---- */

/*
 * A = sum even + 256 sum odd and B = sum odd per word, in two lanes to be
 * added: store the 16 sums of vectors 0..15 (or 16..31) in order.
 */
static inline void finish(__m256i a, __m256i b, uint16_t *out)
{
	__m128i a1 = _mm_add_epi16(_mm256_castsi256_si128(a),
				   _mm256_extracti128_si256(a, 1));
	__m128i b1 = _mm_add_epi16(_mm256_castsi256_si128(b),
				   _mm256_extracti128_si256(b, 1));
	__m128i even = _mm_sub_epi16(a1, _mm_slli_epi16(b1, 8));

	_mm_storeu_si128((__m128i *)out, _mm_unpacklo_epi16(even, b1));
	_mm_storeu_si128((__m128i *)(out + 8), _mm_unpackhi_epi16(even, b1));
}

/* Look up one slice of codes c in table slice t and add to the sums. */
#define STEP(t, c, alo, blo, ahi, bhi)                                      \
	do {                                                                \
		__m256i rl_ = _mm256_shuffle_epi8(t, _mm256_and_si256(c, m4)); \
		__m256i rh_ = _mm256_shuffle_epi8(                          \
			t, _mm256_and_si256(_mm256_srli_epi16(c, 4), m4));  \
		alo = _mm256_add_epi16(alo, rl_);                           \
		blo = _mm256_add_epi16(blo, _mm256_srli_epi16(rl_, 8));     \
		ahi = _mm256_add_epi16(ahi, rh_);                           \
		bhi = _mm256_add_epi16(bhi, _mm256_srli_epi16(rh_, 8));     \
	} while (0)

void vec_pq4_scan_avx2(const uint8_t *lut, size_t m, const uint8_t *blocks,
		       size_t nblocks, uint16_t *sums)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	size_t np = (m + 1) / 2, bs = SLICE * np, b = 0;

	/* Two blocks at a time: each table slice is loaded once for both. */
	for (; b + 2 <= nblocks; b += 2) {
		const uint8_t *k0 = blocks + b * bs, *k1 = k0 + bs;
		__m256i a0 = _mm256_setzero_si256(), b0 = a0, c0 = a0, d0 = a0;
		__m256i a1 = a0, b1 = a0, c1 = a0, d1 = a0;

		for (size_t p = 0; p < np; p++) {
			__m256i t = _mm256_loadu_si256((const __m256i *)(lut + p * SLICE));
			__m256i x0 = _mm256_loadu_si256((const __m256i *)(k0 + p * SLICE));
			__m256i x1 = _mm256_loadu_si256((const __m256i *)(k1 + p * SLICE));
			STEP(t, x0, a0, b0, c0, d0);
			STEP(t, x1, a1, b1, c1, d1);
		}
		finish(a0, b0, sums + b * 32);
		finish(c0, d0, sums + b * 32 + 16);
		finish(a1, b1, sums + b * 32 + 32);
		finish(c1, d1, sums + b * 32 + 48);
	}
	for (; b < nblocks; b++) {
		const uint8_t *k0 = blocks + b * bs;
		__m256i a0 = _mm256_setzero_si256(), b0 = a0, c0 = a0, d0 = a0;

		for (size_t p = 0; p < np; p++) {
			__m256i t = _mm256_loadu_si256((const __m256i *)(lut + p * SLICE));
			__m256i x0 = _mm256_loadu_si256((const __m256i *)(k0 + p * SLICE));
			STEP(t, x0, a0, b0, c0, d0);
		}
		finish(a0, b0, sums + b * 32);
		finish(c0, d0, sums + b * 32 + 16);
	}
}

/*
 * No unsigned 16-bit compare in AVX2: flipping the top bit maps unsigned
 * order onto signed order.  movemask gives two bits per word; keep one.
 * A group of 16 with a few hits takes them bit by bit; with many, every
 * position is written and the count advanced by its bit (no branch per
 * hit; writes stay below pos[i + 16], inside pos[n]).
 */
size_t vec_pq4_below_avx2(const uint16_t *sums, size_t n, uint16_t thr,
			  uint32_t *pos)
{
	const __m256i flip = _mm256_set1_epi16((short)0x8000);
	const __m256i t = _mm256_set1_epi16((short)(thr ^ 0x8000));
	size_t cnt = 0, i = 0;

	for (; i + 16 <= n; i += 16) {
		__m256i v = _mm256_xor_si256(
			_mm256_loadu_si256((const __m256i *)(sums + i)), flip);
		unsigned mask = (unsigned)_mm256_movemask_epi8(_mm256_cmpgt_epi16(t, v)) &
				0x55555555u;

		if (!mask)
			continue;
		if (__builtin_popcount(mask) <= 4) {
			while (mask) {
				pos[cnt++] = (uint32_t)(i + (unsigned)__builtin_ctz(mask) / 2);
				mask &= mask - 1;
			}
		} else {
			for (unsigned k = 0; k < 16; k++) {
				pos[cnt] = (uint32_t)(i + k);
				cnt += (mask >> (2 * k)) & 1;
			}
		}
	}
	for (; i < n; i++)
		if (sums[i] < thr)
			pos[cnt++] = (uint32_t)i;
	return cnt;
}
#endif
