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
 */
static inline __attribute__((always_inline)) void
sub_table_t(const float *qs, const float *ct, size_t dsub, size_t ksub, int l2,
	    float *t)
{
	__m512 r[16];

	for (size_t e = 0; e < ksub; e += 16) {
#pragma GCC unroll 16
		for (size_t i = 0; i < dsub; i++) {
			__m512 v = _mm512_loadu_ps(ct + i * ksub + e);
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
		if (!l2)
			r[0] = _mm512_sub_ps(_mm512_setzero_ps(), r[0]);
		_mm512_storeu_ps(t + e, r[0]);
	}
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

/* One row of 16 per register; NaN lanes set to +inf for the min and -inf
 * for the max, so that they take no part. */
void vec_pq4_lut_range_avx512(const float *t, size_t m, uint8_t *lut,
			      struct vec_pq4_lut_stat *st)
{
	struct vec_pq4_lut_stat acc = *st;
	const __m512 pinf = _mm512_set1_ps(__builtin_inff());
	const __m512 ninf = _mm512_set1_ps(-__builtin_inff());

	for (size_t j = 0; j < m; j++) {
		__m512 v = _mm512_loadu_ps(t + j * 16);
		__mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
		float lo = _mm512_reduce_min_ps(_mm512_mask_mov_ps(v, nan, pinf));
		float hi = _mm512_reduce_max_ps(_mm512_mask_mov_ps(v, nan, ninf));
		float r = hi - lo;

		memcpy(lut + j * 16, &lo, sizeof lo);
		memcpy(lut + j * 16 + 4, &r, sizeof r);
		vec_pq4_lut_stat(&acc, lo, r);
	}
	*st = acc;
}

/* max(x, 0) gives 0 for a NaN x (the second operand); the conversion
 * rounds to nearest even (the default MXCSR mode) and the saturating
 * narrowing cannot saturate (0 <= x <= 255). */
void vec_pq4_lut_quant_avx512(const float *t, size_t m, float inv,
			      uint8_t *lut)
{
	const __m512 vinv = _mm512_set1_ps(inv), zero = _mm512_setzero_ps();
	const __m512 top = _mm512_set1_ps(255.0f);

	for (size_t j = 0; j < m; j++) {
		float lo;
		__m512 x;

		memcpy(&lo, lut + j * 16, sizeof lo);
		x = _mm512_sub_ps(_mm512_loadu_ps(t + j * 16), _mm512_set1_ps(lo));
		x = _mm512_mul_ps(x, vinv);
		x = _mm512_min_ps(_mm512_max_ps(x, zero), top);
		_mm_storeu_si128((__m128i *)(lut + j * 16),
				 _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(x)));
	}
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
