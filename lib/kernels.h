/*
 * kernels.h - the compute core's private interface, shared by distance*.c
 * and flat*.c only.
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
 */
struct vec_flat_wide {
	const float *qp;       /* dim * qb packed query floats */
	const float *x;        /* nb rows of dim floats */
	const float *norms;    /* nb squared norms, or NULL for IP */
	size_t nb, dim;
	uint64_t id0;
	unsigned nlanes;       /* real queries in the block, 1..qb */
	struct vec_topk **heap; /* qb heaps (only nlanes are read) */
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

struct vec_flat_kernels {
	const char *name;
	unsigned qb;           /* lanes (queries) of one wide block */
	void (*wide)(const struct vec_flat_wide *w);
	void (*narrow)(const struct vec_flat_narrow *w);
};

extern const struct vec_flat_kernels vec_flat_avx2;
extern const struct vec_flat_kernels vec_flat_avx512;

/*
 * Offer a candidate that passed a kernel's fast reject and refresh the
 * threshold: out of line, since after the first few thousand rows almost
 * nothing passes.
 */
void vec_flat_offer(struct vec_topk *h, float *thr, uint64_t id, float score);

#endif
