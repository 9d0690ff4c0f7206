/*
 * sq8_avx512.c - 8-bit quantiser kernels for AVX-512 (compiled with
 * -mavx512f -mavx512bw; the VNNI ones add their own target).  sq8.c
 * reaches them only after the CPU check of their level passed.
 *
 * Each row is a vector's 8-bit codes (unsigned) against the query's signed
 * 8-bit codes; rows are padded to a multiple of 64 bytes, so there is no
 * tail.  The gathered kernels prefetch the next rows while one is summed:
 * those rows are scattered over the code array, and a miss per row would
 * otherwise dominate.  The scanning kernels read consecutive rows, which
 * the hardware prefetcher follows; they sum four rows at a time instead,
 * so that each query load serves four rows and one reduction ends four.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "sq8.h"

#ifndef AHEAD
#define AHEAD 2 /* rows prefetched ahead of the one being summed */
#endif

/* Prefetch one row of codes into L1 (a packed row's last line too). */
static inline void prefetch_row(const uint8_t *p, size_t stride)
{
	for (size_t o = 0; o < stride; o += 64)
		_mm_prefetch((const char *)p + o, _MM_HINT_T0);
	if (stride % 64)
		_mm_prefetch((const char *)p + stride - 1, _MM_HINT_T0);
}

/* The bytes of a row's 64-byte block from byte i that are the row's:
 * all, but in a packed row's last block only those before stride. */
static inline __mmask64 row_mask(size_t i, size_t stride)
{
	return i + 64 <= stride ? ~0ull : (1ull << (stride - i)) - 1;
}

/* 64 bytes of a row from byte i, those at or past stride zero (packed
 * rows: the next row's bytes are not read). */
static inline __m512i row_block(const uint8_t *x, size_t i, size_t stride)
{
	return _mm512_maskz_loadu_epi8(row_mask(i, stride), x + i);
}

/* The four sums of a, b, c, d, in that order. */
static inline __m128i hsum4(__m512i a, __m512i b, __m512i c, __m512i d)
{
#define HALF(v) _mm256_add_epi32(_mm512_castsi512_si256(v), \
				 _mm512_extracti64x4_epi64(v, 1))
	__m256i ab = _mm256_hadd_epi32(HALF(a), HALF(b));
	__m256i cd = _mm256_hadd_epi32(HALF(c), HALF(d));
	__m256i s = _mm256_hadd_epi32(ab, cd);
#undef HALF
	return _mm_add_epi32(_mm256_castsi256_si128(s),
			     _mm256_extracti128_si256(s, 1));
}

/* The low and high nibbles of 64 bytes of a 4-bit row (sq8.h). */
#define SQ4_LO(v) _mm512_and_si512(v, _mm512_set1_epi8(0x0f))
#define SQ4_HI(v) _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0f))

/* ---- VNNI: vpdpbusd multiplies 64 unsigned by 64 signed bytes into 16 sums ---- */

__attribute__((target("avx512vnni")))
static inline int32_t dot_row_vnni(const uint8_t *x, const int8_t *q,
				   size_t stride)
{
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
	size_t i = 0;

	for (; i + 128 <= stride; i += 128) {
		s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(x + i),
					 _mm512_loadu_si512(q + i));
		s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(x + i + 64),
					 _mm512_loadu_si512(q + i + 64));
	}
	for (; i < stride; i += 64)
		s0 = _mm512_dpbusd_epi32(s0, row_block(x, i, stride),
					 _mm512_loadu_si512(q + i));
	return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

/* One 64-byte block of a 4-bit row: 128 components. */
__attribute__((target("avx512vnni")))
static inline __m512i dot_block4_vnni(__m512i s, __m512i v, __m512i a,
				      __m512i b)
{
	s = _mm512_dpbusd_epi32(s, SQ4_LO(v), a);
	return _mm512_dpbusd_epi32(s, SQ4_HI(v), b);
}

/*
 * Rows ids[0..n), four at a time (one reduction ends four sums), the
 * next four prefetched while they are summed; 8-bit rows (four 0) or
 * 4-bit ones (four 1, sq8.h's layout: the block's low nibbles against
 * the query's first 64 bytes, the high ones against the next 64).
 */
__attribute__((target("avx512vnni")))
static inline __attribute__((always_inline)) __m512i
block_vnni(__m512i s, const uint8_t *x, const int8_t *cq, size_t i,
	   __mmask64 m, int four)
{
	__m512i v = _mm512_maskz_loadu_epi8(m, x + i);

	if (!four)
		return _mm512_dpbusd_epi32(s, v, _mm512_loadu_si512(cq + i));
	return dot_block4_vnni(s, v, _mm512_loadu_si512(cq + 2 * i),
			       _mm512_loadu_si512(cq + 2 * i + 64));
}

__attribute__((target("avx512vnni")))
static inline __attribute__((always_inline)) void
gather_vnni(const uint8_t *codes, size_t stride, const int8_t *cq,
	    const uint32_t *ids, size_t n, int32_t *out, int four)
{
	size_t j = 0;

	for (size_t t = 0; t < n && t < 4; t++)
		prefetch_row(codes + (size_t)ids[t] * stride, stride);
	for (; j + 4 <= n; j += 4) {
		const uint8_t *x0 = codes + (size_t)ids[j] * stride;
		const uint8_t *x1 = codes + (size_t)ids[j + 1] * stride;
		const uint8_t *x2 = codes + (size_t)ids[j + 2] * stride;
		const uint8_t *x3 = codes + (size_t)ids[j + 3] * stride;
		__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
		__m512i s2 = _mm512_setzero_si512(), s3 = _mm512_setzero_si512();

		for (size_t t = j + 4; t < n && t < j + 8; t++)
			prefetch_row(codes + (size_t)ids[t] * stride, stride);
		/* The whole blocks, then a packed row's last one masked. */
		size_t i = 0;
		for (; i + 64 <= stride; i += 64) {
			s0 = block_vnni(s0, x0, cq, i, ~0ull, four);
			s1 = block_vnni(s1, x1, cq, i, ~0ull, four);
			s2 = block_vnni(s2, x2, cq, i, ~0ull, four);
			s3 = block_vnni(s3, x3, cq, i, ~0ull, four);
		}
		if (i < stride) {
			__mmask64 m = row_mask(i, stride);
			s0 = block_vnni(s0, x0, cq, i, m, four);
			s1 = block_vnni(s1, x1, cq, i, m, four);
			s2 = block_vnni(s2, x2, cq, i, m, four);
			s3 = block_vnni(s3, x3, cq, i, m, four);
		}
		_mm_storeu_si128((__m128i *)(out + j), hsum4(s0, s1, s2, s3));
	}
	for (; j < n; j++) {
		const uint8_t *x = codes + (size_t)ids[j] * stride;
		__m512i s0 = _mm512_setzero_si512();
		if (!four) {
			out[j] = dot_row_vnni(x, cq, stride);
			continue;
		}
		for (size_t i = 0; i < stride; i += 64)
			s0 = block_vnni(s0, x, cq, i, row_mask(i, stride), 1);
		out[j] = _mm512_reduce_add_epi32(s0);
	}
}

__attribute__((target("avx512vnni")))
void vec_sq8_gather_vnni(const uint8_t *codes, size_t stride, const int8_t *cq,
			 const uint32_t *ids, size_t n, int32_t *out)
{
	gather_vnni(codes, stride, cq, ids, n, out, 0);
}

__attribute__((target("avx512vnni")))
void vec_sq4_gather_vnni(const uint8_t *codes, size_t stride, const int8_t *cq,
			 const uint32_t *ids, size_t n, int32_t *out)
{
	gather_vnni(codes, stride, cq, ids, n, out, 1);
}

__attribute__((target("avx512vnni")))
void vec_sq8_scan_vnni(const uint8_t *codes, size_t stride, const int8_t *cq,
		       size_t n, int32_t *out)
{
	size_t j = 0;

	for (; j + 4 <= n; j += 4) {
		const uint8_t *x = codes + j * stride;
		__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
		__m512i s2 = _mm512_setzero_si512(), s3 = _mm512_setzero_si512();

		for (size_t i = 0; i < stride; i += 64) {
			__m512i b = _mm512_loadu_si512(cq + i);
			s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(x + i), b);
			s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(x + stride + i), b);
			s2 = _mm512_dpbusd_epi32(s2, _mm512_loadu_si512(x + 2 * stride + i), b);
			s3 = _mm512_dpbusd_epi32(s3, _mm512_loadu_si512(x + 3 * stride + i), b);
		}
		_mm_storeu_si128((__m128i *)(out + j), hsum4(s0, s1, s2, s3));
	}
	for (; j < n; j++)
		out[j] = dot_row_vnni(codes + j * stride, cq, stride);
}

/* ---- without VNNI: widen to 16 bits and multiply-add pairs into 32 bits ---- */

static inline __m512i madd_bytes(const uint8_t *x, __m512i b)
{
	return _mm512_madd_epi16(
		_mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)x)), b);
}

static inline __m512i widen_query(const int8_t *q)
{
	return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)q));
}

static inline int32_t dot_row_avx512(const uint8_t *x, const int8_t *q,
				     size_t stride)
{
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();

	for (size_t i = 0; i < stride; i += 64) {
		__m512i v = row_block(x, i, stride);
		s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(
			_mm512_cvtepu8_epi16(_mm512_castsi512_si256(v)), widen_query(q + i)));
		s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(
			_mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(v, 1)),
			widen_query(q + i + 32)));
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

/* 4-bit rows without VNNI: vpmaddubsw cannot saturate on codes <= 15
 * (2 * 15 * 127), then vpmaddwd by ones into 32-bit sums. */
static inline int32_t dot_row4_bw(const uint8_t *x, const int8_t *q,
				  size_t stride)
{
	__m512i s = _mm512_setzero_si512();

	for (size_t i = 0; i < stride; i += 64) {
		__m512i v = row_block(x, i, stride);
		__m512i p = _mm512_add_epi16(
			_mm512_maddubs_epi16(SQ4_LO(v), _mm512_loadu_si512(q + 2 * i)),
			_mm512_maddubs_epi16(SQ4_HI(v), _mm512_loadu_si512(q + 2 * i + 64)));
		s = _mm512_add_epi32(s, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
	}
	return _mm512_reduce_add_epi32(s);
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

void vec_sq8_gather_avx512(const uint8_t *codes, size_t stride,
			   const int8_t *cq, const uint32_t *ids, size_t n,
			   int32_t *out)
{
	gather_with(codes, stride, cq, ids, n, out, dot_row_avx512);
}

void vec_sq4_gather_avx512(const uint8_t *codes, size_t stride,
			   const int8_t *cq, const uint32_t *ids, size_t n,
			   int32_t *out)
{
	gather_with(codes, stride, cq, ids, n, out, dot_row4_bw);
}

void vec_sq8_scan_avx512(const uint8_t *codes, size_t stride, const int8_t *cq,
			 size_t n, int32_t *out)
{
	size_t j = 0;

	for (; j + 4 <= n; j += 4) {
		const uint8_t *x = codes + j * stride;
		__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
		__m512i s2 = _mm512_setzero_si512(), s3 = _mm512_setzero_si512();

		for (size_t i = 0; i < stride; i += 32) {
			__m512i b = widen_query(cq + i);
			s0 = _mm512_add_epi32(s0, madd_bytes(x + i, b));
			s1 = _mm512_add_epi32(s1, madd_bytes(x + stride + i, b));
			s2 = _mm512_add_epi32(s2, madd_bytes(x + 2 * stride + i, b));
			s3 = _mm512_add_epi32(s3, madd_bytes(x + 3 * stride + i, b));
		}
		_mm_storeu_si128((__m128i *)(out + j), hsum4(s0, s1, s2, s3));
	}
	for (; j < n; j++)
		out[j] = dot_row_avx512(codes + j * stride, cq, stride);
}
/*
 * The query's bytes, 8 components a step in double, as the reference
 * (sq8.c): |x scale| largest, <x, lo> (its 8 lanes, sq8.h), then each
 * x scale (127 / largest) rounded half away from zero, a NaN or a value
 * out of range coded 0.
 */
void vec_sq8_query_avx512(const struct vec_sq8 *q, const float *x, int8_t *cq,
			  float *t, float *qlo)
{
	size_t dim = q->dim, d = 0, end = dim & ~(size_t)7;
	__m512d vmax = _mm512_setzero_pd(), vlo = _mm512_setzero_pd();
	__m512d sign = _mm512_set1_pd(-0.0), half = _mm512_set1_pd(0.5);
	__m512d lim = _mm512_set1_pd(128), nlim = _mm512_set1_pd(-128), vinv;
	double amax, lo, inv, lane[8];

	for (; d < end; d += 8) {
		__m512d xv = _mm512_cvtps_pd(_mm256_loadu_ps(x + d));
		__m512d w = _mm512_mul_pd(xv, _mm512_cvtps_pd(_mm256_loadu_ps(q->scale + d)));
		/* max_pd returns its second operand when the first is NaN */
		vmax = _mm512_max_pd(_mm512_andnot_pd(sign, w), vmax);
		vlo = _mm512_add_pd(vlo, _mm512_mul_pd(xv, _mm512_cvtps_pd(
						   _mm256_loadu_ps(q->lo + d))));
	}
	amax = _mm512_reduce_max_pd(vmax);
	_mm512_storeu_pd(lane, vlo);
	lo = vec_sq8_sum8(lane);
	vec_sq8_query_sums(q, x, d, &amax, &lo);
	inv = amax > 0 ? 127.0 / amax : 0;
	vinv = _mm512_set1_pd(inv);
	for (d = 0; d < end; d += 8) {
		__m512d w = _mm512_mul_pd(
			_mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + d)),
				      _mm512_cvtps_pd(_mm256_loadu_ps(q->scale + d))),
			vinv);
		__mmask8 ok = _mm512_cmp_pd_mask(w, nlim, _CMP_GT_OQ) &
			      _mm512_cmp_pd_mask(w, lim, _CMP_LT_OQ);
		__m512d r = _mm512_add_pd(w, _mm512_or_pd(half, _mm512_and_pd(sign, w)));
		__m256i v = _mm512_maskz_cvttpd_epi32(ok, r);
		_mm_storel_epi64((__m128i *)(void *)(cq + d), _mm256_cvtepi32_epi8(v));
	}
	vec_sq8_query_bytes(q, x, d, inv, cq);
	memset(cq + dim, 0, q->stride - dim);
	*t = (float)(amax / 127.0);
	*qlo = (float)lo;
}
/* ---- float query against a code row (sq8.h): 16 components a step ---- */

static inline __m512 widen16(const uint8_t *c)
{
	return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
		_mm_loadu_si128((const __m128i *)(const void *)c)));
}

#define L2F(o, s)                                                            \
	do {                                                                 \
		__m512 t_ = _mm512_fnmadd_ps(_mm512_loadu_ps(scale + i + (o)), \
					     widen16(c + i + (o)),           \
					     _mm512_loadu_ps(qp + i + (o))); \
		s = _mm512_fmadd_ps(t_, t_, s);                              \
	} while (0)

float vec_sq8_l2f_avx512(const float *qp, const float *scale,
			 const uint8_t *c, size_t stride)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;

	for (size_t i = 0; i < stride; i += 64) {
		L2F(0, s0);
		L2F(16, s1);
		L2F(32, s2);
		L2F(48, s3);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1),
						  _mm512_add_ps(s2, s3)));
}
#undef L2F

float vec_sq8_dotf_avx512(const float *qs, const uint8_t *c, size_t stride)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;

	for (size_t i = 0; i < stride; i += 64) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(qs + i), widen16(c + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(qs + i + 16),
				     widen16(c + i + 16), s1);
		s2 = _mm512_fmadd_ps(_mm512_loadu_ps(qs + i + 32),
				     widen16(c + i + 32), s2);
		s3 = _mm512_fmadd_ps(_mm512_loadu_ps(qs + i + 48),
				     widen16(c + i + 48), s3);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1),
						  _mm512_add_ps(s2, s3)));
}
#endif
