/*
 * flat_avx2.c - AVX2 + FMA micro-kernels of the exact search (see flat.c and
 * kernels.h for the contract).  Compiled with -mavx2 -mfma, used only when
 * distance.c found both on the CPU.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "avx2.h"
#include "kernels.h"

#define QB 16 /* queries per wide block: two ymm registers */
#define RB 6  /* base rows per tile: 2 x 6 = 12 accumulators of 16 */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/*
 * R rows x 16 queries of inner products, as in flat_avx512.c: two loads of
 * packed queries and R broadcasts feed 2R independent FMAs per dimension,
 * leaving 16 - 2R - 2 registers for the broadcasts.  Then one compare per
 * register against the thresholds rejects whole rows at once.
 */
ALWAYS_INLINE void wide_tile(const struct vec_flat_wide *w, size_t j0,
			     const int R, float *thr, __m256 *t0, __m256 *t1,
			     unsigned valid)
{
	__m256 a0[RB], a1[RB];
	const float *xr[RB];
	const float *qp = w->qp;
	const size_t dim = w->dim;

#pragma GCC unroll 6
	for (int r = 0; r < R; r++) {
		a0[r] = _mm256_setzero_ps();
		a1[r] = _mm256_setzero_ps();
		xr[r] = w->x + (j0 + r) * dim;
	}
	for (size_t d = 0; d < dim; d++) {
		__m256 q0 = _mm256_load_ps(qp + d * QB);
		__m256 q1 = _mm256_load_ps(qp + d * QB + 8);
#pragma GCC unroll 6
		for (int r = 0; r < R; r++) {
			__m256 b = _mm256_broadcast_ss(xr[r] + d);
			a0[r] = _mm256_fmadd_ps(q0, b, a0[r]);
			a1[r] = _mm256_fmadd_ps(q1, b, a1[r]);
		}
	}
#pragma GCC unroll 6
	for (int r = 0; r < R; r++) {
		__m256 s0, s1;
		unsigned m;

		if (w->norms) {
			__m256 nv = _mm256_set1_ps(w->norms[j0 + r]);
			__m256 two = _mm256_set1_ps(2.0f);
			s0 = _mm256_fnmadd_ps(a0[r], two, nv);
			s1 = _mm256_fnmadd_ps(a1[r], two, nv);
		} else {
			__m256 neg = _mm256_set1_ps(-1.0f);
			s0 = _mm256_mul_ps(a0[r], neg);
			s1 = _mm256_mul_ps(a1[r], neg);
		}
		if (w->out) {
			_mm256_storeu_ps(w->out + (j0 + r) * QB, s0);
			_mm256_storeu_ps(w->out + (j0 + r) * QB + 8, s1);
			if (w->pass)
				w->pass[j0 + r] = valid &
					((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(s0, *t0, _CMP_LE_OQ)) |
					 ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(s1, *t1, _CMP_LE_OQ)) << 8));
			continue;
		}
		m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(s0, *t0, _CMP_LE_OQ)) |
		    ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(s1, *t1, _CMP_LE_OQ)) << 8);
		m &= valid;
		if (__builtin_expect(m != 0, 0)) {
			float sv[QB] __attribute__((aligned(32)));
			_mm256_store_ps(sv, s0);
			_mm256_store_ps(sv + 8, s1);
			while (m) {
				int l = __builtin_ctz(m);
				m &= m - 1;
				vec_flat_offer(w->heap[l], &thr[l],
					       w->id0 + j0 + r, sv[l]);
			}
			*t0 = _mm256_load_ps(thr);
			*t1 = _mm256_load_ps(thr + 8);
		}
	}
}

/* A wide block against all its rows: full tiles, then single rows. */
static void wide_avx2(const struct vec_flat_wide *w)
{
	float thr[QB] __attribute__((aligned(32)));
	unsigned valid = w->nlanes >= QB ? 0xffffu : (1u << w->nlanes) - 1;
	__m256 t0, t1;
	size_t j = 0;

	for (unsigned l = 0; l < QB; l++)
		thr[l] = l >= w->nlanes ? -__builtin_inff()
			 : w->out ? (w->pass ? w->pthr[l] : -__builtin_inff())
				  : vec_topk_worst(w->heap[l]);
	t0 = _mm256_load_ps(thr);
	t1 = _mm256_load_ps(thr + 8);
	for (; j + RB <= w->nb; j += RB)
		wide_tile(w, j, RB, thr, &t0, &t1, valid);
	for (; j + 2 <= w->nb; j += 2)
		wide_tile(w, j, 2, thr, &t0, &t1, valid);
	for (; j < w->nb; j++)
		wide_tile(w, j, 1, thr, &t0, &t1, valid);
}

/* Load lanes [0, n) of p, n < 8, zeros elsewhere, reading nothing past n. */
static inline __m256 load_tail(const float *p, size_t n)
{
	static const int32_t ones[16] = { -1, -1, -1, -1, -1, -1, -1, -1,
					  0, 0, 0, 0, 0, 0, 0, 0 };
	__m256i m = _mm256_loadu_si256((const __m256i *)(ones + 8 - n));

	return _mm256_maskload_ps(p, m);
}

/*
 * Q queries x R consecutive rows summed along the dimension, 8 lanes at a
 * time with a masked-load tail; L2 directly as (q - x)^2.  See
 * flat_avx512.c for why this shape exists.
 */
ALWAYS_INLINE void narrow_tile(const struct vec_flat_narrow *w, size_t j0,
			       const int Q, const int R, const int l2,
			       float *thr, const int G, const uint32_t *rows,
			       float *out)
{
	__m256 acc[VEC_FLAT_NARROW_MAX][2];
	const size_t dim = w->dim;
	const float *x = w->x + j0 * dim, *xp[2];
	size_t d = 0;

	/* G (scores): rows[j] of w->x (or row j); query i's sums to
	 * out[i * nb + j] */
#pragma GCC unroll 2
	for (int r = 0; r < R; r++)
		xp[r] = G && rows ? w->x + (size_t)rows[j0 + r] * dim
				  : x + (size_t)r * dim;

#pragma GCC unroll 4
	for (int i = 0; i < Q; i++)
#pragma GCC unroll 2
		for (int r = 0; r < R; r++)
			acc[i][r] = _mm256_setzero_ps();
	for (; d < dim; d += 8) {
		__m256 xv[2];
		int tail = dim - d < 8;
#pragma GCC unroll 2
		for (int r = 0; r < R; r++)
			xv[r] = tail ? load_tail(xp[r] + d, dim - d)
				     : _mm256_loadu_ps(xp[r] + d);
#pragma GCC unroll 4
		for (int i = 0; i < Q; i++) {
			const float *q = w->q + i * dim + d;
			__m256 qv = tail ? load_tail(q, dim - d)
					 : _mm256_loadu_ps(q);
#pragma GCC unroll 2
			for (int r = 0; r < R; r++) {
				if (l2) {
					__m256 t = _mm256_sub_ps(qv, xv[r]);
					acc[i][r] = _mm256_fmadd_ps(t, t, acc[i][r]);
				} else {
					acc[i][r] = _mm256_fmadd_ps(qv, xv[r],
								    acc[i][r]);
				}
			}
		}
	}
#pragma GCC unroll 4
	for (int i = 0; i < Q; i++) {
#pragma GCC unroll 2
		for (int r = 0; r < R; r++) {
			float s = hsum256(acc[i][r]);
			if (!l2)
				s = -s;
			if (G)
				out[i * w->nb + j0 + r] = s;
			else if (s <= thr[i])
				vec_flat_offer(w->heap[i], &thr[i],
					       w->id0 + j0 + r, s);
		}
	}
}

/* All rows for a fixed query count and metric; G as in narrow_tile. */
ALWAYS_INLINE void narrow_rows(const struct vec_flat_narrow *w, const int Q,
			       const int l2, float *thr, const int G,
			       const uint32_t *rows, float *out)
{
	size_t j = 0;

	for (; j + 2 <= w->nb; j += 2)
		narrow_tile(w, j, Q, 2, l2, thr, G, rows, out);
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

static void narrow_avx2(const struct vec_flat_narrow *w)
{
	float thr[VEC_FLAT_NARROW_MAX];

	for (unsigned i = 0; i < w->nq; i++)
		thr[i] = vec_topk_worst(w->heap[i]);
	narrow_all(w, thr, 0, NULL, NULL);
}

/* Scores of chosen rows, summed by narrow_avx2's tiles. */
static void scores_avx2(const float *q, unsigned nq, const float *x,
			size_t dim, const uint32_t *rows, size_t n, int l2,
			float *out)
{
	struct vec_flat_narrow w = { .q = q, .nq = nq, .x = x, .nb = n,
				     .dim = dim, .l2 = l2 };

	narrow_all(&w, NULL, 1, rows, out);
}

const struct vec_flat_kernels vec_flat_avx2 = {
	"avx2", QB, wide_avx2, narrow_avx2, scores_avx2,
};
#endif
