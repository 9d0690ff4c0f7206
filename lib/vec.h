/*
 * vec.h - the public interface of libvec, the vecutils library.
 *
 * This is the only header the commands (cmd/) and the tests include.
 *
 * Contract, for every function declared here:
 *  - Functions that can fail return int: 0 (VEC_OK) on success, a negative
 *    enum vec_err value on failure.  They never exit(), never print, and
 *    leave no memory behind on failure.
 *  - Where a function takes a `struct vec_errbuf *eb`, a failure also writes
 *    a one-line, human-readable message into it (no trailing newline, no
 *    program name; the command adds "vec-build: " in front).  eb may be NULL.
 *    Messages name the file and the record: "base.csv:17: 127 fields,
 *    expected 128", "base.fvecs: vector 17: dimension 64, expected 128".
 *  - Record numbers in messages are 1-based (the 17th vector, line 17);
 *    vector ids are 0-based.
 *  - Thread safety: distinct objects may be used from distinct threads.  An
 *    opened index may be searched from many threads at once; adding to it
 *    needs exclusive access.
 *  - Ownership: whoever gets an object from an _open or _new function frees it with the
 *    matching _close or _free function.  Pointers returned into an index (keys,
 *    vectors) stay valid until the index is closed or modified.
 */
#ifndef VEC_H
#define VEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VEC_VERSION_MAJOR 0
#define VEC_VERSION_MINOR 1
#define VEC_VERSION_PATCH 0
#define VEC_VERSION_STRING "0.1.0"

/* The library's version, as VEC_VERSION_STRING, at run time. */
const char *vec_version(void);

/* ---- errors ----------------------------------------------------------- */

/* Error codes are stable; values are never renumbered. */
enum vec_err {
	VEC_OK = 0,
	VEC_E_IO = -2,      /* a system call failed (errno is in the message) */
	VEC_E_FORMAT = -3,  /* input vectors are malformed (bad record) */
	VEC_E_CORRUPT = -4, /* an index file is damaged or not an index */
	VEC_E_VERSION = -5, /* an index needs a newer reader */
	VEC_E_NOMEM = -6,   /* out of memory */
	VEC_E_USAGE = -7,   /* API misuse or a bad parameter value */
	VEC_E_DIM = -8,     /* vectors of the wrong dimension for an index */
};

/*
 * Caller-owned detail for a failure.  code is the enum vec_err value, line
 * the library source line that detected it (useful for corruption reports),
 * msg the text.  Thread-safe by construction: each caller has its own.
 */
struct vec_errbuf {
	int code;
	int line;
	uint64_t record; /* a refused vector, 1-based in the call's batch; 0: none */
	char msg[256];   /* when record is set, says what is wrong with it */
};

/* A short static description of an error code ("index file is corrupt"). */
const char *vec_strerror(int code);

/* ---- metrics ------------------------------------------------------------ */

/* Stored on disk: never renumber. */
enum vec_metric {
	VEC_METRIC_L2 = 1,  /* score: Euclidean distance, smaller is better */
	VEC_METRIC_IP = 2,  /* score: inner product, larger is better */
	VEC_METRIC_COS = 3, /* score: cosine similarity, larger is better */
};

/* "l2", "ip", "cos" (also "cosine", "euclidean", "dot") -> metric; -1 if unknown. */
int vec_metric_parse(const char *name);
/* metric -> "l2" / "ip" / "cos"; "?" if unknown. */
const char *vec_metric_name(int metric);

/* ---- distance kernels (distance.c, distance_*.c) ------------------------ */

/* SIMD levels, best last.  Chosen once at run time from the CPU. */
enum vec_simd {
	VEC_SIMD_SCALAR = 0,
	VEC_SIMD_AVX2 = 1,   /* AVX2 + FMA */
	VEC_SIMD_AVX512 = 2, /* AVX-512 F */
	VEC_SIMD_NEON = 3,
};

struct vec_kernels {
	int level;                 /* enum vec_simd */
	const char *name;          /* "scalar", "avx2", "avx512", "neon" */
	/* squared Euclidean distance sum (a[i]-b[i])^2 */
	float (*l2sq)(const float *a, const float *b, size_t d);
	/* inner product sum a[i]*b[i] */
	float (*dot)(const float *a, const float *b, size_t d);
};

/*
 * The kernels in use: the best level this CPU and build support, unless the
 * environment variable VEC_SIMD (scalar|avx2|avx512|neon) or
 * vec_simd_select() asked for a lower one.  Never NULL.
 */
const struct vec_kernels *vec_kernels(void);
/* The kernels of one level, or NULL if this build or CPU cannot run it. */
const struct vec_kernels *vec_kernels_for(int level);
/* Use `level` from now on (process-wide; call before starting threads). */
int vec_simd_select(int level);

/* Convenience wrappers through vec_kernels(). */
float vec_l2sq(const float *a, const float *b, size_t d);
float vec_dot(const float *a, const float *b, size_t d);
/* Scale x to unit length; returns its original norm (0: left unchanged). */
float vec_normalize(float *x, size_t d);

/* ---- top-k (topk.c) --------------------------------------------------- */

/*
 * A bounded heap keeping the k best (id, score) pairs, where "best" is the
 * smallest score.  (Search code negates larger-is-better scores.)  Ties are
 * broken by the smaller id, so results are deterministic.
 */
struct vec_topk {
	size_t k, n;      /* capacity, current size */
	float *score;     /* k entries, heap order (worst at [0]) */
	uint64_t *id;
};
int vec_topk_init(struct vec_topk *h, size_t k);
void vec_topk_free(struct vec_topk *h);
void vec_topk_reset(struct vec_topk *h);
/* Offer one candidate; kept if better than the current worst. */
void vec_topk_push(struct vec_topk *h, uint64_t id, float score);
/* The current worst kept score (+INFINITY while fewer than k are held). */
float vec_topk_worst(const struct vec_topk *h);
/*
 * Sort the kept entries best first into ids[0..k) / scores[0..k), padding
 * the tail with UINT64_MAX / +INFINITY when fewer than k are held; returns
 * how many are real.  The heap is left empty.
 */
size_t vec_topk_extract(struct vec_topk *h, uint64_t *ids, float *scores);

/* ---- exact search kernel (flat.c) ---------------------------------------- */

/*
 * Exact k-nearest-neighbour search of nq queries against n base vectors,
 * row-major, dimension dim.  Fused distance + top-k: no n x nq distance
 * matrix is ever built; the base is streamed once per block of queries.
 *
 *   metric  VEC_METRIC_L2: scores are Euclidean distances, ascending.
 *           VEC_METRIC_IP: scores are inner products, descending.
 *           VEC_METRIC_COS: as IP; base and queries must already be unit
 *           length (the index stores normalised vectors).
 *   norms   for L2, the n squared norms of the base vectors (may be NULL:
 *           then they are computed on the fly); ignored otherwise.
 *   threads worker threads (<= 0: all cores).
 *   ids, scores: nq * k each, row per query, best first, padded with
 *           UINT64_MAX / +INFINITY (L2) or -INFINITY (IP, COS) when n < k.
 * Ties are broken by the smaller id.
 */
int vec_flat_search(const float *base, const float *norms, size_t n,
		    size_t dim, int metric, const float *queries, size_t nq,
		    size_t k, int threads, uint64_t *ids, float *scores);

/* Number of online CPUs (>= 1). */
int vec_ncpu(void);

/* ---- vector streams (io_*.c) ------------------------------------------- */

/* Stream formats.  VEC_FMT_AUTO detects from content. */
enum vec_format {
	VEC_FMT_AUTO = 0,
	VEC_FMT_FVECS = 1,
	VEC_FMT_BVECS = 2,
	VEC_FMT_IVECS = 3,
	VEC_FMT_CSV = 4,
	VEC_FMT_TSV = 5,
	VEC_FMT_NPY = 6,
};

/* "fvecs", "csv", ... -> format; -1 if unknown. */
int vec_format_parse(const char *name);
const char *vec_format_name(int format);

#define VEC_DIM_MAX 65536

struct vec_reader_opts {
	int format;       /* enum vec_format; VEC_FMT_AUTO to detect */
	int header;       /* CSV/TSV: -1 detect, 0 none, 1 first line is a header */
	int keys;         /* CSV/TSV: -1 detect, 0 none, 1 first column is a key */
	const char *name; /* name in messages; NULL: the path, or "stdin" */
};
#define VEC_READER_OPTS_INIT { VEC_FMT_AUTO, -1, -1, NULL }

struct vec_reader;

/*
 * Open a vector stream: path, or "-" / NULL for standard input.  gzip is
 * unwrapped first (also concatenated members).  The first record is read, so
 * that the dimension is known on return; an input holding no vector at all
 * is an error ("empty input").  Reads never wait for more bytes than the
 * records asked for need, so a pipe can feed queries one at a time.
 */
int vec_reader_open(struct vec_reader **out, const char *path,
		    const struct vec_reader_opts *opts, struct vec_errbuf *eb);
void vec_reader_close(struct vec_reader *r);

size_t vec_reader_dim(const struct vec_reader *r);
int vec_reader_format(const struct vec_reader *r);  /* as detected */
int vec_reader_has_keys(const struct vec_reader *r);
int vec_reader_gzip(const struct vec_reader *r);    /* input was gzip */
/* Records returned so far. */
uint64_t vec_reader_count(const struct vec_reader *r);

/*
 * Read up to max vectors into out (max * dim floats).  *got is set to the
 * number read; 0 with a 0 return means end of input.  If keys is not NULL
 * and the stream has keys, keys[i] receives a malloc'd string the caller
 * frees (NULL when the stream has none).  Bad records fail with
 * VEC_E_FORMAT: wrong dimension, NaN/Inf, non-numeric fields, ragged rows,
 * truncated records, corrupt or cut-short gzip.  Vectors before the bad one
 * may already have been returned by earlier calls.
 *
 * Blocking: returns as soon as at least one vector is available (it does
 * not wait to fill max), so interactive pipes work.
 */
int vec_reader_read(struct vec_reader *r, float *out, size_t max,
		    size_t *got, char **keys, struct vec_errbuf *eb);

/* Writers: append one record to f; return VEC_E_IO on a write error. */
int vec_write_fvecs(FILE *f, const float *v, size_t dim);
int vec_write_ivecs(FILE *f, const int32_t *v, size_t dim);
/* One line: optional key (quoted if needed), then the values, sep = ',' or '\t'. */
int vec_write_csv(FILE *f, const char *key, const float *v, size_t dim,
		  char sep);

/* ---- ids and shards (ids.c) ---------------------------------------------- */

/*
 * The shard (0 .. nshards-1) that vector id belongs to: SplitMix64's
 * finaliser of the id, modulo nshards (vec-build(1) gives the arithmetic).
 */
uint32_t vec_shard_of(uint64_t id, uint32_t nshards);

/*
 * A stream of ids, one per vector: ivecs records of dimension 1 (values
 * >= 0), or text with one unsigned decimal integer a line; plain or gzip;
 * path "-" or NULL is standard input.
 */
struct vec_id_reader;
int vec_id_reader_open(struct vec_id_reader **out, const char *path,
		       struct vec_errbuf *eb);
/* Up to max ids; *got 0 at the end.  Bad records fail with VEC_E_FORMAT. */
int vec_id_reader_read(struct vec_id_reader *r, uint64_t *ids, size_t max,
		       size_t *got, struct vec_errbuf *eb);
const char *vec_id_reader_name(const struct vec_id_reader *r);
void vec_id_reader_close(struct vec_id_reader *r);

/* ---- the index (index.c, flat.c, file.c) --------------------------------- */

/* Index types.  Stored on disk: never renumber. */
enum vec_type {
	VEC_TYPE_FLAT = 1, /* exact search over all vectors */
	VEC_TYPE_HNSW = 2, /* hierarchical navigable small-world graph */
	VEC_TYPE_IVF = 3,  /* inverted lists over k-means centroids (IVF-Flat) */
	VEC_TYPE_IVFPQ = 4, /* inverted lists of product-quantiser codes */
	VEC_TYPE_PQ = 5,    /* product-quantiser codes, one list */
	VEC_TYPE_IVFSQ8 = 6, /* inverted lists of 8-bit scalar codes */
	VEC_TYPE_SQ8 = 7,   /* 8-bit scalar codes, one list */
};
/* Is the type one of the inverted-list family (ivf, ivfpq, pq, ivfsq8, sq8)? */
int vec_type_is_ivf(int type);
/* Does the type store codes instead of the vectors (pq, sq8 and their ivf)? */
int vec_type_is_coded(int type);
int vec_type_parse(const char *name); /* "flat" -> VEC_TYPE_FLAT, -1 unknown */
const char *vec_type_name(int type);

struct vec_index;

/* How to make an index.  Zero graph and list parameters mean the defaults. */
struct vec_index_params {
	int type;                 /* enum vec_type */
	int metric;               /* enum vec_metric */
	size_t dim;
	uint32_t M;               /* hnsw: links per node (default 16) */
	uint32_t ef_construction; /* hnsw: build search list (default 200) */
	uint64_t seed;            /* hnsw: level draws; ivf: k-means (default 42) */
	int threads;              /* building and growing; <= 0: all cores */
	uint32_t nlist;           /* ivf: lists (default round(4 sqrt(count))) */
	uint64_t train_size;      /* ivf: k-means training vectors (default
	                             max(64 nlist, 10000), at most count);
	                             with nlist set, also the number of vectors
	                             an index collects before it trains */
	uint32_t pq_m;            /* pq, ivfpq: sub-quantisers (must divide dim;
	                             default: the largest divisor of dim at
	                             most dim / 4 for 8 bits, dim / 2 for 4) */
	unsigned pq_bits;         /* pq, ivfpq: 4 (fast scan) or 8 (default) */
	uint32_t refine;          /* coded types: keep the full vectors and
	                             re-rank refine x k candidates on them by
	                             default (0: keep none, no re-ranking) */
	unsigned sq_bits;         /* hnsw: bits of the traversal codes, 4 or 8
	                             (0: 4 from 256 dimensions on, else 8) */
};
#define VEC_INDEX_PARAMS_INIT { VEC_TYPE_FLAT, VEC_METRIC_L2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* A new, empty, in-memory index. */
int vec_index_create(struct vec_index **out, const struct vec_index_params *p,
		     struct vec_errbuf *eb);
/* The same with default parameters. */
int vec_index_new(struct vec_index **out, int type, int metric, size_t dim,
		  struct vec_errbuf *eb);

/*
 * Inverted-list types train before they store anything: a new index of
 * such a type collects the vectors it is given (vec_index_add) and trains
 * once it holds p->train_size of them when p->nlist was set (default
 * train size max(64 nlist, 65536); pq and sq8 have one list), or else
 * when vec_index_train is called (vec_index_save calls it).  From then on
 * vectors are encoded as they come, and a coded type without refine drops
 * the vectors it collected: memory holds the codes, not the collection.
 * Training on the first vectors of a stream: shuffle a sorted input.
 * vec_index_train on an index that has trained already does nothing.
 */
int vec_index_train(struct vec_index *idx, struct vec_errbuf *eb);

/*
 * Turn an index of type flat (e.g. one filled by vec_index_add) into the
 * type p->type over the same vectors, ids and keys: for hnsw, builds the
 * graph over every vector, on p->threads threads; for ivf, trains the
 * centroids (k-means) and fills the lists (p->nlist must not exceed the
 * count).  p->metric and p->dim must match.  On failure the index is
 * unchanged.  An ivf index can only be made this way: vec_index_create
 * refuses the type (there is nothing to train on yet).
 */
int vec_index_convert(struct vec_index *idx, const struct vec_index_params *p,
		      struct vec_errbuf *eb);

/* Threads used by later vec_index_add calls (graph insertion). */
void vec_index_set_threads(struct vec_index *idx, int threads);

/* Flags for vec_index_open. */
#define VEC_OPEN_WRITE 0x1  /* take the writer lock (flock) for a later save */
#define VEC_OPEN_VERIFY 0x2 /* check every section checksum while opening */

/*
 * Open an index file by mmap, searched in place (no copy of the vectors).
 * The header, section table and every bound are checked first; a damaged,
 * truncated or foreign file is refused with VEC_E_CORRUPT, a too-new one
 * with VEC_E_VERSION.  With VEC_OPEN_WRITE, waits for the exclusive writer
 * lock of that path and holds it until vec_index_close().
 */
int vec_index_open(struct vec_index **out, const char *path, int flags,
		   struct vec_errbuf *eb);
/* The same from a memory buffer the caller keeps alive (fuzzing, tests). */
int vec_index_open_mem(struct vec_index **out, const void *buf, size_t len,
		       int flags, struct vec_errbuf *eb);
void vec_index_close(struct vec_index *idx);

/*
 * Append n vectors (row-major, dim each).  keys: NULL, or n strings (an
 * entry may be NULL: no key).  Ids continue from the current count.  For
 * cos, vectors are stored normalised; a zero vector is refused.  A refused
 * vector (NaN/Inf, or zero under cos) is named by eb->record, so that the
 * caller can give its place in the input.  On failure the index is
 * unchanged.  An index opened from a file is copied into
 * memory on its first modification.
 */
int vec_index_add(struct vec_index *idx, size_t n, const float *x,
		  const char *const *keys, struct vec_errbuf *eb);

/*
 * The same, with the vectors' ids (n of them; none may be UINT64_MAX, which
 * marks a missing result).  An index given ids stores them (section IDS)
 * and answers queries with them; vectors added before the first ids keep
 * their positions as ids.  ids NULL: when the index stores ids, the new
 * vectors get the ids following the largest stored one; otherwise their
 * positions.  An id already in the index, or twice in the batch, is
 * refused (eb->record names the vector), and the index is unchanged.
 */
int vec_index_add_ids(struct vec_index *idx, size_t n, const float *x,
		      const char *const *keys, const uint64_t *ids,
		      struct vec_errbuf *eb);
/* Does the index store ids (else a vector's id is its position)? */
int vec_index_has_ids(const struct vec_index *idx);
/* The id of the vector at position pos, UINT64_MAX when pos is out of range. */
uint64_t vec_index_id(const struct vec_index *idx, uint64_t pos);

struct vec_search_opts {
	int threads;  /* <= 0: all cores */
	size_t ef;    /* hnsw: search list size; 0: the index's default */
	size_t nprobe; /* ivf: lists scanned per query; 0: the index's default;
	                  >= nlist: all of them (exact, as flat) */
	long refine;  /* coded types: re-rank refine x k candidates on the full
	                 vectors; < 0: the index's default; 0: none */
	uint64_t *scanned; /* ivf: if not NULL, list entries scanned are added */
	const char **keys; /* if not NULL: nq * k key pointers, beside ids
	                      (NULL: no key, or no result); valid while the
	                      index is open and unchanged */
};
#define VEC_SEARCH_OPTS_INIT { 0, 0, 0, -1, NULL, NULL }

/*
 * k nearest neighbours of nq queries (nq * dim floats).  ids/scores hold
 * nq * k entries, best first; missing entries are UINT64_MAX and an
 * infinity (+ for l2, - for ip/cos).  ids are the stored ids, or the
 * positions when the index stores none; equal scores are ordered by the
 * smaller id.  Queries of a cos index are normalised by the search (a zero
 * query scores 0 against everything).  opts may be NULL (defaults).  Exact
 * for flat; approximate for hnsw and ivf.
 */
int vec_index_search(const struct vec_index *idx, size_t nq,
		     const float *queries, size_t k,
		     const struct vec_search_opts *opts, uint64_t *ids,
		     float *scores, struct vec_errbuf *eb);

/*
 * Write the index to path atomically: a temporary file in the same
 * directory, fsync, rename over path, fsync of the directory; on failure the
 * temporary file is removed and path is untouched.  If path exists and the
 * index was not opened with VEC_OPEN_WRITE on it, the writer lock of path
 * is taken for the duration of the write.
 */
int vec_index_save(struct vec_index *idx, const char *path,
		   struct vec_errbuf *eb);

/* Re-check every checksum (header, table, each section) and, for a graph,
 * that every link points to a valid node; for ivf, that every list row is
 * the vector of its id and every centroid is finite. */
int vec_index_verify(const struct vec_index *idx, struct vec_errbuf *eb);

/* The key of the vector at position pos, or NULL if it has none. */
const char *vec_index_key(const struct vec_index *idx, uint64_t pos);
int vec_index_has_keys(const struct vec_index *idx);
/* The vector at position pos (normalised for cos), or NULL if out of range
 * or not kept (coded types without refine). */
const float *vec_index_vector(const struct vec_index *idx, uint64_t pos);

#define VEC_SECTIONS_MAX 64

struct vec_section_info {
	char id[5];          /* fourcc, NUL-terminated ("VECS") */
	int required;        /* 1 if readers must understand it */
	uint64_t offset, length;
	uint32_t crc32;      /* as stored */
};

struct vec_index_info {
	int type, metric;
	size_t dim;
	uint64_t count;
	unsigned read_version, write_version;
	uint64_t file_bytes;  /* 0 for an index not backed by a file */
	size_t n_sections;
	struct vec_section_info sections[VEC_SECTIONS_MAX];
	int has_ids;          /* stored ids (else ids are positions) */
	uint64_t id_min, id_max; /* by vec_index_stats; 0 and count - 1
	                            for positions, both 0 when empty */

	/* Graph indexes (type hnsw), by vec_index_stats; zero otherwise. */
	struct {
		uint32_t M, M0, ef_construction;
		uint64_t seed;
		uint64_t entry_point;
		unsigned levels;              /* max level + 1 */
		uint64_t nodes_per_level[32];
		double avg_degree0;
		uint32_t max_degree0;
		uint64_t graph_bytes;         /* adjacency, all levels */
		uint64_t extra_bytes;         /* e.g. a quantised copy */
		unsigned code_bits;           /* of that copy: 4 or 8 */
		size_t default_ef;            /* for k = 10 */
	} hnsw;

	/* Inverted-list indexes (type ivf), by vec_index_stats; zero otherwise. */
	struct {
		uint32_t nlist;
		uint64_t seed, train_size;    /* k-means: seed, vectors trained on */
		uint32_t iterations, max_iterations;
		uint64_t list_min, list_median, list_max, empty_lists;
		uint64_t list_bytes;          /* list sections, vector copy included */
		size_t default_nprobe;
		const char *payload;          /* "flat", "pq" or "sq8" */
		uint32_t pq_m, pq_bits;       /* pq: sub-quantisers, bits each */
		uint32_t refine;              /* default re-rank factor (0: none) */
		uint64_t code_bytes;          /* one list entry's payload */
		uint64_t codebook_bytes;
		uint64_t refine_code_bytes; /* IVFR + IVFS; 0: none */
		uint64_t refine_exact;      /* vectors whose refine code
		                               reconstructs them exactly */
	} ivf;
};
/* What the index is: cheap (header figures only; hnsw/ivf fields left zero). */
void vec_index_info(const struct vec_index *idx, struct vec_index_info *info);
/* vec_index_info plus the graph figures, which read the whole graph. */
void vec_index_stats(const struct vec_index *idx, struct vec_index_info *info);

/* ---- several indexes, merged results (merge.c) --------------------------- */

/*
 * Is path an index file, by its first bytes (the magic of vec-index(5))?
 * 1 if so; 0 if not, or if it cannot be read, or if it is not a regular
 * file (a pipe is never an index, and its bytes must not be consumed).
 */
int vec_index_sniff(const char *path);

/*
 * Can these n indexes be searched as one: the same dimension and metric?
 * A failure names the first index that differs and both values, as
 * "b.vec: metric ip, expected l2 (a.vec's)" (VEC_E_DIM for a dimension,
 * VEC_E_USAGE for a metric).  names[i] names index i in messages; names
 * (or an entry) may be NULL: "index 2".
 */
int vec_shards_check(const struct vec_index *const *idx,
		     const char *const *names, size_t n,
		     struct vec_errbuf *eb);

/*
 * Search n indexes (shards of one collection: each holds some of its
 * vectors) as one.  Each is searched as by vec_index_search, several at
 * once on the opts->threads threads, and the answers of every query are
 * merged into one top k: better score first (l2 smaller; ip, cos larger),
 * equal scores by the smaller id, an id returned by two shards kept once,
 * at its better score.  Scores are the shards' own, unchanged.  ids,
 * scores: nq * k, padded as vec_index_search pads them.  keys (in place
 * of opts->keys, which is ignored): NULL, or
 * nq * k key pointers (NULL where a vector has no key or the slot is
 * empty), valid while the indexes are open.  opts->scanned, if set, gets
 * the sum over the shards.  With n == 1 this is vec_index_search (plus the
 * keys); otherwise a shard's failure is named as by vec_shards_check.
 */
int vec_shards_search(const struct vec_index *const *idx,
		      const char *const *names, size_t n, size_t nq,
		      const float *queries, size_t k,
		      const struct vec_search_opts *opts, uint64_t *ids,
		      float *scores, const char **keys, struct vec_errbuf *eb);

/*
 * The merge of result rows written by `vec-query --mergeable`: every run
 * begins with its description line
 *
 *     #vec-query k=K metric=M format=F keys=Y\n
 *
 * (M l2, ip or cos; F tsv or csv; Y yes or no: a fifth column, the key),
 * followed by its rows "query rank id score[ key]", separated by tabs or
 * commas.  Streams may hold several runs one after another, and several
 * streams may be read.  Every run must have the k and metric of the first;
 * within a run, query numbers never go down, each query's ranks count
 * 1, 2, ... up to at most k, and scores never get better.  A refusal
 * (VEC_E_FORMAT) names the stream and the line: "r.tsv:7: ...".
 *
 * After the last read, vec_merge_finish keeps the best k rows of each
 * query over all runs, in the order of vec_shards_search.  All rows are
 * held in memory until then (queries x runs x k).
 */
struct vec_merge;

struct vec_merge_info {
	size_t k;          /* the runs' k */
	int metric;        /* enum vec_metric */
	int format;        /* the first run's: VEC_FMT_TSV or VEC_FMT_CSV */
	int keys;          /* 1 if any run has the key column */
	uint64_t runs, rows;
	size_t queries;    /* after vec_merge_finish: queries with a row */
};

int vec_merge_new(struct vec_merge **out, struct vec_errbuf *eb);
void vec_merge_free(struct vec_merge *m);
/* Read every run of a file: path, or "-" / NULL for standard input. */
int vec_merge_read(struct vec_merge *m, const char *path,
		   struct vec_errbuf *eb);
/* The same from an open stream; name (NULL: "stdin") is for messages. */
int vec_merge_read_stream(struct vec_merge *m, FILE *f, const char *name,
			  struct vec_errbuf *eb);
/*
 * Merge what was read: the best k rows of each query (k 0: the runs' k;
 * more than the runs' k is refused).  No run at all is an error.
 */
int vec_merge_finish(struct vec_merge *m, size_t k, struct vec_errbuf *eb);
void vec_merge_info(const struct vec_merge *m, struct vec_merge_info *info);
/*
 * After vec_merge_finish: the i-th query that has rows (i < info.queries,
 * in increasing query number).  *query receives its number; ids, scores
 * (and keys, if not NULL) receive k entries, padded as by
 * vec_index_search.  Returns the number of real entries.  Keys stay valid
 * until vec_merge_free.  An i past the last gives the empty answer (all
 * padding) and *query UINT64_MAX.
 */
size_t vec_merge_result(const struct vec_merge *m, size_t i, uint64_t *query,
			uint64_t *ids, float *scores, const char **keys);

/* ---- small utilities (util.c) ------------------------------------------- */

/* Strict number parsing for option values: whole string, in range. */
int vec_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
