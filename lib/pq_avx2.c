/*
 * pq_avx2.c - the 4-bit fast scan for AVX2 (compiled with -mavx2; pq.c
 * calls it only after the CPU check passed).  The block layout and the
 * 16-bit summing trick are described at the top of pq.c.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "pq.h"

#define SLICE 32

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
