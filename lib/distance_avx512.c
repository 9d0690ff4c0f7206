/*
 * distance_avx512.c - AVX-512 distance kernels (compiled with -mavx512f
 * and friends; only called after distance.c saw them on the CPU).  The
 * tail is a masked load, so there is no scalar loop at all.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "kernels.h"

/* Lanes [0, n) of a mask, n < 16. */
static inline __mmask16 tail_mask(size_t n)
{
	return (__mmask16)((1u << n) - 1);
}

/*
 * Squared Euclidean distance: four 16-lane accumulators cover the FMA
 * latency; a masked load (zeros past the end) takes the last d % 16.
 */
static float l2sq_avx512(const float *a, const float *b, size_t d)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	__m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
	size_t i = 0;

	for (; i + 64 <= d; i += 64) {
		__m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i),
					  _mm512_loadu_ps(b + i));
		__m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16),
					  _mm512_loadu_ps(b + i + 16));
		__m512 t2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32),
					  _mm512_loadu_ps(b + i + 32));
		__m512 t3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48),
					  _mm512_loadu_ps(b + i + 48));
		s0 = _mm512_fmadd_ps(t0, t0, s0);
		s1 = _mm512_fmadd_ps(t1, t1, s1);
		s2 = _mm512_fmadd_ps(t2, t2, s2);
		s3 = _mm512_fmadd_ps(t3, t3, s3);
	}
	for (; i + 16 <= d; i += 16) {
		__m512 t = _mm512_sub_ps(_mm512_loadu_ps(a + i),
					 _mm512_loadu_ps(b + i));
		s1 = _mm512_fmadd_ps(t, t, s1);
	}
	if (i < d) {
		__mmask16 m = tail_mask(d - i);
		__m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
					 _mm512_maskz_loadu_ps(m, b + i));
		s2 = _mm512_fmadd_ps(t, t, s2);
	}
	s0 = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
	return _mm512_reduce_add_ps(s0);
}

/* Inner product, laid out as l2sq_avx512. */
static float dot_avx512(const float *a, const float *b, size_t d)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	__m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
	size_t i = 0;

	for (; i + 64 <= d; i += 64) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i),
				     _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16),
				     _mm512_loadu_ps(b + i + 16), s1);
		s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32),
				     _mm512_loadu_ps(b + i + 32), s2);
		s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48),
				     _mm512_loadu_ps(b + i + 48), s3);
	}
	for (; i + 16 <= d; i += 16)
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i),
				     _mm512_loadu_ps(b + i), s1);
	if (i < d) {
		__mmask16 m = tail_mask(d - i);
		s2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i),
				     _mm512_maskz_loadu_ps(m, b + i), s2);
	}
	s0 = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
	return _mm512_reduce_add_ps(s0);
}

const struct vec_kernels vec_kernels_avx512 = {
	VEC_SIMD_AVX512, "avx512", l2sq_avx512, dot_avx512,
};
#endif
