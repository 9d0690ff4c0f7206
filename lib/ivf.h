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
 *  - Clustering is l2 k-means over the stored vectors (for cos:
 *    spherical, over the unit vectors, with unit centroids); lists are
 *    ranked by l2 distance to their centroid (l2) or by inner product
 *    with it (ip, cos).
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
#define VEC_SEC_IVFQ VEC_FOURCC('I', 'V', 'F', 'Q') /* codes in list order */
#define VEC_SEC_IVFX VEC_FOURCC('I', 'V', 'F', 'X') /* codebook */
#define VEC_SEC_IVFN VEC_FOURCC('I', 'V', 'F', 'N') /* sq8, l2: code norms */
#define VEC_SEC_IVFR VEC_FOURCC('I', 'V', 'F', 'R') /* refine: quantiser, bounds */
#define VEC_SEC_IVFS VEC_FOURCC('I', 'V', 'F', 'S') /* refine: 8-bit codes */
#define VEC_IVF_MAX_SECTIONS 9
/* Refine codes (IVFR, IVFS) are kept for coded payloads that refine when
 * a vector has at least this many components: below, re-ranking on the
 * full vectors costs less than reading the codes first. */
#define VEC_IVF_RQ_MIN_DIM 256

#define VEC_IVF_NLIST_MAX (1u << 24)

/* What a list entry stores (IVFP byte 48; man/vec-index.5). */
enum vec_ivf_codec {
	VEC_IVF_FLAT = 0, /* the vector itself, float32 (section IVFV) */
	VEC_IVF_PQ = 1,   /* a residual product-quantiser code (IVFQ, IVFX) */
	VEC_IVF_SQ8 = 2,  /* 8 bits per component of the residual (IVFQ, IVFX) */
};

struct vec_ivf_params {
	uint32_t nlist;       /* 0: vec_ivf_default_nlist(count) */
	uint64_t train_size;  /* 0: the k-means default */
	uint64_t seed;        /* 0: 42 */
	int codec;            /* enum vec_ivf_codec */
	uint32_t pq_m;        /* PQ: sub-quantisers; 0: vec_ivf_default_pq_m */
	unsigned pq_bits;     /* PQ: 4 or 8; 0: 8 */
	uint32_t refine;      /* compressed codecs: re-rank refine x k candidates
	                         on the full vectors by default; 0: none (the
	                         index then keeps no full vectors) */
};

struct vec_ivf;

/* round(4 sqrt(n)), within [1, n] (1 for n = 0). */
uint32_t vec_ivf_default_nlist(uint64_t n);
/* The default sub-quantiser count: the largest divisor of dim that is at
 * most dim / 4 (8 bits) or dim / 2 (4 bits), so a code is about dim / 4
 * bytes either way (1 when dim is too small). */
uint32_t vec_ivf_default_pq_m(size_t dim, unsigned bits);

/* Check parameters that do not depend on the data (m divides dim, ...). */
int vec_ivf_check_params(const struct vec_ivf_params *p, size_t dim,
			 struct vec_errbuf *eb);

/*
 * Train on the n vectors of x (row-major, dim; unit length for cos): the
 * k-means centroids, then the codec (on the residuals of at most 65536 of
 * the vectors).  The lists are empty: vec_ivf_add fills them.
 */
int vec_ivf_train(struct vec_ivf **out, const struct vec_ivf_params *p,
		  const float *x, uint64_t n, size_t dim, int metric,
		  int threads, struct vec_errbuf *eb);
void vec_ivf_free(struct vec_ivf *g);

/* Vectors in the lists. */
uint64_t vec_ivf_count(const struct vec_ivf *g);
/* The payload (enum vec_ivf_codec) and the number of lists. */
void vec_ivf_layout(const struct vec_ivf *g, int *codec, uint32_t *nlist);
/* Does the index need the full vectors (the flat codec, or refining)? */
int vec_ivf_keeps_vectors(const struct vec_ivf *g);

/*
 * Put n vectors x (the ids vec_ivf_count(g) on; unit length for cos) into
 * the list of their nearest centroid (no retraining).  On failure the
 * lists are as they were.
 */
int vec_ivf_add(struct vec_ivf *g, const float *x, uint64_t n, int threads,
		struct vec_errbuf *eb);

struct vec_ivf_search_opts {
	size_t nprobe;    /* 0: the default */
	long refine;      /* < 0: the index's default; 0: none */
	int threads;
	uint64_t *scanned; /* if not NULL: list entries scanned are added */
};

/*
 * k nearest of nq queries.  v holds the full vectors (x may be NULL when
 * the index keeps none; then refine must be 0).  Scores: exact when
 * refined or flat, else the codes' estimate.
 */
int vec_ivf_search(const struct vec_ivf *g, const struct vec_vectors *v,
		   const float *queries, size_t nq, size_t k,
		   const struct vec_ivf_search_opts *o, uint64_t *ids,
		   float *scores, struct vec_errbuf *eb);
/*
 * The nprobe (1..min(nlist, 4096)) best lists of each of nq queries, best
 * first, with their scores (l2: |q - c|, ip and cos: <q, c>): the ranking
 * vec_ivf_search probes by.  It is exactly vec_flat_search's over the
 * centroids (ties by list number), only without a heap per query.
 */
int vec_ivf_rank(const struct vec_ivf *g, const float *q, size_t nq,
		 size_t nprobe, int threads, uint64_t *probe, float *psc,
		 struct vec_errbuf *eb);
/* The default nprobe: max(1, round(nlist / 16)). */
size_t vec_ivf_default_nprobe(const struct vec_ivf *g);

/* The sections that store the lists (at most VEC_IVF_MAX_SECTIONS). */
int vec_ivf_sections(struct vec_ivf *g, struct vec_file_section *secs,
		     size_t *n, struct vec_errbuf *eb);

/*
 * Attach to the sections of a parsed file, in place.  Every size, offset
 * and id is checked first (O(nlist + count)): a list never reaches past
 * its section, and every id is below count and appears once.  v->x is
 * NULL when the file has no VECS section; that must agree with the codec.
 */
int vec_ivf_open(struct vec_ivf **out, const struct vec_file *f,
		 const struct vec_vectors *v, struct vec_errbuf *eb);

/* --verify: centroids and codebooks finite, and each list entry is its
 * vector (flat) or its vector's code (when the full vectors are kept). */
int vec_ivf_check(const struct vec_ivf *g, const struct vec_vectors *v,
		  struct vec_errbuf *eb);

struct vec_ivf_stats {
	uint32_t nlist;
	uint64_t seed, train_size;
	uint32_t iterations, max_iterations;
	uint64_t list_min, list_median, list_max, empty_lists;
	uint64_t list_bytes;   /* the lists' sections, codes and ids included */
	size_t default_nprobe;
	int codec;
	uint32_t pq_m, pq_bits, refine;
	uint64_t code_bytes;   /* bytes of one list entry's payload */
	uint64_t codebook_bytes;
	uint64_t refine_code_bytes; /* IVFR and IVFS; 0: none */
	uint64_t refine_exact;      /* vectors whose refine code is exact */
};
void vec_ivf_stats(const struct vec_ivf *g, struct vec_ivf_stats *s);
/* Tests: 0 makes the refine re-rank every candidate on the full vectors,
 * as if the index had no refine codes; 1 (the default) uses them. */
void vec_ivf_use_refine_codes(struct vec_ivf *g, int use);
/* Tests: a batch of queries is searched list-major (each probed list read
 * once for all the batch's queries that probe it) as the index's size
 * suggests (-1, the default), never (0), or whenever the batch's size and
 * memory allow it (1).  The answers are the same. */
void vec_ivf_list_major(struct vec_ivf *g, int mode);
/* Tests: an index's lists (NULL: not an ivf type, or not trained yet). */
struct vec_ivf *vec_index_ivf(struct vec_index *idx);

#endif
