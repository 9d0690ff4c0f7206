/*
 * kernels.h - the compute core's private interface, shared by distance*.c
 * and flat*.c (and ivf.c, for the narrow kernel).
 *
 * Each SIMD level lives in its own object compiled with its own -m flags
 * (see the Makefile); the tables below are how the dispatcher in
 * distance.c and the search in flat.c reach them without ever calling an
 * instruction the CPU lacks: a table is only used after the run-time check
 * of its level passed.
 */
#ifndef VEC_KERNELS_H
#define VEC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "vec.h"

/* Distance kernel tables, one per level (distance_<level>.c). */
extern const struct vec_kernels vec_kernels_avx2;
extern const struct vec_kernels vec_kernels_avx512;
extern const struct vec_kernels vec_kernels_neon;

/*
 * One wide block of the batched search: qb packed queries (the layout is
 * qp[d * qb + lane], padded lanes zero) against base rows [0, nb) of x.
 * For every row and lane the kernel forms a "smaller is better" score,
 *   L2 (norms != NULL): norms[row] - 2 <q, x>   (the query norm is left out:
 *                       it is the same for every row of one query)
 *   IP (norms == NULL): -<q, x>
 * and offers it to heap[lane] with id id0 + row, through a fast reject
 * against a copy of each heap's current worst that the kernel keeps up to
 * date.  Lanes >= nlanes are padding and never offered.
 *
 * With out set, nothing is offered (heap is not read): the scores of every
 * row and all qb lanes, padding included, go to out[row * qb + lane]
 * instead, for callers that select from them their own way.  With pass
 * set too, pass[row] gets the lanes < nlanes whose score is <= pthr[lane]
 * (qb thresholds), bit lane set: a caller scanning for the few scores
 * that pass then reads only those.
 */
struct vec_flat_wide {
	const float *qp;       /* dim * qb packed query floats */
	const float *x;        /* nb rows of dim floats */
	const float *norms;    /* nb squared norms, or NULL for IP */
	size_t nb, dim;
	uint64_t id0;
	unsigned nlanes;       /* real queries in the block, 1..qb */
	struct vec_topk **heap; /* qb heaps (only nlanes are read) */
	float *out;            /* NULL, or nb x qb scores (see above) */
	const float *pthr;     /* with out and pass: qb thresholds */
	uint64_t *pass;        /* NULL, or nb lane masks (see above) */
};

/*
 * A few queries (1..4, rows of q with stride dim) against base rows
 * [0, nb): scores are squared distances (l2 != 0) or -<q, x>, offered to
 * heap[i] as above.  Used where a block of queries is too narrow to fill
 * the wide kernel's lanes, notably the one-query stream.
 */
struct vec_flat_narrow {
	const float *q;
	unsigned nq;           /* 1..VEC_FLAT_NARROW_MAX */
	const float *x;
	size_t nb, dim;
	uint64_t id0;
	int l2;
	struct vec_topk **heap;
};
#define VEC_FLAT_NARROW_MAX 4

/*
 * scores: nq queries (1..VEC_FLAT_NARROW_MAX, rows of q with stride dim)
 * against rows rows[j] of x (row j when rows is NULL), j < n: out[i * n +
 * j] gets the score the narrow kernel would offer for row j and query i,
 * summed in the same order to the same bits (the narrow kernel's sum for a
 * row and query does not depend on the rows and queries scored with it).
 */
struct vec_flat_kernels {
	const char *name;
	unsigned qb;           /* lanes (queries) of one wide block, <= 64 */
	void (*wide)(const struct vec_flat_wide *w);
	void (*narrow)(const struct vec_flat_narrow *w);
	void (*scores)(const float *q, unsigned nq, const float *x, size_t dim,
		       const uint32_t *rows, size_t n, int l2, float *out);
};

extern const struct vec_flat_kernels vec_flat_avx2;
extern const struct vec_flat_kernels vec_flat_avx512;
/* The kernels matching the distance level in use (flat.c); ivf.c scans
 * its lists of vectors with the narrow one. */
const struct vec_flat_kernels *vec_flat_kernels(void);

/*
 * Offer a candidate that passed a kernel's fast reject and refresh the
 * threshold: out of line, since after the first few thousand rows almost
 * nothing passes.
 */
void vec_flat_offer(struct vec_topk *h, float *thr, uint64_t id, float score);

/*
 * The reduced-precision prefilter (flat_bf16.c, CPUs with AVX512_BF16; see
 * flat.c for the bound and why the results stay exact).
 *
 * Candidates of one query: every row whose lower bound did not exceed the
 * query's threshold when it was scanned, with that bound (the list is
 * filtered again at the end, once the threshold is final).  ub keeps the k
 * best upper bounds; its worst is the threshold.  A query whose list grows
 * past its limit is marked and searched again in full precision.
 */
struct vec_flat_cands {
	uint64_t *id;
	float *lo;
	size_t n, cap, limit;
	int overflow, owned;   /* owned: id and lo are this list's malloc */
	struct vec_topk *ub;
};

/* Offer a row that passed lo <= *thr (see flat.c). */
void vec_flat_cand_offer(struct vec_flat_cands *c, float *thr, uint64_t id,
			 float lo, float hi);

/*
 * One wide block of bf16 queries (qb = 32 lanes) against base rows [0, nb):
 *   qp[p * 32 + lane]: query dimensions 2p, 2p+1 as a bf16 pair, low half
 *                      first (npairs pairs, padding zero);
 *   x: nb rows of npairs such pairs;
 *   row[4 * j ..]: { squared norm for L2 (0 for IP), B, D, N } of row j;
 *   qa, qc: A and C of each lane.
 * The score is s = nrm - 2 a (L2) or -a (IP) with a the bf16 dot product,
 * its bound e = A B + C D + N, and the interval [s - e, s + e].
 *
 * With out set, no candidate is offered (cand, qa and qc are not read):
 * the scores s of every row and lane go to out[row * 32 + lane], and
 * pass[row] gets the lanes < nlanes with s <= pthr[lane], as the fp32
 * wide kernel's score mode does; a caller bounds e itself.
 */
struct vec_flat_bf16_wide {
	const uint32_t *qp;
	const uint32_t *x;
	const float *row;
	const float *qa, *qc;
	size_t nb, npairs;
	uint64_t id0;
	int l2;
	unsigned nlanes;
	struct vec_flat_cands **cand; /* 32 lists (nlanes are read) */
	float *out;            /* NULL, or nb x 32 scores (see above) */
	const float *pthr;     /* with out: 32 thresholds */
	uint64_t *pass;        /* with out: nb lane masks */
};
#define VEC_FLAT_BF16_QB 32

void vec_flat_bf16_wide(const struct vec_flat_bf16_wide *w);

/*
 * Rows [0, n) of x (dim floats each) to bf16, rounded to nearest even,
 * values too small for a normal bf16 set to zero; rows of npairs pairs
 * (as in qp above), zero padded.  st[3 * j ..] gets upper bounds of
 * ||x||^2, ||bf16(x)||^2 and ||x - bf16(x)||^2.  Returns nonzero if one is
 * not finite (a value not finite, or too large).
 */
int vec_flat_bf16_convert(const float *x, size_t n, size_t dim,
			  size_t npairs, uint32_t *out, double *st);

/*
 * For callers of vec_flat_bf16_wide outside flat.c (flat.c has the bound):
 *  - usable: the CPU has AVX512_BF16, the AVX-512 level is in use, and
 *    VEC_FLAT_BF16 is not "0" (read per call);
 *  - rows: rows [0, n) of x to bf16 pairs in xb with their factors
 *    { nrm, B, D, N } in rc[4 * j ..] (norms: the rows' squared norms for
 *    L2, NULL for IP);
 *  - query: one query to bf16 pairs in row (npairs), with A and C.
 * rows and query return nonzero if a value is unfit for the bound (not
 * finite, or too large); then the caller must not use the bf16 path.
 */
int vec_flat_bf16_usable(void);
int vec_flat_bf16_rows(const float *x, size_t n, size_t dim, size_t npairs,
		       const float *norms, uint32_t *xb, float *rc);
int vec_flat_bf16_query(const float *q, size_t dim, size_t npairs,
			uint32_t *row, float *qa, float *qc);

/*
 * out[i] = <q, x_ids[i]> summed exactly as the wide fp32 kernels sum one
 * lane: a fused multiply-add per dimension, in order, from zero.
 */
void vec_flat_fma_dots(const float *q, const float *base, size_t dim,
		       const uint64_t *ids, size_t m, float *out);

#endif
