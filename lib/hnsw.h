/*
 * hnsw.h - the hierarchical navigable small-world graph (private to lib/).
 *
 * The graph is one part of an index of type VEC_TYPE_HNSW; the vectors
 * themselves belong to the index (sections VECS and NORM, shared with the
 * flat type) and are passed in as a struct vec_vectors view.  The graph
 * either owns its memory (built or grown here) or points into a mapped
 * file (opened), exactly like the index's vectors; the first change to an
 * opened graph copies it into owned memory.
 *
 * Contract:
 *  - Node ids are uint32_t (at most 2^32 - 2 nodes; UINT32_MAX is "none").
 *  - Scores returned by search are those of vec_flat_search: Euclidean
 *    distance for l2 (ascending), inner product for ip and cos
 *    (descending; cos vectors and queries are unit length already).
 *  - Padding when fewer than k results exist: UINT64_MAX and +INFINITY
 *    (l2) or -INFINITY (ip, cos).
 *  - Search may run from many threads at once on one graph; insert needs
 *    exclusive access to the graph (it threads internally).
 *  - With one thread and a fixed seed, build and insert are deterministic,
 *    and the sections written are byte-for-byte reproducible.
 */
#ifndef VEC_HNSW_H
#define VEC_HNSW_H

#include <stddef.h>
#include <stdint.h>

#include "file.h"
#include "vec.h"

/* The vectors a graph indexes (owned by the index, row-major). */
struct vec_vectors {
	const float *x;      /* count x dim; unit length for cos */
	const float *norms;  /* squared norms for l2, else NULL */
	size_t dim;
	int metric;          /* enum vec_metric */
	uint64_t count;
};

struct vec_hnsw_params {
	uint32_t M;               /* links per node on upper levels; 2M on level 0 */
	uint32_t ef_construction; /* candidate list size while inserting */
	uint64_t seed;            /* level draws */
	unsigned sq_bits;         /* traversal codes: 4 or 8 bits a component;
				     0: vec_hnsw_default_bits(dim) */
};
#define VEC_HNSW_DEFAULT_M 16
#define VEC_HNSW_DEFAULT_EFC 200
#define VEC_HNSW_DEFAULT_SEED 42
#define VEC_HNSW_SQ4_DIM 256 /* default 4-bit codes from this dimension on */

/* The traversal codes' bits by default: 4 for vectors of at least
 * VEC_HNSW_SQ4_DIM components, else 8. */
static inline unsigned vec_hnsw_default_bits(size_t dim)
{
	return dim >= VEC_HNSW_SQ4_DIM ? 4 : 8;
}

/* Section ids the graph writes (all REQUIRED except where noted). */
#define VEC_SEC_HNSP VEC_FOURCC('H', 'N', 'S', 'P') /* parameters, entry point */
#define VEC_SEC_HNS0 VEC_FOURCC('H', 'N', 'S', '0') /* level 0, fixed rows (v1, v2) */
#define VEC_SEC_HNSL VEC_FOURCC('H', 'N', 'S', 'L') /* level 0, compact (v3) */
#define VEC_SEC_HNSU VEC_FOURCC('H', 'N', 'S', 'U') /* upper levels */
#define VEC_HNSW_MAX_SECTIONS 6

struct vec_hnsw;

int vec_hnsw_create(struct vec_hnsw **out, const struct vec_hnsw_params *p,
		    size_t dim, int metric, struct vec_errbuf *eb);
void vec_hnsw_free(struct vec_hnsw *g);

/* Nodes the graph holds (those inserted so far). */
uint64_t vec_hnsw_count(const struct vec_hnsw *g);

/*
 * Insert nodes [vec_hnsw_count(g), v->count): the vectors must already be
 * in v.  threads <= 0: all cores.  On failure (out of memory) the graph is
 * left as it was before the call.
 */
int vec_hnsw_insert(struct vec_hnsw *g, const struct vec_vectors *v,
		    int threads, struct vec_errbuf *eb);

/*
 * k approximate nearest neighbours of nq queries (already normalised for
 * cos); ef is the search list size (0: vec_hnsw_default_ef).  ids/scores
 * hold nq * k entries, best first.
 */
int vec_hnsw_search(const struct vec_hnsw *g, const struct vec_vectors *v,
		    const float *queries, size_t nq, size_t k, size_t ef,
		    int threads, uint64_t *ids, float *scores,
		    struct vec_errbuf *eb);
size_t vec_hnsw_default_ef(const struct vec_hnsw *g, size_t k);

/*
 * The sections that store the graph, for vec_file_write: fills secs[0..*n)
 * (at most VEC_HNSW_MAX_SECTIONS).  Their data stay valid until the graph
 * is changed or freed.
 */
int vec_hnsw_sections(struct vec_hnsw *g, struct vec_file_section *secs,
		      size_t *n, struct vec_errbuf *eb);

/*
 * Attach to the sections of a parsed file, in place (no copy of the
 * adjacency).  Checks every size, offset and count against the file and
 * v->count before use; O(count) at most (link targets are checked by
 * vec_hnsw_check, and search never follows a link >= count).
 */
int vec_hnsw_open(struct vec_hnsw **out, const struct vec_file *f,
		  const struct vec_vectors *v, struct vec_errbuf *eb);

/* Every link points to a valid node, degrees within bounds (--verify). */
int vec_hnsw_check(const struct vec_hnsw *g, struct vec_errbuf *eb);

struct vec_hnsw_stats {
	uint32_t M, M0, ef_construction;
	uint64_t seed;
	uint64_t entry_point;
	unsigned levels;          /* max level + 1 */
	uint64_t nodes_per_level[32];
	double avg_degree0;       /* level 0 */
	uint32_t max_degree0;
	uint64_t graph_bytes;     /* adjacency bytes of all levels */
	uint64_t extra_bytes;     /* e.g. a quantised copy of the vectors */
	unsigned code_bits;       /* of that copy: 4 or 8 */
};
void vec_hnsw_stats(const struct vec_hnsw *g, struct vec_hnsw_stats *s);

#endif
