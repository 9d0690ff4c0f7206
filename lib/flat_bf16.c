/*
 * flat_bf16.c - the bf16 prefilter of the exact search (see flat.c for the
 * error bound and kernels.h for the contract).  Compiled with -mavx512bf16
 * and friends, used only when the CPU has AVX512_BF16 and the AVX-512 level
 * is in use.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>

#include "kernels.h"

#define QB VEC_FLAT_BF16_QB /* queries per block: two zmm of bf16 pairs */
#define RB 12               /* base rows per tile: 24 accumulators */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/*
 * R rows x 32 queries of bf16 dot products: per pair of dimensions, two
 * loads of packed query pairs and one 32-bit broadcast per row feed 2R
 * vdpbf16ps, each 32 products, twice the work of an fp32 FMA.  Then each
 * row's 32 lower bounds are compared at once against the thresholds.
 */
ALWAYS_INLINE void bf16_tile(const struct vec_flat_bf16_wide *w, size_t j0,
			     const int R, float *thr, __m512 *t0, __m512 *t1,
			     __mmask32 valid, const __m512 *qa, const __m512 *qc)
{
	__m512 a0[RB], a1[RB];
	const uint32_t *xr[RB];
	const uint32_t *qp = w->qp;
	const size_t np = w->npairs;

#pragma GCC unroll 12
	for (int r = 0; r < R; r++) {
		a0[r] = _mm512_setzero_ps();
		a1[r] = _mm512_setzero_ps();
		xr[r] = w->x + (j0 + r) * np;
	}
	for (size_t p = 0; p < np; p++) {
		__m512bh q0 = (__m512bh)_mm512_load_si512(qp + p * QB);
		__m512bh q1 = (__m512bh)_mm512_load_si512(qp + p * QB + 16);
#pragma GCC unroll 12
		for (int r = 0; r < R; r++) {
			__m512bh b = (__m512bh)_mm512_set1_epi32((int)xr[r][p]);
			a0[r] = _mm512_dpbf16_ps(a0[r], q0, b);
			a1[r] = _mm512_dpbf16_ps(a1[r], q1, b);
		}
	}
#pragma GCC unroll 12
	for (int r = 0; r < R; r++) {
		const float *rc = w->row + 4 * (j0 + r);
		__m512 s0, s1, e0, e1, bv = _mm512_set1_ps(rc[1]);
		__m512 dv = _mm512_set1_ps(rc[2]), nv = _mm512_set1_ps(rc[3]);
		__mmask32 m;

		if (w->l2) {
			__m512 nr = _mm512_set1_ps(rc[0]);
			__m512 two = _mm512_set1_ps(2.0f);
			s0 = _mm512_fnmadd_ps(a0[r], two, nr);
			s1 = _mm512_fnmadd_ps(a1[r], two, nr);
		} else {
			__m512 neg = _mm512_set1_ps(-1.0f);
			s0 = _mm512_mul_ps(a0[r], neg);
			s1 = _mm512_mul_ps(a1[r], neg);
		}
		if (w->out) {
			_mm512_storeu_ps(w->out + (j0 + r) * QB, s0);
			_mm512_storeu_ps(w->out + (j0 + r) * QB + 16, s1);
			w->pass[j0 + r] = valid &
				((__mmask32)_mm512_cmp_ps_mask(s0, *t0, _CMP_LE_OQ) |
				 ((__mmask32)_mm512_cmp_ps_mask(s1, *t1, _CMP_LE_OQ) << 16));
			continue;
		}
		e0 = _mm512_fmadd_ps(qa[0], bv, _mm512_fmadd_ps(qc[0], dv, nv));
		e1 = _mm512_fmadd_ps(qa[1], bv, _mm512_fmadd_ps(qc[1], dv, nv));
		m = (__mmask32)_mm512_cmp_ps_mask(_mm512_sub_ps(s0, e0), *t0,
						  _CMP_LE_OQ) |
		    ((__mmask32)_mm512_cmp_ps_mask(_mm512_sub_ps(s1, e1), *t1,
						   _CMP_LE_OQ) << 16);
		m &= valid;
		if (__builtin_expect(m != 0, 0)) {
			float sv[QB] __attribute__((aligned(64)));
			float ev[QB] __attribute__((aligned(64)));
			_mm512_store_ps(sv, s0);
			_mm512_store_ps(sv + 16, s1);
			_mm512_store_ps(ev, e0);
			_mm512_store_ps(ev + 16, e1);
			while (m) {
				int l = __builtin_ctz(m);
				m &= m - 1;
				vec_flat_cand_offer(w->cand[l], &thr[l],
						    w->id0 + j0 + r,
						    sv[l] - ev[l], sv[l] + ev[l]);
			}
			*t0 = _mm512_load_ps(thr);
			*t1 = _mm512_load_ps(thr + 16);
		}
	}
}

void vec_flat_bf16_wide(const struct vec_flat_bf16_wide *w)
{
	float thr[QB] __attribute__((aligned(64)));
	__mmask32 valid = w->nlanes >= QB ? ~(__mmask32)0
					  : ((__mmask32)1 << w->nlanes) - 1;
	__m512 t0, t1, qa[2], qc[2];
	size_t j = 0;

	for (unsigned l = 0; l < QB; l++)
		thr[l] = l >= w->nlanes ? -__builtin_inff()
			 : w->out ? w->pthr[l]
			 : !w->cand[l]->overflow ? vec_topk_worst(w->cand[l]->ub)
						 : -__builtin_inff();
	t0 = _mm512_load_ps(thr);
	t1 = _mm512_load_ps(thr + 16);
	qa[0] = qa[1] = qc[0] = qc[1] = _mm512_setzero_ps();
	if (!w->out) {
		qa[0] = _mm512_loadu_ps(w->qa);
		qa[1] = _mm512_loadu_ps(w->qa + 16);
		qc[0] = _mm512_loadu_ps(w->qc);
		qc[1] = _mm512_loadu_ps(w->qc + 16);
	}
	for (; j + RB <= w->nb; j += RB)
		bf16_tile(w, j, RB, thr, &t0, &t1, valid, qa, qc);
	for (; j + 4 <= w->nb; j += 4)
		bf16_tile(w, j, 4, thr, &t0, &t1, valid, qa, qc);
	for (; j < w->nb; j++)
		bf16_tile(w, j, 1, thr, &t0, &t1, valid, qa, qc);
}

/*
 * Sums of squares are kept in float, 16 lanes, then added across: for
 * terms >= 0 the result is within a factor 1 +- (dim + 16) 2^-24 of the
 * true sum, plus at most 2^-149 per term lost to underflow; the value
 * returned is enlarged to cover both, so it is an upper bound.
 */
static double upper_sum(__m512 acc, size_t dim)
{
	double v = _mm512_reduce_add_ps(acc);

	return v * (1 + (double)(dim + 32) * 0x1p-23) + (double)dim * 0x1p-140;
}

int vec_flat_bf16_convert(const float *x, size_t n, size_t dim,
			  size_t npairs, uint32_t *out, double *st)
{
	const size_t dp = 2 * npairs;
	const __m256i expo = _mm256_set1_epi16(0x7f80);
	int bad = 0;

	for (size_t j = 0; j < n; j++) {
		const float *xr = x + j * dim;
		uint16_t *o = (uint16_t *)(out + j * npairs);
		__m512 ax = _mm512_setzero_ps(), ab = ax, ae = ax;
		size_t d = 0;

		for (; d < dp; d += 16) {
			__mmask16 ml = dim - d >= 16 ? (__mmask16)0xffff
				       : (__mmask16)((1u << (dim - d)) - 1);
			__mmask16 ms = dp - d >= 16 ? (__mmask16)0xffff
					: (__mmask16)((1u << (dp - d)) - 1);
			__m512 v = _mm512_maskz_loadu_ps(ml, xr + d);
			__m256i h = (__m256i)_mm512_cvtneps_pbh(v);
			__m512 back, e;

			/* bf16 denormals would be read as zero by vdpbf16ps */
			h = _mm256_maskz_mov_epi16(_mm256_test_epi16_mask(h, expo),
						   h);
			_mm256_mask_storeu_epi16(o + d, ms, h);
			back = _mm512_castsi512_ps(
				_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
			/* exact: back is v rounded to 8 bits, or zero */
			e = _mm512_sub_ps(v, back);
			ax = _mm512_fmadd_ps(v, v, ax);
			ab = _mm512_fmadd_ps(back, back, ab);
			ae = _mm512_fmadd_ps(e, e, ae);
		}
		st[3 * j] = upper_sum(ax, dim);
		st[3 * j + 1] = upper_sum(ab, dim);
		st[3 * j + 2] = upper_sum(ae, dim);
		if (!isfinite(st[3 * j]) || !isfinite(st[3 * j + 1]) ||
		    !isfinite(st[3 * j + 2]))
			bad = 1;
	}
	return bad;
}

#define FMA_ROWS 8

void vec_flat_fma_dots(const float *q, const float *base, size_t dim,
		       const uint64_t *ids, size_t m, float *out)
{
	size_t i = 0;

	for (; i + FMA_ROWS <= m; i += FMA_ROWS) {
		const float *x[FMA_ROWS];
		float a[FMA_ROWS];

		for (int r = 0; r < FMA_ROWS; r++) {
			x[r] = base + ids[i + r] * dim;
			a[r] = 0;
		}
		for (size_t d = 0; d < dim; d++) {
			float qd = q[d];
#pragma GCC unroll 8
			for (int r = 0; r < FMA_ROWS; r++)
				a[r] = fmaf(qd, x[r][d], a[r]);
		}
		for (int r = 0; r < FMA_ROWS; r++)
			out[i + r] = a[r];
	}
	for (; i < m; i++) {
		const float *x = base + ids[i] * dim;
		float a = 0;

		for (size_t d = 0; d < dim; d++)
			a = fmaf(q[d], x[d], a);
		out[i] = a;
	}
}
#endif
