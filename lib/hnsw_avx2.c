/*
 * hnsw_avx2.c - quantised traversal kernel for AVX2 (compiled with -mavx2;
 * hnsw.c calls it only after the CPU check passed).  As in
 * hnsw_avx512.c: unsigned node codes times signed query codes, rows padded
 * to 64 bytes, the next row prefetched while the current one is summed.
 * vpmaddubsw would saturate its 16-bit pair sums (255 * 127 * 2), so the
 * bytes are widened first and multiplied with vpmaddwd.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "hnsw.h"

#ifndef AHEAD
#define AHEAD 2 /* rows prefetched ahead of the one being summed */
#endif

static inline void prefetch_row(const uint8_t *p, size_t stride)
{
	for (size_t o = 0; o < stride; o += 64)
		_mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

void vec_hnsw_dots_avx2(const uint8_t *codes, size_t stride, const int8_t *q,
			const uint32_t *ids, size_t n, int32_t *out)
{
	for (size_t j = 0; j < n && j < AHEAD; j++)
		prefetch_row(codes + (size_t)ids[j] * stride, stride);
	for (size_t j = 0; j < n; j++) {
		const uint8_t *x = codes + (size_t)ids[j] * stride;
		__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
		__m128i h;

		if (j + AHEAD < n)
			prefetch_row(codes + (size_t)ids[j + AHEAD] * stride, stride);
		for (size_t i = 0; i < stride; i += 32) {
			__m256i a0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + i)));
			__m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + i)));
			__m256i a1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + i + 16)));
			__m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + i + 16)));
			s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a0, b0));
			s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a1, b1));
		}
		s0 = _mm256_add_epi32(s0, s1);
		h = _mm_add_epi32(_mm256_castsi256_si128(s0),
				  _mm256_extracti128_si256(s0, 1));
		h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
		h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
		out[j] = _mm_cvtsi128_si32(h);
	}
}
#endif
