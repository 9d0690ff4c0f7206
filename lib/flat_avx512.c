/*
 * flat_avx512.c - AVX-512 micro-kernels of the exact search (see flat.c and
 * kernels.h for the contract).  Compiled with -mavx512f and friends, used
 * only when distance.c found AVX-512 on the CPU.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "kernels.h"

#define QB 32 /* queries per wide block: two zmm registers */
#define RB 12 /* base rows per tile: 2 x 12 = 24 accumulators */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/*
 * R rows x 32 queries of inner products: per dimension, two loads of the
 * packed queries and one broadcast per row feed 2R independent FMAs, so the
 * loop runs at the FMA ports' rate and the base is read in place.  Then
 * each row's 32 scores are compared at once against the thresholds, and
 * only the lanes that pass go to the heaps.  R is a constant at every call
 * site, so the arrays below live in registers.
 */
ALWAYS_INLINE void wide_tile(const struct vec_flat_wide *w, size_t j0,
			     const int R, float *thr, __m512 *t0, __m512 *t1,
			     __mmask32 valid)
{
	__m512 a0[RB], a1[RB];
	const float *xr[RB];
	const float *qp = w->qp;
	const size_t dim = w->dim;

#pragma GCC unroll 12
	for (int r = 0; r < R; r++) {
		a0[r] = _mm512_setzero_ps();
		a1[r] = _mm512_setzero_ps();
		xr[r] = w->x + (j0 + r) * dim;
	}
	for (size_t d = 0; d < dim; d++) {
		__m512 q0 = _mm512_load_ps(qp + d * QB);
		__m512 q1 = _mm512_load_ps(qp + d * QB + 16);
#pragma GCC unroll 12
		for (int r = 0; r < R; r++) {
			__m512 b = _mm512_set1_ps(xr[r][d]);
			a0[r] = _mm512_fmadd_ps(q0, b, a0[r]);
			a1[r] = _mm512_fmadd_ps(q1, b, a1[r]);
		}
	}
#pragma GCC unroll 12
	for (int r = 0; r < R; r++) {
		__m512 s0, s1;
		__mmask32 m;

		if (w->norms) {
			__m512 nv = _mm512_set1_ps(w->norms[j0 + r]);
			__m512 two = _mm512_set1_ps(2.0f);
			s0 = _mm512_fnmadd_ps(a0[r], two, nv);
			s1 = _mm512_fnmadd_ps(a1[r], two, nv);
		} else {
			__m512 neg = _mm512_set1_ps(-1.0f);
			s0 = _mm512_mul_ps(a0[r], neg);
			s1 = _mm512_mul_ps(a1[r], neg);
		}
		if (w->out) {
			_mm512_storeu_ps(w->out + (j0 + r) * QB, s0);
			_mm512_storeu_ps(w->out + (j0 + r) * QB + 16, s1);
			if (w->pass)
				w->pass[j0 + r] = valid &
					((__mmask32)_mm512_cmp_ps_mask(s0, *t0, _CMP_LE_OQ) |
					 ((__mmask32)_mm512_cmp_ps_mask(s1, *t1, _CMP_LE_OQ) << 16));
			continue;
		}
		m = (__mmask32)_mm512_cmp_ps_mask(s0, *t0, _CMP_LE_OQ) |
		    ((__mmask32)_mm512_cmp_ps_mask(s1, *t1, _CMP_LE_OQ) << 16);
		m &= valid;
		if (__builtin_expect(m != 0, 0)) {
			float sv[QB] __attribute__((aligned(64)));
			_mm512_store_ps(sv, s0);
			_mm512_store_ps(sv + 16, s1);
			while (m) {
				int l = __builtin_ctz(m);
				m &= m - 1;
				vec_flat_offer(w->heap[l], &thr[l],
					       w->id0 + j0 + r, sv[l]);
			}
			*t0 = _mm512_load_ps(thr);
			*t1 = _mm512_load_ps(thr + 16);
		}
	}
}

/* A wide block against all its rows: full tiles, then narrower ones. */
static void wide_avx512(const struct vec_flat_wide *w)
{
	float thr[QB] __attribute__((aligned(64)));
	__mmask32 valid = w->nlanes >= QB ? ~(__mmask32)0
					  : ((__mmask32)1 << w->nlanes) - 1;
	__m512 t0, t1;
	size_t j = 0;

	for (unsigned l = 0; l < QB; l++)
		thr[l] = l >= w->nlanes ? -__builtin_inff()
			 : w->out ? (w->pass ? w->pthr[l] : -__builtin_inff())
				  : vec_topk_worst(w->heap[l]);
	t0 = _mm512_load_ps(thr);
	t1 = _mm512_load_ps(thr + 16);
	for (; j + RB <= w->nb; j += RB)
		wide_tile(w, j, RB, thr, &t0, &t1, valid);
	for (; j + 4 <= w->nb; j += 4)
		wide_tile(w, j, 4, thr, &t0, &t1, valid);
	for (; j < w->nb; j++)
		wide_tile(w, j, 1, thr, &t0, &t1, valid);
}

/* Lanes [0, n) of a mask, n < 16. */
static inline __mmask16 tail_mask(size_t n)
{
	return (__mmask16)((1u << n) - 1);
}

/*
 * The four sums of a, b, c and d, in that order: pairwise adds of
 * interleaved halves, so four reductions share one shuffle tree.
 */
static inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d)
{
	__m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b),
				  _mm512_unpackhi_ps(a, b));
	__m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d),
				  _mm512_unpackhi_ps(c, d));
	/* per 128-bit lane: ab = a02 b02 a13 b13, cd likewise */
	__m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44),
				    _mm512_shuffle_ps(ab, cd, 0xee));
	/* per 128-bit lane: a b c d; now add the four lanes */
	__m256 h = _mm256_add_ps(_mm512_castps512_ps256(abcd),
				 _mm256_castpd_ps(_mm512_extractf64x4_pd(
					 _mm512_castps_pd(abcd), 1)));
	return _mm_add_ps(_mm256_castps256_ps128(h),
			  _mm256_extractf128_ps(h, 1));
}

/*
 * Q queries x R consecutive rows, summed along the dimension 16 lanes at a
 * time (masked tail), then reduced: the shape for one to four queries,
 * where the wide kernel's lanes would stay empty.  L2 is summed directly as
 * (q - x)^2, which needs no norms and loses nothing to cancellation.
 */
ALWAYS_INLINE void narrow_tile(const struct vec_flat_narrow *w, size_t j0,
			       const int Q, const int R, const int l2,
			       float *thr, const int G, const uint32_t *rows,
			       float *out)
{
	__m512 acc[VEC_FLAT_NARROW_MAX][8];
	const size_t dim = w->dim;
	const float *x = w->x + j0 * dim, *xp[8];
	size_t d = 0;

	/* G (scores): rows[j] of w->x (or row j); query i's sums to
	 * out[i * nb + j] */
#pragma GCC unroll 8
	for (int r = 0; r < R; r++)
		xp[r] = G && rows ? w->x + (size_t)rows[j0 + r] * dim
				  : x + (size_t)r * dim;

#pragma GCC unroll 4
	for (int i = 0; i < Q; i++)
#pragma GCC unroll 8
		for (int r = 0; r < R; r++)
			acc[i][r] = _mm512_setzero_ps();
	for (; d + 16 <= dim; d += 16) {
		__m512 xv[8];
#pragma GCC unroll 8
		for (int r = 0; r < R; r++)
			xv[r] = _mm512_loadu_ps(xp[r] + d);
#pragma GCC unroll 4
		for (int i = 0; i < Q; i++) {
			__m512 qv = _mm512_loadu_ps(w->q + i * dim + d);
#pragma GCC unroll 8
			for (int r = 0; r < R; r++) {
				if (l2) {
					__m512 t = _mm512_sub_ps(qv, xv[r]);
					acc[i][r] = _mm512_fmadd_ps(t, t, acc[i][r]);
				} else {
					acc[i][r] = _mm512_fmadd_ps(qv, xv[r],
								    acc[i][r]);
				}
			}
		}
	}
	if (d < dim) {
		__mmask16 m = tail_mask(dim - d);
		__m512 xv[8];
#pragma GCC unroll 8
		for (int r = 0; r < R; r++)
			xv[r] = _mm512_maskz_loadu_ps(m, xp[r] + d);
#pragma GCC unroll 4
		for (int i = 0; i < Q; i++) {
			__m512 qv = _mm512_maskz_loadu_ps(m, w->q + i * dim + d);
#pragma GCC unroll 8
			for (int r = 0; r < R; r++) {
				if (l2) {
					__m512 t = _mm512_sub_ps(qv, xv[r]);
					acc[i][r] = _mm512_fmadd_ps(t, t, acc[i][r]);
				} else {
					acc[i][r] = _mm512_fmadd_ps(qv, xv[r],
								    acc[i][r]);
				}
			}
		}
	}
#pragma GCC unroll 4
	for (int i = 0; i < Q; i++) {
#pragma GCC unroll 2
		for (int g = 0; g < R; g += 4) {
			__m512 z = _mm512_setzero_ps();
			__m128 s;
			__mmask8 m;
			/* the same tree for a lone row: identical sums */
			if (R >= 4)
				s = reduce4(acc[i][g], acc[i][g + 1],
					    acc[i][g + 2], acc[i][g + 3]);
			else
				s = reduce4(acc[i][0], z, z, z);
			if (!l2)
				s = _mm_mul_ps(s, _mm_set1_ps(-1.0f));
			if (G) {
				if (R >= 4)
					_mm_storeu_ps(out + i * w->nb + j0 + g, s);
				else
					out[i * w->nb + j0] = _mm_cvtss_f32(s);
				continue;
			}
			m = _mm_cmp_ps_mask(s, _mm_set1_ps(thr[i]), _CMP_LE_OQ);
			m &= (__mmask8)((1u << (R < 4 ? R : 4)) - 1);
			if (__builtin_expect(m != 0, 0)) {
				float sv[4];
				_mm_storeu_ps(sv, s);
				while (m) {
					int r = __builtin_ctz(m);
					m &= m - 1;
					vec_flat_offer(w->heap[i], &thr[i],
						       w->id0 + j0 + g + r,
						       sv[r]);
				}
			}
		}
	}
}

/* All rows for a fixed query count and metric; G as in narrow_tile. */
ALWAYS_INLINE void narrow_rows(const struct vec_flat_narrow *w, const int Q,
			       const int l2, float *thr, const int G,
			       const uint32_t *rows, float *out)
{
	size_t j = 0;

	/* one query: eight rows in flight, for memory-level parallelism */
	if (Q == 1)
		for (; j + 8 <= w->nb; j += 8)
			narrow_tile(w, j, Q, 8, l2, thr, G, rows, out);
	for (; j + 4 <= w->nb; j += 4)
		narrow_tile(w, j, Q, 4, l2, thr, G, rows, out);
	for (; j < w->nb; j++)
		narrow_tile(w, j, Q, 1, l2, thr, G, rows, out);
}

/* Dispatch on the query count and metric, so every tile is specialised. */
ALWAYS_INLINE void narrow_all(const struct vec_flat_narrow *w, float *thr,
			      const int G, const uint32_t *rows, float *out)
{
#define CASE(q)                                                        \
	case q:                                                        \
		if (w->l2)                                             \
			narrow_rows(w, q, 1, thr, G, rows, out);       \
		else                                                   \
			narrow_rows(w, q, 0, thr, G, rows, out);       \
		break
	switch (w->nq) {
	CASE(1);
	CASE(2);
	CASE(3);
	CASE(4);
	}
#undef CASE
}

static void narrow_avx512(const struct vec_flat_narrow *w)
{
	float thr[VEC_FLAT_NARROW_MAX];

	for (unsigned i = 0; i < w->nq; i++)
		thr[i] = vec_topk_worst(w->heap[i]);
	narrow_all(w, thr, 0, NULL, NULL);
}

/* Scores of chosen rows, summed by narrow_avx512's tiles. */
static void scores_avx512(const float *q, unsigned nq, const float *x,
			  size_t dim, const uint32_t *rows, size_t n, int l2,
			  float *out)
{
	struct vec_flat_narrow w = { .q = q, .nq = nq, .x = x, .nb = n,
				     .dim = dim, .l2 = l2 };

	narrow_all(&w, NULL, 1, rows, out);
}

const struct vec_flat_kernels vec_flat_avx512 = {
	"avx512", QB, wide_avx512, narrow_avx512, scores_avx512,
};
#endif
