/*
 * avx2.h - small AVX2 helpers shared by the files compiled with -mavx2
 * (distance_avx2.c, flat_avx2.c, sq8_avx2.c); include it from nowhere
 * else, since it uses AVX intrinsics inline.
 */
#ifndef VEC_AVX2_H
#define VEC_AVX2_H
#include <immintrin.h>

/* Sum the 8 lanes of a ymm register. */
static inline float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
			      _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}
#endif
