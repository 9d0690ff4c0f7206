/*
 * hnsw_avx512.c - quantised traversal kernels for AVX-512 (compiled with
 * -mavx512f -mavx512bw; the VNNI one adds its own target).  hnsw.c calls
 * them only after the CPU check of their level passed.
 *
 * Each row is a node's 8-bit codes (unsigned) against the query's signed
 * 8-bit codes; rows are padded to a multiple of 64 bytes, so there is no
 * tail.  The next row is prefetched while the current one is summed: the
 * rows are scattered over the code array, and a miss per row would
 * otherwise dominate.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "hnsw.h"

#ifndef AHEAD
#define AHEAD 2 /* rows prefetched ahead of the one being summed */
#endif

/* Prefetch one row of codes into L1. */
static inline void prefetch_row(const uint8_t *p, size_t stride)
{
	for (size_t o = 0; o < stride; o += 64)
		_mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

/* VNNI: vpdpbusd multiplies 64 unsigned by 64 signed bytes into 16 sums. */
__attribute__((target("avx512vnni")))
void vec_hnsw_dots_vnni(const uint8_t *codes, size_t stride, const int8_t *q,
			const uint32_t *ids, size_t n, int32_t *out)
{
	for (size_t j = 0; j < n && j < AHEAD; j++)
		prefetch_row(codes + (size_t)ids[j] * stride, stride);
	for (size_t j = 0; j < n; j++) {
		const uint8_t *x = codes + (size_t)ids[j] * stride;
		__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
		size_t i = 0;

		if (j + AHEAD < n)
			prefetch_row(codes + (size_t)ids[j + AHEAD] * stride, stride);
		for (; i + 128 <= stride; i += 128) {
			s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(x + i),
						 _mm512_loadu_si512(q + i));
			s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(x + i + 64),
						 _mm512_loadu_si512(q + i + 64));
		}
		if (i < stride)
			s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(x + i),
						 _mm512_loadu_si512(q + i));
		out[j] = _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
	}
}

/* Without VNNI: widen to 16 bits and multiply-add pairs into 32 bits. */
void vec_hnsw_dots_avx512(const uint8_t *codes, size_t stride, const int8_t *q,
			  const uint32_t *ids, size_t n, int32_t *out)
{
	for (size_t j = 0; j < n && j < AHEAD; j++)
		prefetch_row(codes + (size_t)ids[j] * stride, stride);
	for (size_t j = 0; j < n; j++) {
		const uint8_t *x = codes + (size_t)ids[j] * stride;
		__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();

		if (j + AHEAD < n)
			prefetch_row(codes + (size_t)ids[j + AHEAD] * stride, stride);
		for (size_t i = 0; i < stride; i += 64) {
			__m512i a0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(x + i)));
			__m512i b0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(q + i)));
			__m512i a1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(x + i + 32)));
			__m512i b1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(q + i + 32)));
			s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(a0, b0));
			s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(a1, b1));
		}
		out[j] = _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
	}
}
#endif
