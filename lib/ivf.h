/*
 * ivf.h - the inverted-file index (IVF-Flat; private to lib/).
 *
 * The vectors are partitioned into nlist lists by their nearest k-means
 * centroid (lib/kmeans.c).  A query ranks the centroids, then scans the
 * nprobe nearest lists exhaustively.  Like the hnsw graph, the lists are
 * one part of an index of type VEC_TYPE_IVF: the vectors in insertion
 * order stay in the index's VECS section, and the lists add their own
 * sections (see man/vec-index.5), among them a copy of the vectors in list
 * order, so that one probe reads one contiguous block.
 *
 * Contract:
 *  - Ids are the index's insertion ids (uint32_t in the file: at most
 *    2^32 - 1 vectors).  Scores are those of vec_flat_search: Euclidean
 *    distance for l2 (ascending), inner product for ip and cos
 *    (descending; cos vectors and queries are unit length already), with
 *    the same padding (UINT64_MAX and +INFINITY or -INFINITY).
 *  - nprobe >= nlist searches every list: the search is then exact, and
 *    answered by vec_flat_search over the insertion-ordered vectors, so
 *    the results are exactly those of a flat index.
 *  - Clustering is l2 k-means over the stored vectors (normalised for
 *    cos); lists are ranked by l2 distance to their centroid (l2) or by
 *    inner product with it (ip, cos).
 *  - Search may run from many threads at once; add needs exclusive access.
 *  - Opened lists point into the mapped file (no copy); the first add
 *    copies them into owned memory.
 */
#ifndef VEC_IVF_H
#define VEC_IVF_H

#include <stddef.h>
#include <stdint.h>

#include "file.h"
#include "hnsw.h" /* struct vec_vectors */
#include "vec.h"

#define VEC_SEC_IVFP VEC_FOURCC('I', 'V', 'F', 'P') /* parameters */
#define VEC_SEC_IVFC VEC_FOURCC('I', 'V', 'F', 'C') /* centroids */
#define VEC_SEC_IVFO VEC_FOURCC('I', 'V', 'F', 'O') /* list offsets */
#define VEC_SEC_IVFI VEC_FOURCC('I', 'V', 'F', 'I') /* list member ids */
#define VEC_SEC_IVFV VEC_FOURCC('I', 'V', 'F', 'V') /* vectors in list order */
#define VEC_IVF_MAX_SECTIONS 5

#define VEC_IVF_NLIST_MAX (1u << 24)

struct vec_ivf_params {
	uint32_t nlist;       /* 0: vec_ivf_default_nlist(count) */
	uint64_t train_size;  /* 0: the k-means default */
	uint64_t seed;        /* 0: 42 */
};

struct vec_ivf;

/* round(4 sqrt(n)), within [1, n] (1 for n = 0). */
uint32_t vec_ivf_default_nlist(uint64_t n);

/* Train the centroids on v and fill the lists with every vector of v. */
int vec_ivf_build(struct vec_ivf **out, const struct vec_ivf_params *p,
		  const struct vec_vectors *v, int threads,
		  struct vec_errbuf *eb);
void vec_ivf_free(struct vec_ivf *g);

/* Vectors in the lists. */
uint64_t vec_ivf_count(const struct vec_ivf *g);

/*
 * Put vectors [vec_ivf_count(g), v->count) into the list of their nearest
 * centroid (no retraining).  On failure the lists are as they were.
 */
int vec_ivf_add(struct vec_ivf *g, const struct vec_vectors *v, int threads,
		struct vec_errbuf *eb);

/* k nearest of nq queries, probing nprobe lists (0: the default). */
int vec_ivf_search(const struct vec_ivf *g, const struct vec_vectors *v,
		   const float *queries, size_t nq, size_t k, size_t nprobe,
		   int threads, uint64_t *ids, float *scores,
		   struct vec_errbuf *eb);
/* The default nprobe: max(1, round(nlist / 16)). */
size_t vec_ivf_default_nprobe(const struct vec_ivf *g);

/* The sections that store the lists (at most VEC_IVF_MAX_SECTIONS). */
int vec_ivf_sections(struct vec_ivf *g, struct vec_file_section *secs,
		     size_t *n, struct vec_errbuf *eb);

/*
 * Attach to the sections of a parsed file, in place.  Every size, offset
 * and id is checked first (O(nlist + count)): a list never reaches past
 * its section, and every id is below count and appears once.
 */
int vec_ivf_open(struct vec_ivf **out, const struct vec_file *f,
		 const struct vec_vectors *v, struct vec_errbuf *eb);

/* --verify: centroids finite, and each list row equals its VECS row. */
int vec_ivf_check(const struct vec_ivf *g, const struct vec_vectors *v,
		  struct vec_errbuf *eb);

struct vec_ivf_stats {
	uint32_t nlist;
	uint64_t seed, train_size;
	uint32_t iterations, max_iterations;
	uint64_t list_min, list_median, list_max, empty_lists;
	uint64_t list_bytes;   /* the lists' sections, the vector copy included */
	size_t default_nprobe;
};
void vec_ivf_stats(const struct vec_ivf *g, struct vec_ivf_stats *s);

#endif
