/*
 * pq.h - product quantisation (private to lib/; used by the ivf index).
 *
 * A vector of dim components is cut into m sub-vectors of dsub = dim / m
 * components; each sub-vector is replaced by the number of its nearest
 * centroid among ksub = 2^nbits centroids trained for that sub-space
 * (k-means, lib/kmeans.c).  A code is m such numbers: m bytes for 8 bits,
 * ceil(m / 2) bytes for 4 bits (sub-quantiser 2i in the low nibble of byte
 * i, 2i + 1 in the high nibble; an odd m leaves the last high nibble 0).
 *
 * Search is asymmetric: the query stays in float, and one table per query
 * (per list, for residuals under l2) holds the distance from each query
 * sub-vector to each centroid of its sub-space; a code's distance is the
 * sum of m table entries.
 *
 * Two scans:
 *  - 8 bits: float tables, one lookup per sub-quantiser (vec_pq_scan8).
 *  - 4 bits, "fast scan": the tables are quantised to 8-bit integers so
 *    that one table of 16 entries fits a SIMD register lane, and codes are
 *    stored in blocks of 32 vectors (vec_pq4_pack) so that a byte shuffle
 *    looks up 32 vectors' entries at once; sums are 16-bit.  The result is
 *    an estimate used to pick candidates, which the caller re-scores with
 *    the float tables (vec_pq_adc) or full vectors.
 *
 * Contract:
 *  - Tables are "smaller is better": l2 gives squared distances, ip gives
 *    negated inner products.
 *  - Kernels are chosen at run time from vec_kernels()->level, like the
 *    distance kernels; every level gives the same integer results for the
 *    4-bit scan (it is exact integer arithmetic), and float results that
 *    differ only by summation order for the 8-bit scan.
 *  - Never prints or exits.
 */
#ifndef VEC_PQ_H
#define VEC_PQ_H

#include <stddef.h>
#include <stdint.h>

#include "vec.h"

#define VEC_PQ_BLOCK 32 /* vectors per fast-scan block */

struct vec_pq {
	size_t dim, m, dsub;  /* dsub = dim / m */
	unsigned nbits;       /* 4 or 8 */
	size_t ksub;          /* 1 << nbits */
	const float *cent;    /* m x ksub x dsub centroids */
	const float *cent_t;  /* NULL, or the same centroids m x dsub x ksub
	                         (vec_pq_transpose): the tables' SIMD kernels
	                         then load a dimension of 16 centroids at once
	                         instead of shuffling sums, with the same
	                         values to the bit */
};

/* cent_t for pq (m x ksub x dsub floats into out). */
void vec_pq_transpose(const struct vec_pq *pq, float *out);

/*
 * The SIMD table kernels' loop over the sub-spaces (pq, q, t and ksub in
 * scope): soa(q_j, cent_t_j, ...) from the transposed centroids when
 * there are, else aos(q_j, cent_j, ...), each given dsub, ksub, l2 and
 * the sub-space's table row.
 */
#define VEC_PQ_TABLE_LOOP(aos, soa, dsub, l2)                              \
	do {                                                                \
		if (pq->cent_t)                                             \
			for (size_t j = 0; j < pq->m; j++)                  \
				soa(q + j * (dsub), pq->cent_t + j * ksub * (dsub), \
				    (dsub), ksub, (l2), t + j * ksub);      \
		else                                                        \
			for (size_t j = 0; j < pq->m; j++)                  \
				aos(q + j * (dsub), pq->cent + j * ksub * (dsub), \
				    (dsub), ksub, (l2), t + j * ksub);      \
	} while (0)

/* Bytes of one code: m (8 bits) or (m + 1) / 2 (4 bits). */
size_t vec_pq_code_size(size_t m, unsigned nbits);

/*
 * Train the m x ksub x dsub centroids (cent) on n vectors of x (n x dim),
 * k-means per sub-space (lib/kmeans.c, l2) on one random sample of at most
 * vec_kmeans_train_size(ksub, n) vectors shared by every sub-space, seeded
 * by seed, on threads threads.  The same input, parameters and seed give
 * the same centroids whatever the thread count.  Fails with VEC_E_USAGE
 * when m does not divide dim, nbits is not 4 or 8, or n < ksub;
 * VEC_E_NOMEM when memory is short.
 */
int vec_pq_train(float *cent, const float *x, uint64_t n, size_t dim,
		 size_t m, unsigned nbits, uint64_t seed, int threads,
		 struct vec_errbuf *eb);
/* The same with the sample size chosen: train_size vectors (0: the default
 * above; at least ksub, at most n). */
int vec_pq_train_sample(float *cent, const float *x, uint64_t n, size_t dim,
			size_t m, unsigned nbits, uint64_t train_size,
			uint64_t seed, int threads, struct vec_errbuf *eb);

/*
 * vec_pq_train on the n vectors x[rows[i]] - coarse[assign[i]] (residuals
 * to coarse centroids, dim floats each), without making them: each
 * sub-space's part is made as it is trained.  The same centroids as
 * vec_pq_train on a matrix of those vectors, in a sliver of its memory.
 */
int vec_pq_train_res(float *cent, const float *x, const uint64_t *rows,
		     const float *coarse, const uint32_t *assign, uint64_t n,
		     size_t dim, size_t m, unsigned nbits, uint64_t seed,
		     int threads, struct vec_errbuf *eb);

/* Codes of n vectors (n x vec_pq_code_size bytes, packed as above). */
void vec_pq_encode(const struct vec_pq *pq, const float *x, size_t n,
		   uint8_t *codes);
/* The reconstruction of n codes (n x dim floats). */
void vec_pq_decode(const struct vec_pq *pq, const uint8_t *codes, size_t n,
		   float *x);

/*
 * The query's table, m x ksub floats: t[j * ksub + c] is ||q_j - c_jc||^2
 * (l2 != 0) or -<q_j, c_jc> (l2 == 0), q_j the j-th sub-vector of q.
 * Computed as written (differences squared, not |q|^2 - 2<q,c> + |c|^2);
 * levels differ only by the order of the dsub terms' sum.
 */
void vec_pq_table(const struct vec_pq *pq, const float *q, int l2, float *t);

/* out[i] = sum_j t[j * ksub + code_i[j]] for n codes (either width). */
void vec_pq_adc(const struct vec_pq *pq, const float *t, const uint8_t *codes,
		size_t n, float *out);

/* The same for 8-bit codes, the kernel of the level in use. */
void vec_pq_scan8(const float *t, size_t m, const uint8_t *codes, size_t n,
		  float *out);

/* ---- 4-bit fast scan ---- */

/*
 * Bytes of n codes in fast-scan blocks: ceil(n / 32) blocks of
 * 32 * ceil(m / 2) bytes.  The block layout is private to pq.c (see there);
 * padding vectors are code 0.
 */
size_t vec_pq4_packed_size(size_t n, size_t m);
/* Pack n plain 4-bit codes (n x (m + 1) / 2 bytes) into blocks. */
void vec_pq4_pack(const uint8_t *codes, size_t n, size_t m, uint8_t *blocks);
/* The plain code of vector i of packed blocks (inverse of pack). */
void vec_pq4_unpack_one(const uint8_t *blocks, size_t i, size_t m,
			uint8_t *code);
/* Store the plain code of vector i into packed blocks (the others keep
 * theirs): how a list grows one entry at a time. */
void vec_pq4_set_one(uint8_t *blocks, size_t i, size_t m,
		     const uint8_t *code);

/*
 * Quantise a float table (m x 16) to bytes for the scan: lut[j * 16 + c] =
 * round((t[j * 16 + c] - min_j) / delta), delta chosen so that the sum of
 * m entries fits 16 bits: the m rows' largest entries sum to at most
 * 65535.  Each entry is within delta / 2 of (t - min_j) / delta, plus float
 * rounding (a few ulps of the row's range).  The estimate of a code's
 * distance is then bias + delta * sum, with bias the sum of the min_j.
 * lut has room for vec_pq4_lut_size(m) bytes (padding entries are 0).
 * Every level gives the same bytes, delta and bias.  A NaN entry becomes 0.
 */
size_t vec_pq4_lut_size(size_t m);
void vec_pq4_lut(const float *t, size_t m, uint8_t *lut, float *delta,
		 float *bias);

/*
 * The quantised l2 table of the residual q - c (dim floats each) for a
 * 4-bit pq, as a list of an ivf index needs it: the same bytes, delta and
 * bias as
 *	for (d = 0; d < pq->dim; d++)
 *		qres[d] = q[d] - c[d];
 *	vec_pq_table(pq, qres, 1, t);
 *	vec_pq4_lut(t, pq->m, lut, delta, bias);
 * on every level.  The AVX2 and AVX-512 kernels take each row's range
 * as they make it, where those steps would read the table back (with
 * the transposed centroids and dsub 1, 2, 4, 8 or 16; otherwise they take
 * the steps).  qres (dim floats) and t (m x 16) are scratch; t is left
 * holding the table.
 */
void vec_pq4_lut_l2(const struct vec_pq *pq, const float *q, const float *c,
		    float *qres, float *t, uint8_t *lut, float *delta,
		    float *bias);

/*
 * sums[i] = sum_j lut[j * 16 + code_i[j]] for the nblocks * 32 vectors of
 * the blocks (padding vectors included), the kernel of the level in use.
 * Sums are modulo 2^16 on every level, hence exact for a lut made by
 * vec_pq4_lut.
 */
void vec_pq4_scan(const uint8_t *lut, size_t m, const uint8_t *blocks,
		  size_t nblocks, uint16_t *sums);

/*
 * Positions i < n with sums[i] < thr, in increasing order, into pos;
 * returns how many.  pos must have room for n entries: the SIMD kernels
 * may write scratch past the count returned (never past pos[n - 1]).
 */
size_t vec_pq4_below(const uint16_t *sums, size_t n, uint16_t thr,
		     uint32_t *pos);

/*
 * ---- kernels of each SIMD level (pq_avx2.c, pq_avx512.c) ----
 * Not for callers: pq.c calls them only after the CPU check of their level
 * passed (vec_kernels()->level); same contracts as the functions above.
 */
void vec_pq4_scan_avx2(const uint8_t *lut, size_t m, const uint8_t *blocks,
		       size_t nblocks, uint16_t *sums);
void vec_pq4_scan_avx512(const uint8_t *lut, size_t m, const uint8_t *blocks,
			 size_t nblocks, uint16_t *sums);
size_t vec_pq4_below_avx2(const uint16_t *sums, size_t n, uint16_t thr,
			  uint32_t *pos);
size_t vec_pq4_below_avx512(const uint16_t *sums, size_t n, uint16_t thr,
			    uint32_t *pos);

/*
 * The table for sub-vectors of dsub = 1, 2, 4, 8 or 16 (ksub a multiple of
 * 16): returns 1, or 0 without writing for another dsub (pq.c then uses
 * its portable loops).
 */
int vec_pq_table_avx2(const struct vec_pq *pq, const float *q, int l2,
		      float *t);
int vec_pq_table_avx512(const struct vec_pq *pq, const float *q, int l2,
			float *t);

/*
 * The two passes of vec_pq4_lut.  range: for each of the m rows of 16,
 * lo = the smallest and r = the largest minus lo, NaN entries ignored (a
 * row of NaN: lo = +inf, r = -inf), stored as two floats at lut + 16 j
 * (the row's bytes, not yet written; the row's other 8 bytes are the
 * kernel's scratch until quant), and added into st as vec_pq4_lut_stat
 * adds them, in row order, so that every level sums the same doubles
 * (st zeroed by the caller).  quant: row j's bytes from its lo (read back
 * from lut + 16 j first): x = (t - lo) * inv, NaN and below 0 to 0, above
 * 255 to 255, rounded to nearest even.  In that order every level
 * computes the same floats, hence the same bytes.
 */
struct vec_pq4_lut_stat {
	double maxr, sumr, bias; /* widest range, summed ranges, summed lo */
};
static inline void vec_pq4_lut_stat(struct vec_pq4_lut_stat *st, float lo,
				    float r)
{
	st->maxr = r > st->maxr ? r : st->maxr;
	st->sumr += r > 0 ? r : 0;
	st->bias += lo;
}
void vec_pq4_lut_range_avx2(const float *t, size_t m, uint8_t *lut,
			    struct vec_pq4_lut_stat *st);
void vec_pq4_lut_range_avx512(const float *t, size_t m, uint8_t *lut,
			      struct vec_pq4_lut_stat *st);
/*
 * vec_pq4_lut_l2's first part: qres and t as there, and range over t
 * (into lut and st as above), each group of rows (8 for AVX2, 16 for
 * AVX-512) made as vec_pq_table makes it and ranged while still in
 * registers.  Called only where it applies (pq->cent_t, ksub 16, dsub 1,
 * 2, 4, 8 or 16); pq.c takes the steps elsewhere.
 */
void vec_pq4_lut_l2_range_avx2(const struct vec_pq *pq, const float *q,
			      const float *c, float *qres, float *t,
			      uint8_t *lut, struct vec_pq4_lut_stat *st);
void vec_pq4_lut_l2_range_avx512(const struct vec_pq *pq, const float *q,
				const float *c, float *qres, float *t,
				uint8_t *lut, struct vec_pq4_lut_stat *st);
void vec_pq4_lut_quant_avx2(const float *t, size_t m, float inv,
			    uint8_t *lut);
void vec_pq4_lut_quant_avx512(const float *t, size_t m, float inv,
			      uint8_t *lut);

#endif
