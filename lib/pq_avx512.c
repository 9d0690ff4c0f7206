/*
 * pq_avx512.c - the query's table, its 4-bit quantisation and the 4-bit
 * fast scan for AVX-512BW (compiled with -mavx512f -mavx512bw; pq.c calls
 * them only after the CPU check passed).
 * The block layout and the 16-bit summing trick are described at the top
 * of pq.c: here one 512-bit register takes two slices of a block (four
 * sub-quantisers, one per 128-bit lane) against the matching 64 bytes of
 * the table.  An odd number of slices ends with a half register whose
 * upper table half is loaded as zeros, so its lookups add nothing.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <string.h>

#include "pq.h"

#define SLICE 32

/* ---- the query's table ---- */

/*
 * Lanes 2i and 2i + 1 of the 32 lanes a:b added into lane i: one level of
 * a sum over adjacent lanes that keeps the centroids in order.
 */
static inline __m512 pairs(__m512 a, __m512 b)
{
	const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
					    14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));

	return _mm512_add_ps(_mm512_permutex2var_ps(a, ev, b),
			     _mm512_permutex2var_ps(a, od, b));
}

/*
 * One sub-space, 16 centroids at a time in their file layout: the 16 x dsub
 * floats are dsub registers, each term (c - q)^2 or c q against the query
 * sub-vector repeated across the register, then log2(dsub) levels of
 * pairs() leave one register of 16 sums, in centroid order.  The sum of a
 * centroid's terms is a balanced tree: ((t0 + t1) + (t2 + t3)) + ...
 * Inlined with dsub and l2 constants.
 */
static inline __attribute__((always_inline)) void
sub_table(const float *qs, const float *c, size_t dsub, size_t ksub, int l2,
	  float *t)
{
	__m512 qv, r[16];

	if (dsub == 1) {
		qv = _mm512_set1_ps(qs[0]);
	} else if (dsub == 2) {
		double d2;
		memcpy(&d2, qs, sizeof d2);
		qv = _mm512_castpd_ps(_mm512_set1_pd(d2));
	} else if (dsub == 4) {
		qv = _mm512_broadcast_f32x4(_mm_loadu_ps(qs));
	} else if (dsub == 8) {
		qv = _mm512_castpd_ps(_mm512_broadcast_f64x4(
			_mm256_castps_pd(_mm256_loadu_ps(qs))));
	} else {
		qv = _mm512_loadu_ps(qs);
	}
	for (size_t e = 0; e < ksub; e += 16, c += 16 * dsub) {
		for (size_t i = 0; i < dsub; i++) {
			__m512 v = _mm512_loadu_ps(c + 16 * i);
			if (l2) {
				v = _mm512_sub_ps(v, qv);
				r[i] = _mm512_mul_ps(v, v);
			} else {
				r[i] = _mm512_mul_ps(v, qv);
			}
		}
		for (size_t n = dsub; n > 1; n /= 2)
			for (size_t i = 0; i < n / 2; i++)
				r[i] = pairs(r[2 * i], r[2 * i + 1]);
		if (!l2)
			r[0] = _mm512_sub_ps(_mm512_setzero_ps(), r[0]);
		_mm512_storeu_ps(t + e, r[0]);
	}
}

/*
 * The same from the transposed centroids (pq->cent_t): register i holds
 * dimension i of 16 centroids, so the terms are in place and the tree is
 * plain adds, paired as pairs() pairs them (the same sums, to the bit).
 * Unrolled by request: otherwise the registers go through the stack.
 * One register of 16 entries: centroids e..e+15 of the sub-space whose
 * transposed centroids (dsub rows of ksub) start at ct.
 */
static inline __attribute__((always_inline)) __m512
sub_row_t(const float *qs, const float *ct, size_t dsub, size_t ksub, int l2)
{
	__m512 r[16];

#pragma GCC unroll 16
	for (size_t i = 0; i < dsub; i++) {
		__m512 v = _mm512_loadu_ps(ct + i * ksub);
		__m512 qv = _mm512_set1_ps(qs[i]);
		if (l2) {
			v = _mm512_sub_ps(v, qv);
			r[i] = _mm512_mul_ps(v, v);
		} else {
			r[i] = _mm512_mul_ps(v, qv);
		}
	}
#pragma GCC unroll 4
	for (size_t n = dsub; n > 1; n /= 2)
#pragma GCC unroll 8
		for (size_t i = 0; i < n / 2; i++)
			r[i] = _mm512_add_ps(r[2 * i], r[2 * i + 1]);
	return l2 ? r[0] : _mm512_sub_ps(_mm512_setzero_ps(), r[0]);
}

static inline __attribute__((always_inline)) void
sub_table_t(const float *qs, const float *ct, size_t dsub, size_t ksub, int l2,
	    float *t)
{
	for (size_t e = 0; e < ksub; e += 16)
		_mm512_storeu_ps(t + e, sub_row_t(qs, ct + e, dsub, ksub, l2));
}

#define TABLE_LOOP(dsub, l2) \
	VEC_PQ_TABLE_LOOP(sub_table, sub_table_t, dsub, l2)

int vec_pq_table_avx512(const struct vec_pq *pq, const float *q, int l2,
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
 * The range pass, 16 rows at a time.  Each row's min and max are found
 * without a horizontal reduction per row (two chains of four shuffles and
 * four min (max) each, one row after the other): a tree of steps that
 * each take two registers of partial minima (maxima) and leave one with
 * half as many per row, until each lane of lo (hi) is one row's:
 *   1. rows a, b: [a's quarters 0 1 | b's 0 1] against [a 2 3 | b 2 3]
 *      (min and max of the same two registers): 8 per row;
 *   2. two of those: quarters [0 2 | 0 2] against [1 3 | 1 3]: quarter k
 *      is row k of the four, 4 each;
 *   3. two of those: within each quarter, floats [0 1 | 0 1] against
 *      [2 3 | 2 3]: quarter k holds rows k and k + 4, 2 each;
 *   4. two of those: floats [0 2 | 0 2] against [1 3 | 1 3]: float s of
 *      quarter k is row k + 4 s.
 * Min and max are exact, so any order of comparisons gives the same
 * values (but for the sign of a zero, which no result depends on).  NaN
 * would win or lose by its operand position, so step 1 also compares its
 * two registers (every entry of both rows) unordered, and a group with a
 * NaN is done again row by row with NaN lanes set to +inf for the min and
 * -inf for the max, so that they take no part.
 */
#define TREE_STEP1(a, b, l, h, nan)                                         \
	do {                                                                \
		__m512 x_ = _mm512_shuffle_f32x4((a), (b), 0x44);           \
		__m512 y_ = _mm512_shuffle_f32x4((a), (b), 0xee);           \
		(nan) |= _mm512_cmp_ps_mask(x_, y_, _CMP_UNORD_Q);          \
		(l) = _mm512_min_ps(x_, y_);                                \
		(h) = _mm512_max_ps(x_, y_);                                \
	} while (0)
#define TREE_STEP(op, shuf, a, b, i0, i1) \
	op(shuf((a), (b), (i0)), shuf((a), (b), (i1)))
#define TREE_MIN(shuf, a, b, i0, i1) TREE_STEP(_mm512_min_ps, shuf, a, b, i0, i1)
#define TREE_MAX(shuf, a, b, i0, i1) TREE_STEP(_mm512_max_ps, shuf, a, b, i0, i1)

/*
 * st in registers while the rows go by: lane 0 of sum is the summed
 * r > 0 ? r : 0, lane 1 the summed lo, each row's two added as doubles in
 * row order, so the sums are those of vec_pq4_lut_stat to the bit.  The
 * widest r is the largest lane of max, each lane max(r, max), that is
 * r > max ? r : max (max when r is NaN), vec_pq4_lut_stat's comparison:
 * in any order the same value.
 */
struct stat2 {
	__m128d sum;
	__m512 max;
};

static inline struct stat2 stat2_get(const struct vec_pq4_lut_stat *st)
{
	struct stat2 a = { _mm_set_pd(st->bias, st->sumr),
			   _mm512_set1_ps(-__builtin_inff()) };
	return a;
}

static inline void stat2_put(struct stat2 a, struct vec_pq4_lut_stat *st)
{
	double mx = _mm512_reduce_max_ps(a.max);

	st->sumr = _mm_cvtsd_f64(a.sum);
	st->bias = _mm_cvtsd_f64(_mm_unpackhi_pd(a.sum, a.sum));
	st->maxr = mx > st->maxr ? mx : st->maxr;
}

/*
 * Row j + k of a group of 16: from t (dsub 0; rows past n are row
 * n - 1 again), or made from qres and the transposed centroids ct (dsub
 * as in vec_pq_table; n is then 16) and stored to t.
 */
static inline __attribute__((always_inline)) __m512
group_row(float *t, const float *qres, const float *ct, size_t dsub,
	  size_t j, size_t k, size_t n)
{
	__m512 v;

	if (!dsub)
		return _mm512_loadu_ps(t + (j + (k < n ? k : n - 1)) * 16);
	v = sub_row_t(qres + (j + k) * dsub, ct + (j + k) * 16 * dsub, dsub,
		      16, 1);
	_mm512_storeu_ps(t + (j + k) * 16, v);
	return v;
}

/*
 * Rows j..j + n - 1 (n <= 16) through the tree, rows taken or made by
 * group_row, four at a time so that few registers are live; then each
 * row's lo and r into lut and a.  Four rows' (lo, r) are one store: row
 * k's 16 bytes get lo, r, max(r, 0), lo, the last two (not yet wanted
 * in lut, overwritten by the second pass) read back as the pair of
 * doubles added to a's sums.
 */
static inline __attribute__((always_inline)) void
group_range(float *t, const float *qres, const float *ct, size_t dsub,
	    size_t j, size_t n, uint8_t *lut, struct stat2 *a)
{
	/* Register g of the stores: rows 4 g + i, i < 4, whose tree lane
	 * is 4 i + g; lo is the first source, r the second (16 on). */
#define P4(g)                                                              \
	_mm512_setr_epi32(g, 16 + g, 16 + g, g, 4 + g, 20 + g, 20 + g, 4 + g, \
			  8 + g, 24 + g, 24 + g, 8 + g, 12 + g, 28 + g,     \
			  28 + g, 12 + g)
	const __m512i pg[4] = { P4(0), P4(1), P4(2), P4(3) };
#undef P4
	const __m512 zero = _mm512_setzero_ps();
	__m512 l4[4], h4[4], l2[2], h2[2], lo, hi, r;
	__mmask16 nan = 0;

#pragma GCC unroll 4
	for (size_t g = 0; g < 4; g++) {
		__m512 l8[2], h8[2];
#pragma GCC unroll 2
		for (size_t p = 0; p < 2; p++) {
			size_t k = 4 * g + 2 * p;
			__m512 x = group_row(t, qres, ct, dsub, j, k, n);
			__m512 y = group_row(t, qres, ct, dsub, j, k + 1, n);
			TREE_STEP1(x, y, l8[p], h8[p], nan);
		}
		l4[g] = TREE_MIN(_mm512_shuffle_f32x4, l8[0], l8[1], 0x88, 0xdd);
		h4[g] = TREE_MAX(_mm512_shuffle_f32x4, h8[0], h8[1], 0x88, 0xdd);
	}
	l2[0] = TREE_MIN(_mm512_shuffle_ps, l4[0], l4[1], 0x44, 0xee);
	h2[0] = TREE_MAX(_mm512_shuffle_ps, h4[0], h4[1], 0x44, 0xee);
	l2[1] = TREE_MIN(_mm512_shuffle_ps, l4[2], l4[3], 0x44, 0xee);
	h2[1] = TREE_MAX(_mm512_shuffle_ps, h4[2], h4[3], 0x44, 0xee);
	lo = TREE_MIN(_mm512_shuffle_ps, l2[0], l2[1], 0x88, 0xdd);
	hi = TREE_MAX(_mm512_shuffle_ps, h2[0], h2[1], 0x88, 0xdd);

	if (__builtin_expect(nan != 0, 0)) {
		/* Row by row, into the tree's lanes; the rows past n are
		 * row n - 1 again, as they were in the tree. */
		const __m512 pinf = _mm512_set1_ps(__builtin_inff());
		const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
		float l[16], h[16];
		for (size_t k = 0; k < 16; k++) {
			const float *row = t + (j + (k < n ? k : n - 1)) * 16;
			__m512 v = _mm512_loadu_ps(row);
			__mmask16 nk = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
			size_t lane = 4 * (k % 4) + k / 4;

			l[lane] = _mm512_reduce_min_ps(_mm512_mask_mov_ps(v, nk, pinf));
			h[lane] = _mm512_reduce_max_ps(_mm512_mask_mov_ps(v, nk, ninf));
		}
		lo = _mm512_loadu_ps(l);
		hi = _mm512_loadu_ps(h);
	}
	r = _mm512_sub_ps(hi, lo);
	a->max = _mm512_max_ps(r, a->max);
#pragma GCC unroll 4
	for (size_t g = 0; g < 4; g++) {
		__m512 x = _mm512_permutex2var_ps(lo, pg[g], r);
		size_t rows = n - 4 * g < 4 ? n - 4 * g : 4;

		/* Each row's third float: max(r, 0), that is r > 0 ? r : 0
		 * (0 for a NaN r, the second operand). */
		x = _mm512_mask_max_ps(x, 0x4444, x, zero);
		if (n == 16)
			_mm512_storeu_ps(lut + (j + 4 * g) * 16, x);
		else if (4 * g < n) /* only the rows there are */
			_mm512_mask_storeu_ps(lut + (j + 4 * g) * 16,
					      (__mmask16)(0xffffu >> (16 - 4 * rows)), x);
	}
	for (size_t k = 0; k < n; k++) {
		const __m128i *p = (const __m128i *)(lut + (j + k) * 16 + 8);
		a->sum = _mm_add_pd(a->sum,
				    _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(p))));
	}
}

void vec_pq4_lut_range_avx512(const float *t, size_t m, uint8_t *lut,
			      struct vec_pq4_lut_stat *st)
{
	struct stat2 a = stat2_get(st);

	/* group_range reads t through its non-const pointer, never writes
	 * it with dsub 0. */
	for (size_t j = 0; j < m; j += 16)
		group_range((float *)t, NULL, NULL, 0, j,
			    m - j < 16 ? m - j : 16, lut, &a);
	stat2_put(a, st);
}

/*
 * The table of q - c and its range pass in one (see vec_pq4_lut_l2):
 * the rows of each group of 16 go to t and, still in registers, into
 * the tree.  q - c first, in full: the table then loads its components
 * broadcast, as vec_pq_table does from the residual.  The last m % 16
 * rows are made, then ranged from t.
 */
#define L2_GROUPS(dsub)                                                    \
	do {                                                                \
		for (; j + 16 <= m; j += 16)                                \
			group_range(t, qres, ct, (dsub), j, 16, lut, &a);   \
		for (size_t k = j; k < m; k++)                              \
			sub_table_t(qres + k * (dsub), ct + k * 16 * (dsub), \
				    (dsub), 16, 1, t + k * 16);             \
	} while (0)

void vec_pq4_lut_l2_range_avx512(const struct vec_pq *pq, const float *q,
				const float *c, float *qres, float *t,
				uint8_t *lut, struct vec_pq4_lut_stat *st)
{
	const float *ct = pq->cent_t;
	size_t m = pq->m, dim = pq->dim, j = 0, d = 0;
	struct stat2 a;

	for (; d + 16 <= dim; d += 16)
		_mm512_storeu_ps(qres + d, _mm512_sub_ps(_mm512_loadu_ps(q + d),
							 _mm512_loadu_ps(c + d)));
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

/* A row's entries as 16 int32 in [0, 255]: max(x, 0) gives 0 for a NaN x
 * (the second operand), and the conversion rounds to nearest even (the
 * default MXCSR mode). */
static inline __m512i quant_row(const float *t, const uint8_t *lut, __m512 vinv)
{
	float lo;
	__m512 x;

	memcpy(&lo, lut, sizeof lo);
	x = _mm512_sub_ps(_mm512_loadu_ps(t), _mm512_set1_ps(lo));
	x = _mm512_mul_ps(x, vinv);
	x = _mm512_min_ps(_mm512_max_ps(x, _mm512_setzero_ps()),
			  _mm512_set1_ps(255.0f));
	return _mm512_cvtps_epi32(x);
}

/*
 * Four rows to one store: the two saturating packs (which cannot
 * saturate, 0 <= x <= 255) leave in 128-bit lane q the four entries
 * 4q..4q+3 of rows 0, 1, 2, 3, one 32-bit unit each, which a permutation
 * puts in row order.  Then one row at a time.
 */
void vec_pq4_lut_quant_avx512(const float *t, size_t m, float inv,
			      uint8_t *lut)
{
	const __m512 vinv = _mm512_set1_ps(inv);
	const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13,
						2, 6, 10, 14, 3, 7, 11, 15);
	size_t j = 0;

	for (; j + 4 <= m; j += 4) {
		__m512i a = quant_row(t + j * 16, lut + j * 16, vinv);
		__m512i b = quant_row(t + j * 16 + 16, lut + j * 16 + 16, vinv);
		__m512i c = quant_row(t + j * 16 + 32, lut + j * 16 + 32, vinv);
		__m512i d = quant_row(t + j * 16 + 48, lut + j * 16 + 48, vinv);
		__m512i x = _mm512_packus_epi16(_mm512_packs_epi32(a, b),
						_mm512_packs_epi32(c, d));
		_mm512_storeu_si512(lut + j * 16,
				    _mm512_permutexvar_epi32(order, x));
	}
	for (; j < m; j++)
		_mm_storeu_si128((__m128i *)(lut + j * 16),
				 _mm512_cvtusepi32_epi8(quant_row(t + j * 16,
								  lut + j * 16,
								  vinv)));
}

/* ---- 4-bit fast scan ---- */

/* Fold the four lanes of A and B and store 16 sums in vector order. */
static inline void finish(__m512i a, __m512i b, uint16_t *out)
{
	__m256i a2 = _mm256_add_epi16(_mm512_castsi512_si256(a),
				      _mm512_extracti64x4_epi64(a, 1));
	__m256i b2 = _mm256_add_epi16(_mm512_castsi512_si256(b),
				      _mm512_extracti64x4_epi64(b, 1));
	__m128i a1 = _mm_add_epi16(_mm256_castsi256_si128(a2),
				   _mm256_extracti128_si256(a2, 1));
	__m128i b1 = _mm_add_epi16(_mm256_castsi256_si128(b2),
				   _mm256_extracti128_si256(b2, 1));
	__m128i even = _mm_sub_epi16(a1, _mm_slli_epi16(b1, 8));

	_mm_storeu_si128((__m128i *)out, _mm_unpacklo_epi16(even, b1));
	_mm_storeu_si128((__m128i *)(out + 8), _mm_unpackhi_epi16(even, b1));
}

#define STEP(t, c, alo, blo, ahi, bhi)                                      \
	do {                                                                \
		__m512i rl_ = _mm512_shuffle_epi8(t, _mm512_and_si512(c, m4)); \
		__m512i rh_ = _mm512_shuffle_epi8(                          \
			t, _mm512_and_si512(_mm512_srli_epi16(c, 4), m4));  \
		alo = _mm512_add_epi16(alo, rl_);                           \
		blo = _mm512_add_epi16(blo, _mm512_srli_epi16(rl_, 8));     \
		ahi = _mm512_add_epi16(ahi, rh_);                           \
		bhi = _mm512_add_epi16(bhi, _mm512_srli_epi16(rh_, 8));     \
	} while (0)

void vec_pq4_scan_avx512(const uint8_t *lut, size_t m, const uint8_t *blocks,
			 size_t nblocks, uint16_t *sums)
{
	const __m512i m4 = _mm512_set1_epi8(0x0f);
	const __mmask64 half = 0xffffffffu;
	size_t np = (m + 1) / 2, bs = SLICE * np, b = 0;
	size_t even = np & ~(size_t)1;
	__m512i tail = _mm512_setzero_si512();

	if (np & 1)
		tail = _mm512_maskz_loadu_epi8(half, lut + even * SLICE);

	/* Two blocks at a time: each table register serves both. */
	for (; b + 2 <= nblocks; b += 2) {
		const uint8_t *k0 = blocks + b * bs, *k1 = k0 + bs;
		__m512i a0 = _mm512_setzero_si512(), b0 = a0, c0 = a0, d0 = a0;
		__m512i a1 = a0, b1 = a0, c1 = a0, d1 = a0;
		size_t p = 0;

		for (; p < even; p += 2) {
			__m512i t = _mm512_loadu_si512(lut + p * SLICE);
			__m512i x0 = _mm512_loadu_si512(k0 + p * SLICE);
			__m512i x1 = _mm512_loadu_si512(k1 + p * SLICE);
			STEP(t, x0, a0, b0, c0, d0);
			STEP(t, x1, a1, b1, c1, d1);
		}
		if (np & 1) {
			__m512i x0 = _mm512_maskz_loadu_epi8(half, k0 + p * SLICE);
			__m512i x1 = _mm512_maskz_loadu_epi8(half, k1 + p * SLICE);
			STEP(tail, x0, a0, b0, c0, d0);
			STEP(tail, x1, a1, b1, c1, d1);
		}
		finish(a0, b0, sums + b * 32);
		finish(c0, d0, sums + b * 32 + 16);
		finish(a1, b1, sums + b * 32 + 32);
		finish(c1, d1, sums + b * 32 + 48);
	}
	for (; b < nblocks; b++) {
		const uint8_t *k0 = blocks + b * bs;
		__m512i a0 = _mm512_setzero_si512(), b0 = a0, c0 = a0, d0 = a0;
		size_t p = 0;

		for (; p < even; p += 2) {
			__m512i t = _mm512_loadu_si512(lut + p * SLICE);
			__m512i x0 = _mm512_loadu_si512(k0 + p * SLICE);
			STEP(t, x0, a0, b0, c0, d0);
		}
		if (np & 1) {
			__m512i x0 = _mm512_maskz_loadu_epi8(half, k0 + p * SLICE);
			STEP(tail, x0, a0, b0, c0, d0);
		}
		finish(a0, b0, sums + b * 32);
		finish(c0, d0, sums + b * 32 + 16);
	}
}

/*
 * 32 sums per compare.  A half (16 sums) with a hit writes its positions
 * with one compress and one full 16-position store: no branch per hit,
 * whatever the share of hits.  The store may write past the positions
 * found, but never past pos[i + 15] (at most i were found before), which
 * is inside pos[n] while i + 16 <= n; the tail goes bit by bit.
 */
size_t vec_pq4_below_avx512(const uint16_t *sums, size_t n, uint16_t thr,
			    uint32_t *pos)
{
	const __m512i t = _mm512_set1_epi16((short)thr);
	const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8,
					       7, 6, 5, 4, 3, 2, 1, 0);
	size_t cnt = 0, i = 0;

	for (; i + 32 <= n; i += 32) {
		__m512i v = _mm512_loadu_si512(sums + i);
		uint32_t mask = (uint32_t)_mm512_cmplt_epu16_mask(v, t);

		if (!mask)
			continue;
		for (unsigned h = 0; h < 2; h++) {
			__mmask16 mh = (__mmask16)(mask >> (16 * h));
			__m512i idx = _mm512_add_epi32(
				lanes, _mm512_set1_epi32((int)(i + 16 * h)));
			_mm512_storeu_si512(pos + cnt, _mm512_maskz_compress_epi32(mh, idx));
			cnt += (size_t)__builtin_popcount(mh);
		}
	}
	if (i < n) {
		__mmask32 live = (__mmask32)((1u << (n - i)) - 1);
		__m512i v = _mm512_maskz_loadu_epi16(live, sums + i);
		uint32_t mask = (uint32_t)_mm512_mask_cmplt_epu16_mask(live, v, t);
		while (mask) {
			pos[cnt++] = (uint32_t)(i + (unsigned)__builtin_ctz(mask));
			mask &= mask - 1;
		}
	}
	return cnt;
}

#endif
