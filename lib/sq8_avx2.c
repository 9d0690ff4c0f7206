/*
 * sq8_avx2.c - 8-bit quantiser kernels for AVX2 (compiled with -mavx2;
 * reached only through sq8.c's table after the CPU check passed).
 * Unsigned row codes times signed query codes, rows padded to 64 bytes
 * (sq8.h).  vpmaddubsw would saturate its 16-bit pair sums (255 * 127 *
 * 2), so the bytes are widened first and multiplied with vpmaddwd.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "avx2.h"
#include "sq8.h"

#ifndef AHEAD
#define AHEAD 2 /* rows prefetched ahead of the one being summed */
#endif

static inline void prefetch_row(const uint8_t *p, size_t stride)
{
	for (size_t o = 0; o < stride; o += 64)
		_mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

static inline int32_t hsum(__m256i s)
{
	__m128i h = _mm_add_epi32(_mm256_castsi256_si128(s),
				  _mm256_extracti128_si256(s, 1));
	h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
	h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
	return _mm_cvtsi128_si32(h);
}

/* The four sums of a, b, c, d, in that order. */
static inline __m128i hsum4(__m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
	__m256i s = _mm256_hadd_epi32(ab, cd);
	return _mm_add_epi32(_mm256_castsi256_si128(s),
			     _mm256_extracti128_si256(s, 1));
}

/* One row against the query. */
static inline int32_t dot_row(const uint8_t *x, const int8_t *q, size_t stride)
{
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();

	for (size_t i = 0; i < stride; i += 32) {
		__m256i a0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + i)));
		__m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + i)));
		__m256i a1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + i + 16)));
		__m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + i + 16)));
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a0, b0));
		s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a1, b1));
	}
	return hsum(_mm256_add_epi32(s0, s1));
}

/* Rows ids[0..n) through dot, the next AHEAD prefetched while one is
 * summed (dot is a constant at each call: inlined). */
static inline __attribute__((always_inline)) void
gather_with(const uint8_t *codes, size_t stride, const int8_t *cq,
	    const uint32_t *ids, size_t n, int32_t *out,
	    int32_t (*dot)(const uint8_t *, const int8_t *, size_t))
{
	for (size_t j = 0; j < n && j < AHEAD; j++)
		prefetch_row(codes + (size_t)ids[j] * stride, stride);
	for (size_t j = 0; j < n; j++) {
		if (j + AHEAD < n)
			prefetch_row(codes + (size_t)ids[j + AHEAD] * stride, stride);
		out[j] = dot(codes + (size_t)ids[j] * stride, cq, stride);
	}
}

void vec_sq8_gather_avx2(const uint8_t *codes, size_t stride, const int8_t *cq,
			 const uint32_t *ids, size_t n, int32_t *out)
{
	gather_with(codes, stride, cq, ids, n, out, dot_row);
}

/*
 * One 4-bit row (sq8.h's layout) against the query: 32 bytes of a block
 * are 32 low-nibble components and the 32 high-nibble ones 64 further
 * on.  Codes are at most 15, so vpmaddubsw's pair sums (2 * 15 * 127)
 * cannot saturate here.
 */
static inline int32_t dot_row4(const uint8_t *x, const int8_t *q, size_t stride)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi16(1);
	__m256i s = _mm256_setzero_si256();

	for (size_t b = 0; b < stride; b += 64)
		for (size_t h = 0; h < 64; h += 32) {
			__m256i v = _mm256_loadu_si256((const __m256i *)(x + b + h));
			__m256i lo = _mm256_and_si256(v, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
			__m256i p = _mm256_add_epi16(
				_mm256_maddubs_epi16(lo, _mm256_loadu_si256(
					(const __m256i *)(q + 2 * b + h))),
				_mm256_maddubs_epi16(hi, _mm256_loadu_si256(
					(const __m256i *)(q + 2 * b + 64 + h))));
			s = _mm256_add_epi32(s, _mm256_madd_epi16(p, one));
		}
	return hsum(s);
}

void vec_sq4_gather_avx2(const uint8_t *codes, size_t stride, const int8_t *cq,
			 const uint32_t *ids, size_t n, int32_t *out)
{
	gather_with(codes, stride, cq, ids, n, out, dot_row4);
}

/* Four rows at a time: each widened query chunk serves all four. */
void vec_sq8_scan_avx2(const uint8_t *codes, size_t stride, const int8_t *cq,
		       size_t n, int32_t *out)
{
	size_t j = 0;

	for (; j + 4 <= n; j += 4) {
		const uint8_t *x = codes + j * stride;
		__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
		__m256i s2 = _mm256_setzero_si256(), s3 = _mm256_setzero_si256();

		for (size_t i = 0; i < stride; i += 16) {
			__m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(cq + i)));
#define ROW(r, s)                                                                  \
	s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_cvtepu8_epi16(             \
		_mm_loadu_si128((const __m128i *)(x + (r) * stride + i))), b))
			ROW(0, s0);
			ROW(1, s1);
			ROW(2, s2);
			ROW(3, s3);
#undef ROW
		}
		_mm_storeu_si128((__m128i *)(out + j), hsum4(s0, s1, s2, s3));
	}
	for (; j < n; j++)
		out[j] = dot_row(codes + j * stride, cq, stride);
}
/* The query's bytes, 4 components a step in double: see sq8_avx512.c. */
void vec_sq8_query_avx2(const struct vec_sq8 *q, const float *x, int8_t *cq,
			float *t, float *qlo)
{
	size_t dim = q->dim, d = 0, end = dim & ~(size_t)3, end8 = dim & ~(size_t)7;
	__m256d vmax = _mm256_setzero_pd(), vlo = _mm256_setzero_pd();
	__m256d vlo1 = _mm256_setzero_pd();
	__m256d sign = _mm256_set1_pd(-0.0), half = _mm256_set1_pd(0.5);
	__m256d lim = _mm256_set1_pd(128), nlim = _mm256_set1_pd(-128), vinv;
	double amax, lo, inv, m4[4], lane[8];

	/* Lanes 0-3 and 4-7 of the 8 (sq8.h) in two registers. */
	for (; d < end8; d += 8) {
		__m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(x + d));
		__m256d x1 = _mm256_cvtps_pd(_mm_loadu_ps(x + d + 4));
		__m256d w0 = _mm256_mul_pd(x0, _mm256_cvtps_pd(_mm_loadu_ps(q->scale + d)));
		__m256d w1 = _mm256_mul_pd(x1, _mm256_cvtps_pd(_mm_loadu_ps(q->scale + d + 4)));
		/* max_pd returns its second operand when the first is NaN */
		vmax = _mm256_max_pd(_mm256_andnot_pd(sign, w0), vmax);
		vmax = _mm256_max_pd(_mm256_andnot_pd(sign, w1), vmax);
		vlo = _mm256_add_pd(vlo, _mm256_mul_pd(x0, _mm256_cvtps_pd(
						 _mm_loadu_ps(q->lo + d))));
		vlo1 = _mm256_add_pd(vlo1, _mm256_mul_pd(x1, _mm256_cvtps_pd(
						   _mm_loadu_ps(q->lo + d + 4))));
	}
	_mm256_storeu_pd(m4, vmax);
	_mm256_storeu_pd(lane, vlo);
	_mm256_storeu_pd(lane + 4, vlo1);
	amax = 0;
	for (int i = 0; i < 4; i++)
		amax = m4[i] > amax ? m4[i] : amax;
	lo = vec_sq8_sum8(lane);
	vec_sq8_query_sums(q, x, d, &amax, &lo);
	inv = amax > 0 ? 127.0 / amax : 0;
	vinv = _mm256_set1_pd(inv);
	for (d = 0; d < end; d += 4) {
		__m256d w = _mm256_mul_pd(
			_mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + d)),
				      _mm256_cvtps_pd(_mm_loadu_ps(q->scale + d))),
			vinv);
		__m256d ok = _mm256_and_pd(_mm256_cmp_pd(w, nlim, _CMP_GT_OQ),
					   _mm256_cmp_pd(w, lim, _CMP_LT_OQ));
		__m256d r = _mm256_add_pd(w, _mm256_or_pd(half, _mm256_and_pd(sign, w)));
		__m128i v = _mm256_cvttpd_epi32(_mm256_and_pd(r, ok));
		int32_t b4;
		v = _mm_packs_epi32(v, v);
		v = _mm_packs_epi16(v, v);
		b4 = _mm_cvtsi128_si32(v);
		memcpy(cq + d, &b4, 4);
	}
	vec_sq8_query_bytes(q, x, d, inv, cq);
	memset(cq + dim, 0, q->stride - dim);
	*t = (float)(amax / 127.0);
	*qlo = (float)lo;
}
/* ---- float query against a code row (sq8.h): 8 components a step ---- */

static inline __m256 widen8(const uint8_t *c)
{
	return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
		_mm_loadl_epi64((const __m128i *)(const void *)c)));
}

float vec_sq8_l2f_avx2(const float *qp, const float *scale, const uint8_t *c,
		       size_t stride)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;

	for (size_t i = 0; i < stride; i += 16) {
		__m256 t0 = _mm256_fnmadd_ps(_mm256_loadu_ps(scale + i),
					     widen8(c + i), _mm256_loadu_ps(qp + i));
		__m256 t1 = _mm256_fnmadd_ps(_mm256_loadu_ps(scale + i + 8),
					     widen8(c + i + 8),
					     _mm256_loadu_ps(qp + i + 8));
		s0 = _mm256_fmadd_ps(t0, t0, s0);
		s1 = _mm256_fmadd_ps(t1, t1, s1);
	}
	return hsum256(_mm256_add_ps(s0, s1));
}

float vec_sq8_dotf_avx2(const float *qs, const uint8_t *c, size_t stride)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;

	for (size_t i = 0; i < stride; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(qs + i), widen8(c + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(qs + i + 8),
				     widen8(c + i + 8), s1);
	}
	return hsum256(_mm256_add_ps(s0, s1));
}
#endif
