/*
 * kmeans.h - k-means clustering (private to lib/; used by the ivf index).
 *
 * Contract:
 *  - Euclidean (l2) k-means over row-major float vectors: k-means++
 *    initialisation on a random sample of the training set, then Lloyd
 *    iterations until no training vector changes cluster or max_iter is
 *    reached.  A cluster left empty takes half of the largest one: it gets
 *    a copy of that cluster's centroid and both are nudged apart.
 *  - Training uses at most train_size vectors, drawn at random (without
 *    replacement, kept in input order) from the n given.
 *  - Deterministic: the same input, parameters and seed give the same
 *    centroids whatever the thread count (every per-vector step is
 *    independent, and every sum runs in one fixed order on one thread),
 *    on the same SIMD level (vec_kernels(); levels may round differently).
 *  - Never prints or exits; failures go to eb like the rest of lib/.
 */
#ifndef VEC_KMEANS_H
#define VEC_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#include "vec.h"

#define VEC_KMEANS_DEFAULT_ITERS 20
#define VEC_KMEANS_DEFAULT_SEED 42
#define VEC_KMEANS_TRAIN_PER_CLUSTER 64 /* default train size: 64 k ... */
#define VEC_KMEANS_TRAIN_MIN 10000      /* ... but at least this many */

struct vec_kmeans_params {
	size_t k;            /* clusters, 1..n */
	uint64_t train_size; /* 0: vec_kmeans_train_size(k, n) */
	unsigned max_iter;   /* 0: VEC_KMEANS_DEFAULT_ITERS */
	uint64_t seed;       /* 0: VEC_KMEANS_DEFAULT_SEED */
	int threads;         /* <= 0: all cores */
	const float *init;   /* NULL: k-means++; else k x dim starting centroids */
	int spherical;       /* each update's means scaled to unit length (a
	                        zero mean stays zero): for unit-length data,
	                        nearest centroid = largest inner product */
};

struct vec_kmeans_result {
	uint64_t trained;    /* training vectors used */
	unsigned iters;      /* Lloyd iterations run */
	uint64_t splits;     /* empty clusters refilled by splitting */
	double inertia;      /* sum of squared distances at the last assignment */
};

/* The training set size used when train_size is 0 (at most n, at least k). */
uint64_t vec_kmeans_train_size(size_t k, uint64_t n);

/*
 * Cluster n vectors of x (n x dim) into p->k clusters; centroids receives
 * k x dim floats.  res may be NULL.  Fails with VEC_E_USAGE when k is 0 or
 * larger than n, VEC_E_NOMEM when memory is short.
 */
int vec_kmeans(const float *x, uint64_t n, size_t dim,
	       const struct vec_kmeans_params *p, float *centroids,
	       struct vec_kmeans_result *res, struct vec_errbuf *eb);

/*
 * The nearest of k centroids (l2) of each of n vectors, on threads
 * threads; ties go to the smaller centroid number.  dist2 (may be NULL)
 * receives the squared distances.
 */
int vec_kmeans_assign(const float *x, uint64_t n, size_t dim,
		      const float *centroids, size_t k, int threads,
		      uint32_t *assign, float *dist2, struct vec_errbuf *eb);

#endif
