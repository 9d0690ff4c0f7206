/*
 * pq_avx512.c - the 4-bit fast scan for AVX-512BW (compiled with
 * -mavx512f -mavx512bw; pq.c calls it only after the CPU check passed).
 * The block layout and the 16-bit summing trick are described at the top
 * of pq.c: here one 512-bit register takes two slices of a block (four
 * sub-quantisers, one per 128-bit lane) against the matching 64 bytes of
 * the table.  An odd number of slices ends with a half register whose
 * upper table half is loaded as zeros, so its lookups add nothing.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "pq.h"

#define SLICE 32

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
