/*
 * ivf.c - inverted lists over k-means centroids, with a choice of payload:
 * the vectors themselves (IVF-Flat), residual product-quantiser codes
 * (IVF-PQ, 8-bit tables or the 4-bit fast scan), or residual 8-bit scalar
 * codes (IVF-SQ8).
 *
 * Sections (man/vec-index.5 gives every byte and rule; R-IVF-n below):
 *   IVFP required  64 bytes: version, nlist, count, seed, train size,
 *                  iterations run and allowed, dim, metric, codec, PQ
 *                  sub-quantisers and bits, refine factor, reserved zeros
 *   IVFC required  nlist x dim float32 centroids
 *   IVFO required  nlist + 1 u64: list j is positions [off[j], off[j+1])
 *   IVFI required  count u32: the insertion id of each position
 *   IVFV flat      count x dim float32: the vector of each position
 *   IVFQ coded     the codes of the positions: count x code bytes, or for
 *                  4-bit PQ each list's codes in blocks of 32 (pq.h), the
 *                  lists' blocks one after the other
 *   IVFX coded     PQ: m x 2^bits x dim/m float32 centroids; SQ8: lo[dim],
 *                  step[dim] float32
 *   IVFN sq8, l2   count float32: squared norm of each code's residual
 *
 * Within a list, members are in increasing id order.  The flat payload
 * repeats the vectors of VECS in list order, so that a probe reads one
 * contiguous block.  Coded payloads encode the residual x - c of a vector
 * against its list's centroid c, so that the codes spend their bits on
 * what the centroid does not already say.
 *
 * In memory, each list is its own array (owned) or a window into the
 * mapped sections (opened); the first change copies every list.  Adding
 * appends to the lists; vec_ivf_sections gathers them for writing.
 */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "ivf.h"
#include "kernels.h"
#include "kmeans.h"
#include "pq.h"
#include "sq8.h"

#define IVFP_BYTES 64
#define IVFP_VERSION 1
#define PROBE_BATCH 1024 /* queries whose lists are ranked at once ... */
#define PROBE_ENTRIES (1u << 16) /* ... holding at most this many list numbers
				  (a search's arrays are new memory, whose
				  first touch of each page costs more than
				  using it: kept small, they stay so) */
#define CODEC_TRAIN_MAX 16384 /* residuals the codec is trained on, at most:
				 what k-means samples for 256 centroids */
#define ENCODE_CHUNK 1024 /* vectors encoded per task */
#define RANK_CHUNK 512 /* centroids scored at once, per block of queries */
#define RANK_FIRST 64  /* the first chunk: then each lane's threshold is set */
#define RANK_PROBE_MAX 4096 /* larger nprobe: ranked by vec_flat_search */
#define RANK_RADIX_MIN 48   /* more lists than this: sorted by radix_keys */
#define LMAJOR_MIN 8 /* batches from this size read each probed list
			once for all their queries (lmajor_fits) ... */
#define LMAJOR_CODED_LIST 4096 /* ... when their (query, list) pairs are
				  at least nlist / 4, their lists (coded)
				  average this many bytes, ... */
#define LMAJOR_CANDS_MAX (1u << 20) /* ... their candidates are no more
				       (4 x as many keys) ... */
#define LMAJOR_QPART_MAX ((size_t)16 << 20) /* ... and their queries' own
					       tables no more bytes */
#define PRE_ALIGN ((size_t)2 << 20) /* a huge page */

struct list {
	uint64_t len, cap;        /* entries; cap: owned room */
	const uint32_t *ids;
	const uint8_t *data;      /* flat rows, codes, or 4-bit blocks */
	const float *norms;       /* sq8 under l2: residual code norms */
	uint32_t *own_ids;
	uint8_t *own_data;
	float *own_norms;
};

struct vec_ivf {
	uint32_t nlist;
	size_t dim;
	int metric;
	uint64_t count;
	uint64_t seed, train_size;
	uint32_t iters, max_iter;
	int codec;
	uint32_t refine;
	struct vec_pq pq;         /* codec PQ (pq.cent: the codebook) */
	struct vec_sq8 sq;        /* codec SQ8 (lo, scale: the codebook) */
	size_t esize;             /* bytes of one entry (not for 4 bits) */

	const float *cent;        /* nlist x dim */
	const float *cb;          /* codebook: PQ centroids, or SQ8 lo/step */
	size_t cb_floats;
	struct list *lists;       /* nlist */
	int owned;                /* lists own their arrays */

	float *own_cent, *own_cb;
	float *own_cbt;           /* PQ: the codebook transposed (pq.cent_t) */
	/* Gathered for writing by vec_ivf_sections. */
	uint64_t *w_off;
	uint32_t *w_ids;
	uint8_t *w_data;
	float *w_norms;
	uint8_t ivfp[IVFP_BYTES];

	/*
	 * 8-bit PQ under l2: the part of each list's table that does not
	 * depend on the query, pre[j][i][c] = |b_ic|^2 + 2 <c_j, b_ic> (b_ic centroid c
	 * of sub-space i, c_j list j's centroid, in that sub-space), made the
	 * first time a search probes list j (pre_state[j]: once_begin), so
	 * that every search computes its tables the same way.  NULL: not
	 * used (or no memory).
	 */
	float *pre;
	_Atomic unsigned char *pre_state;
	/* For the list ranking, made by the first search: the largest
	 * centroid norm and each centroid's squared norm (summed in double,
	 * rounded once, so the same at every SIMD level); cstat_state: see
	 * once_begin. */
	double cmax;
	float *cnorm;
	_Atomic unsigned char cstat_state;
	/* The centroids in bf16 pairs with their bound factors (kernels.h)
	 * and the largest of each factor, for ranking on CPUs with
	 * AVX512_BF16: made by the first search that can use them
	 * (cbf_state as cstat_state); cbf NULL: not made (unfit values, or
	 * no memory).  cbf_l2: the factors are for l2. */
	uint32_t *cbf;
	float *cbf_row;
	double cbf_max[3];
	int cbf_l2;
	_Atomic unsigned char cbf_state;

	/*
	 * Refine codes (sections IVFR, IVFS; coded payloads that keep the
	 * vectors): an 8-bit copy of every vector in id order, and for each
	 * an upper bound on the distance from the vector to its code's
	 * reconstruction.  The refine reads these first and re-ranks on the
	 * full vectors only the candidates whose bound lets them reach the
	 * k best (rerank_coded), with the same answers as re-ranking all.
	 * rq_head: dim offsets, dim steps, then count bounds (one block, as
	 * stored); NULL: no refine codes.  rq_use is 0 only when a test
	 * asks to ignore them.
	 */
	int rq_use;
	int lmajor; /* tests: -1 list-major as lmajor_fits says, 0 never,
		       1 whenever the batch allows it */
	struct vec_sq8 rq;
	const float *rq_head;
	const uint8_t *rq_codes;
	float *own_rq_head;
	uint8_t *own_rq_codes;
	uint64_t rq_cap;          /* vectors the owned arrays hold */
	float *rq_scale;          /* the steps, padded with zeros to stride */
	double rq_range, rq_lonorm; /* || 255 step ||, || lo || */
	int rq_unit;              /* every step 0 or 1, every lo a small
				     integer: rq_value is lo + c in floats */
};

static int pq4(const struct vec_ivf *g)
{
	return g->codec == VEC_IVF_PQ && g->pq.nbits == 4;
}

/* Payload bytes of a list of len entries. */
static uint64_t data_bytes(const struct vec_ivf *g, uint64_t len)
{
	if (pq4(g))
		return vec_pq4_packed_size((size_t)len, g->pq.m);
	return len * g->esize;
}

uint32_t vec_ivf_default_nlist(uint64_t n)
{
	double r = floor(4.0 * sqrt((double)n) + 0.5);
	if (r > (double)n)
		r = (double)n;
	if (r > VEC_IVF_NLIST_MAX)
		r = VEC_IVF_NLIST_MAX;
	return r < 1 ? 1 : (uint32_t)r;
}

uint32_t vec_ivf_default_pq_m(size_t dim, unsigned bits)
{
	size_t cap = bits == 4 ? dim / 2 : dim / 4;
	for (size_t m = cap; m > 1; m--)
		if (dim % m == 0)
			return (uint32_t)m;
	return 1;
}

size_t vec_ivf_default_nprobe(const struct vec_ivf *g)
{
	size_t p = (g->nlist + 8) / 16;
	return p < 1 ? 1 : p;
}

uint64_t vec_ivf_count(const struct vec_ivf *g)
{
	return g->count;
}

void vec_ivf_layout(const struct vec_ivf *g, int *codec, uint32_t *nlist)
{
	*codec = g->codec;
	*nlist = g->nlist;
}

int vec_ivf_keeps_vectors(const struct vec_ivf *g)
{
	return g->codec == VEC_IVF_FLAT || g->refine > 0;
}

static void free_lists(struct vec_ivf *g)
{
	if (!g->lists)
		return;
	for (uint32_t j = 0; j < g->nlist; j++) {
		free(g->lists[j].own_ids);
		free(g->lists[j].own_data);
		free(g->lists[j].own_norms);
	}
	free(g->lists);
	g->lists = NULL;
}

static void free_written(struct vec_ivf *g)
{
	free(g->w_off);
	free(g->w_ids);
	free(g->w_data);
	free(g->w_norms);
	g->w_off = NULL;
	g->w_ids = NULL;
	g->w_data = NULL;
	g->w_norms = NULL;
}

void vec_ivf_free(struct vec_ivf *g)
{
	if (!g)
		return;
	free_lists(g);
	free_written(g);
	free(g->own_cent);
	free(g->own_cb);
	free(g->pre);
	free((void *)g->pre_state);
	free(g->cnorm);
	free(g->cbf);
	free(g->cbf_row);
	free(g->own_cbt);
	free(g->own_rq_head);
	free(g->own_rq_codes);
	free(g->rq_scale);
	free(g);
}

int vec_ivf_check_params(const struct vec_ivf_params *p, size_t dim,
			 struct vec_errbuf *eb)
{
	if (p->nlist > VEC_IVF_NLIST_MAX)
		return vec_err(eb, VEC_E_USAGE, "nlist %u is larger than %u",
			       p->nlist, VEC_IVF_NLIST_MAX);
	if (p->codec == VEC_IVF_PQ) {
		unsigned bits = p->pq_bits ? p->pq_bits : 8;
		if (bits != 4 && bits != 8)
			return vec_err(eb, VEC_E_USAGE,
				       "PQ codes have 4 or 8 bits per sub-quantiser, not %u",
				       bits);
		if (p->pq_m && (p->pq_m > dim || dim % p->pq_m))
			return vec_err(eb, VEC_E_USAGE,
				       "%u sub-quantisers do not divide the dimension %zu",
				       p->pq_m, dim);
	} else if (p->pq_m || p->pq_bits) {
		return vec_err(eb, VEC_E_USAGE, "PQ parameters given for a payload without PQ");
	}
	if (p->codec == VEC_IVF_FLAT && p->refine)
		return vec_err(eb, VEC_E_USAGE,
			       "an ivf index of full vectors needs no refinement");
	if (p->codec != VEC_IVF_FLAT && p->codec != VEC_IVF_PQ &&
	    p->codec != VEC_IVF_SQ8)
		return vec_err(eb, VEC_E_USAGE, "unknown ivf payload %d", p->codec);
	if (p->refine > 1000)
		return vec_err(eb, VEC_E_USAGE, "refine must be at most 1000");
	return VEC_OK;
}

/* ---- encoding ---- */

struct encode {
	const struct vec_ivf *g;
	const float *x;          /* n vectors */
	const uint32_t *assign;  /* their lists */
	uint64_t n;
	uint8_t *codes;          /* n x code bytes (4 bits: plain, unpacked) */
	float *norms;            /* sq8 under l2 */
	uint8_t *rq_codes;       /* refine codes of the n, or NULL ... */
	float *rq_bound;         /* ... and their bounds */
	float *res;              /* scratch: ENCODE_CHUNK x dim per worker */
};

static void rq_encode(const struct vec_ivf *g, const float *x, uint64_t n,
		      uint8_t *codes, float *bound);

static size_t code_bytes(const struct vec_ivf *g)
{
	if (g->codec == VEC_IVF_PQ)
		return vec_pq_code_size(g->pq.m, g->pq.nbits);
	return g->esize;
}

/* Rows [chunk * ENCODE_CHUNK, ...) of an encode. */
static void encode_task(void *ctx, size_t chunk, int worker)
{
	const struct encode *e = ctx;
	const struct vec_ivf *g = e->g;
	uint64_t i0 = (uint64_t)chunk * ENCODE_CHUNK;
	size_t n = e->n - i0 < ENCODE_CHUNK ? (size_t)(e->n - i0) : ENCODE_CHUNK;
	float *res = e->res + (size_t)worker * ENCODE_CHUNK * g->dim;
	size_t cs = code_bytes(g);

	for (size_t i = 0; i < n; i++) {
		const float *x = e->x + (i0 + i) * g->dim;
		const float *c = g->cent + (size_t)e->assign[i0 + i] * g->dim;
		for (size_t d = 0; d < g->dim; d++)
			res[i * g->dim + d] = x[d] - c[d];
	}
	if (g->codec == VEC_IVF_PQ)
		vec_pq_encode(&g->pq, res, n, e->codes + i0 * cs);
	else
		vec_sq8_encode(&g->sq, res, n, e->codes + i0 * cs,
			       e->norms ? e->norms + i0 : NULL);
	if (e->rq_codes)
		rq_encode(g, e->x + i0 * g->dim, n, e->rq_codes + i0 * g->rq.stride,
			  e->rq_bound + i0);
}

/* Codes of n vectors (already assigned to lists), on threads threads. */
static int encode(const struct vec_ivf *g, const float *x, uint64_t n,
		  const uint32_t *assign, int threads, uint8_t *codes,
		  float *norms, uint8_t *rq_codes, float *rq_bound,
		  struct vec_errbuf *eb)
{
	struct encode e;
	size_t nchunks = (size_t)((n + ENCODE_CHUNK - 1) / ENCODE_CHUNK);

	if (threads <= 0)
		threads = vec_ncpu();
	if ((size_t)threads > nchunks)
		threads = (int)(nchunks ? nchunks : 1);
	e.g = g;
	e.x = x;
	e.assign = assign;
	e.n = n;
	e.codes = codes;
	e.norms = norms;
	e.rq_codes = rq_codes;
	e.rq_bound = rq_bound;
	e.res = malloc((size_t)threads * ENCODE_CHUNK * g->dim * sizeof *e.res);
	if (!e.res)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	vec_pool_run(threads, nchunks, encode_task, &e);
	free(e.res);
	return VEC_OK;
}

/* ---- training ---- */

/* Point the codec at its codebook (owned, or in a mapped file). */
static void set_codebook(struct vec_ivf *g, const float *cb)
{
	g->cb = cb;
	g->pq.cent = cb;
	if (g->codec == VEC_IVF_SQ8)
		g->sq = vec_sq8_view(g->dim, cb, cb + g->dim);
}

/* Once the PQ codebook is final: its transposed copy for the tables
 * (without memory for it, the tables are made from the codebook as it
 * is).  The room comes with the index (new_ivf): taken after training,
 * it would sit above the training's freed memory and keep malloc from
 * returning that (glove-100: 50 MB more peak memory). */
static void pq_transpose(struct vec_ivf *g)
{
	if (!g->own_cbt) /* only PQ has the room */
		return;
	vec_pq_transpose(&g->pq, g->own_cbt);
	g->pq.cent_t = g->own_cbt;
}

static struct vec_ivf *new_ivf(const struct vec_ivf_params *p, size_t dim,
			       int metric, uint32_t nlist)
{
	struct vec_ivf *g = calloc(1, sizeof *g);

	if (!g)
		return NULL;
	g->nlist = nlist;
	g->lmajor = -1;
	g->dim = dim;
	g->metric = metric;
	g->seed = p->seed ? p->seed : VEC_KMEANS_DEFAULT_SEED;
	g->max_iter = VEC_KMEANS_DEFAULT_ITERS;
	g->codec = p->codec;
	g->refine = p->refine;
	g->owned = 1;
	g->esize = dim * sizeof(float);
	if (p->codec == VEC_IVF_PQ) {
		g->pq.dim = dim;
		g->pq.nbits = p->pq_bits ? p->pq_bits : 8;
		g->pq.m = p->pq_m ? p->pq_m : vec_ivf_default_pq_m(dim, g->pq.nbits);
		g->pq.dsub = dim / g->pq.m;
		g->pq.ksub = (size_t)1 << g->pq.nbits;
		g->cb_floats = g->pq.m * g->pq.ksub * g->pq.dsub;
		g->esize = vec_pq_code_size(g->pq.m, g->pq.nbits);
	} else if (p->codec == VEC_IVF_SQ8) {
		g->cb_floats = 2 * dim;
		g->esize = vec_sq8_stride(dim);
	}
	g->lists = calloc(nlist, sizeof *g->lists);
	g->own_cent = malloc((size_t)nlist * dim * sizeof *g->own_cent);
	if (g->cb_floats)
		g->own_cb = malloc(g->cb_floats * sizeof *g->own_cb);
	if (p->codec == VEC_IVF_PQ)
		g->own_cbt = malloc(g->cb_floats * sizeof *g->own_cbt);
	if (!g->lists || !g->own_cent || (g->cb_floats && !g->own_cb)) {
		vec_ivf_free(g);
		return NULL;
	}
	set_codebook(g, g->own_cb);
	g->cent = g->own_cent;
	if (p->codec == VEC_IVF_PQ && metric == VEC_METRIC_L2 &&
	    g->pq.nbits == 8) {
		/* 4 bits: a list's table straight from the residual costs
		 * dim x 16 multiply-adds, less than reading (and first
		 * touching) its stored part, m x 16 floats a list.
		 * Pages are touched only as lists are probed; huge pages where
		 * the system gives them, since a fault per 4 KiB page costs
		 * more than filling it (8-bit tables run to 1 KiB a list and
		 * sub-quantiser). */
		size_t bytes = (size_t)nlist * g->pq.m * g->pq.ksub * sizeof *g->pre;
		void *mem = NULL;
		if (posix_memalign(&mem, PRE_ALIGN, bytes) == 0) {
			g->pre = mem;
#ifdef MADV_HUGEPAGE
			if (bytes >= PRE_ALIGN)
				(void)madvise(mem, bytes, MADV_HUGEPAGE); /* a hint */
#endif
		}
		g->pre_state = calloc(nlist, 1);
		if (!g->pre || !g->pre_state) {
			free(g->pre);
			free((void *)g->pre_state);
			g->pre = NULL;
			g->pre_state = NULL;
		}
	}
	return g;
}

/* Train the codec on the residuals of (a stride through) the n vectors. */
/* ns of the n rows of x (dim floats each), evenly spread, into out. */
static void sample_rows(const float *x, uint64_t n, uint64_t ns, size_t dim,
			float *out)
{
	for (uint64_t i = 0; i < ns; i++)
		memcpy(out + i * dim, x + (i * n / ns) * dim, dim * sizeof *out);
}

/*
 * Train the codec on the residuals of ns of the n vectors, evenly spread
 * (rows i n / ns), to their nearest centroids.  The residuals are never
 * made as one matrix (ns x dim floats, 51 MB for fashion-mnist, a quarter
 * of its vectors, would be most of the build's peak beyond the vectors):
 * the rows are assigned a chunk at a time, PQ makes each sub-space's part
 * as it trains it (vec_pq_train_res), and SQ8 widens its ranges by each
 * chunk's residuals (vec_sq8_range).  The codebooks are those of training on the whole matrix.
 */
#define ASSIGN_CHUNK 1024 /* rows copied and assigned at once */

static int train_codec(struct vec_ivf *g, const float *x, uint64_t n,
		       int threads, struct vec_errbuf *eb)
{
	uint64_t ns = n < CODEC_TRAIN_MAX ? n : CODEC_TRAIN_MAX;
	size_t dim = g->dim;
	uint64_t *rows = NULL;
	float *buf = NULL;
	uint32_t *a = NULL;
	int rc = VEC_OK;

	if (g->codec == VEC_IVF_FLAT)
		return VEC_OK;
	if (g->codec == VEC_IVF_PQ && ns < g->pq.ksub)
		return vec_err(eb, VEC_E_USAGE,
			       "%u-bit PQ needs at least %zu vectors to train on, not %llu",
			       g->pq.nbits, g->pq.ksub, (unsigned long long)ns);
	rows = malloc((size_t)ns * sizeof *rows);
	buf = malloc(ASSIGN_CHUNK * dim * sizeof *buf);
	a = malloc((size_t)ns * sizeof *a);
	if (!rows || !buf || !a) {
		rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
		goto done;
	}
	for (uint64_t i = 0; i < ns; i++)
		rows[i] = i * n / ns;
	for (uint64_t i0 = 0; i0 < ns && !rc; i0 += ASSIGN_CHUNK) {
		uint64_t m = ns - i0 < ASSIGN_CHUNK ? ns - i0 : ASSIGN_CHUNK;
		for (uint64_t i = 0; i < m; i++)
			memcpy(buf + i * dim, x + rows[i0 + i] * dim, dim * sizeof *buf);
		rc = vec_kmeans_assign(buf, m, dim, g->cent, g->nlist, threads,
				       a + i0, NULL, eb);
		if (rc || g->codec != VEC_IVF_SQ8)
			continue;
		/* SQ8: the chunk's residuals widen the ranges. */
		for (uint64_t i = 0; i < m; i++) {
			const float *c = g->cent + (size_t)a[i0 + i] * dim;
			for (size_t d = 0; d < dim; d++)
				buf[i * dim + d] -= c[d];
		}
		vec_sq8_range(g->own_cb, g->own_cb + dim, buf, m, dim, i0 == 0);
	}
	if (rc)
		goto done;
	if (g->codec == VEC_IVF_PQ)
		rc = vec_pq_train_res(g->own_cb, x, rows, g->cent, a, ns, dim,
				      g->pq.m, g->pq.nbits, g->seed, threads, eb);
	else
		vec_sq8_steps(g->own_cb, g->own_cb + dim, dim, 8);
done:
	free(rows);
	free(buf);
	free(a);
	return rc;
}

/* ---- refine codes ---- */

/* Point the refine codes at head (lo, steps, bounds) and codes; the
 * padded steps and the two norms the bounds need. */
static int rq_attach(struct vec_ivf *g, const float *head, const uint8_t *codes)
{
	size_t dim = g->dim, stride = vec_sq8_stride(dim);
	double r = 0, l = 0;

	if (!g->rq_scale && !(g->rq_scale = calloc(stride, sizeof *g->rq_scale)))
		return -1;
	g->rq_head = head;
	g->rq_codes = codes;
	g->rq = vec_sq8_view(dim, head, head + dim);
	for (size_t d = 0; d < dim; d++) {
		g->rq_scale[d] = head[dim + d];
		r += 255.0 * head[dim + d] * (255.0 * head[dim + d]);
		l += (double)head[d] * head[d];
	}
	g->rq_range = sqrt(r) * (1 + 1e-9);
	g->rq_lonorm = sqrt(l) * (1 + 1e-9);
	g->rq_unit = 1;
	for (size_t d = 0; d < dim; d++)
		g->rq_unit &= (head[dim + d] == 0 || head[dim + d] == 1) &&
			      head[d] == rintf(head[d]) && fabsf(head[d]) < 8388608.0f;
	g->rq_use = 1;
	return 0;
}

/* The owned arrays with room for total vectors (copied from the file's
 * the first time). */
static int rq_reserve(struct vec_ivf *g, uint64_t total)
{
	size_t dim = g->dim, stride = vec_sq8_stride(dim);
	uint64_t cap;
	float *head;
	uint8_t *codes;

	if (g->own_rq_head && total <= g->rq_cap)
		return 0;
	/* A file's codes are copied at their size; growth adds half. */
	cap = g->own_rq_head ? total + total / 2 + 256 : total;
	head = malloc((2 * dim + cap) * sizeof *head);
	codes = malloc(cap ? cap * stride : 1);
	if (!head || !codes) {
		free(head);
		free(codes);
		return -1;
	}
	memcpy(head, g->rq_head, (2 * dim + g->count) * sizeof *head);
	if (g->count)
		memcpy(codes, g->rq_codes, g->count * stride);
	free(g->own_rq_head);
	free(g->own_rq_codes);
	g->own_rq_head = head;
	g->own_rq_codes = codes;
	g->rq_cap = cap;
	return rq_attach(g, head, codes);
}

/* Component d of a refine code's reconstruction, lo + step c: in
 * double, then rounded to a float (rq_encode and rq_exact agree on it). */
static inline float rq_value(const struct vec_ivf *g, size_t d, uint8_t c)
{
	return (float)((double)g->rq.lo[d] + (double)g->rq.scale[d] * c);
}

/*
 * Rows [0, n) of x into codes and bounds: the bound is the distance to
 * the reconstruction lo + step c, in double, rounded up to a float.  It
 * is 0 exactly when the code is exact, every component's rq_value the
 * vector's own float, bit for bit (so that the refine may score the code
 * instead of the vector: rq_exact); an inexact code's bound is at least
 * the smallest float above 0.  Data of small integers (pixels, counts)
 * get exact codes: rq_train gives them steps of 1.
 */
static void rq_encode(const struct vec_ivf *g, const float *x, uint64_t n,
		      uint8_t *codes, float *bound)
{
	size_t dim = g->dim, stride = g->rq.stride;

	for (uint64_t i = 0; i < n; i++) {
		const float *v = x + i * dim;
		uint8_t *c = codes + i * stride;
		double e = 0;
		float f;
		int exact = 1;
		vec_sq8_encode(&g->rq, v, 1, c, NULL);
		for (size_t d = 0; d < dim; d++) {
			double r = (double)g->rq.lo[d] + (double)g->rq.scale[d] * c[d];
			float rf = rq_value(g, d, c[d]);
			e += ((double)v[d] - r) * ((double)v[d] - r);
			exact &= !memcmp(&rf, &v[d], sizeof rf);
		}
		e = sqrt(e) * (1 + 1e-12);
		f = (float)e;
		if ((double)f < e)
			f = nextafterf(f, INFINITY);
		bound[i] = exact ? 0.0f : f > 0 ? f : nextafterf(0.0f, 1.0f);
	}
}

/*
 * A component whose trained values are all small integers (a range of at
 * most 255, as pixels or counts) gets the step 1 from its minimum, so
 * that such vectors have exact codes (rq_encode).  The step is then at
 * least the 8-bit step of that range, so every trained value still codes
 * within half a step.
 */
static void integer_steps(const float *lo, float *scale, const float *x,
			  uint64_t n, size_t dim)
{
	for (size_t d = 0; d < dim; d++) {
		int ok = scale[d] > 0 && lo[d] == rintf(lo[d]) &&
			 fabsf(lo[d]) < 16777216.0f;
		for (uint64_t i = 0; ok && i < n; i++) {
			float a = x[i * dim + d];
			ok = a == rintf(a) && a - lo[d] <= 255.0f;
		}
		if (ok)
			scale[d] = 1.0f;
	}
}

/* Fit the refine codes' quantiser to (a stride through) the n vectors. */
static int rq_train(struct vec_ivf *g, const float *x, uint64_t n)
{
	uint64_t ns = n < CODEC_TRAIN_MAX ? n : CODEC_TRAIN_MAX;
	float *smp = NULL, *head;

	head = malloc(2 * g->dim * sizeof *head);
	if (!head)
		return -1;
	if (ns < n) {
		if (!(smp = malloc((size_t)ns * g->dim * sizeof *smp))) {
			free(head);
			return -1;
		}
		sample_rows(x, n, ns, g->dim, smp);
	}
	vec_sq8_train(head, head + g->dim, smp ? smp : x, ns, g->dim);
	integer_steps(head, head + g->dim, smp ? smp : x, ns, g->dim);
	free(smp);
	g->own_rq_head = head;
	g->rq_cap = 0;
	if (rq_attach(g, head, NULL))
		return -1;
	return 0;
}

void vec_ivf_use_refine_codes(struct vec_ivf *g, int use)
{
	g->rq_use = use;
}

void vec_ivf_list_major(struct vec_ivf *g, int mode)
{
	g->lmajor = mode;
}

int vec_ivf_train(struct vec_ivf **out, const struct vec_ivf_params *p,
		  const float *x, uint64_t n, size_t dim, int metric,
		  int threads, struct vec_errbuf *eb)
{
	struct vec_kmeans_params kp = { 0, 0, 0, 0, 0, NULL, 0 };
	struct vec_kmeans_result kr;
	struct vec_ivf *g;
	uint32_t nlist;
	int rc;

	*out = NULL;
	if ((rc = vec_ivf_check_params(p, dim, eb)))
		return rc;
	if (n == 0)
		return vec_err(eb, VEC_E_USAGE, "an ivf index needs at least one vector to train on");
	nlist = p->nlist ? p->nlist : vec_ivf_default_nlist(n);
	if (nlist > n)
		return vec_err(eb, VEC_E_USAGE,
			       "nlist %u is larger than the number of vectors to train on (%llu)",
			       nlist, (unsigned long long)n);
	g = new_ivf(p, dim, metric, nlist);
	if (!g)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	kp.k = nlist;
	kp.train_size = p->train_size;
	kp.max_iter = g->max_iter;
	kp.seed = g->seed;
	kp.threads = threads;
	kp.spherical = metric == VEC_METRIC_COS;
	if ((rc = vec_kmeans(x, n, dim, &kp, g->own_cent, &kr, eb)) ||
	    (rc = train_codec(g, x, n, threads, eb))) {
		vec_ivf_free(g);
		return rc;
	}
	if (g->codec != VEC_IVF_FLAT && g->refine && dim >= VEC_IVF_RQ_MIN_DIM &&
	    rq_train(g, x, n)) {
		vec_ivf_free(g);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	g->train_size = kr.trained;
	g->iters = kr.iters;
	pq_transpose(g);
	*out = g;
	return VEC_OK;
}

/* ---- growth ---- */

/* Copy every list of an opened index into owned arrays. */
static int make_owned(struct vec_ivf *g, struct vec_errbuf *eb)
{
	struct list *own;

	if (g->owned)
		return VEC_OK;
	own = calloc(g->nlist, sizeof *own);
	if (!own)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	for (uint32_t j = 0; j < g->nlist; j++) {
		const struct list *l = &g->lists[j];
		struct list *o = &own[j];
		uint64_t cap = l->len + 32, db = data_bytes(g, l->len);
		o->own_ids = malloc(cap * sizeof *o->own_ids);
		o->own_data = calloc(1, data_bytes(g, cap));
		if (l->norms)
			o->own_norms = malloc(cap * sizeof *o->own_norms);
		if (!o->own_ids || !o->own_data || (l->norms && !o->own_norms)) {
			struct list *keep = g->lists;
			g->lists = own;
			free_lists(g); /* the copies so far */
			g->lists = keep;
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		}
		if (l->len) {
			memcpy(o->own_ids, l->ids, l->len * sizeof *o->own_ids);
			memcpy(o->own_data, l->data, db);
			if (l->norms)
				memcpy(o->own_norms, l->norms, l->len * sizeof *l->norms);
		}
		o->len = l->len;
		o->cap = cap;
		o->ids = o->own_ids;
		o->data = o->own_data;
		o->norms = o->own_norms;
	}
	free(g->lists);
	g->lists = own;
	g->owned = 1;
	return VEC_OK;
}

/* Room for need entries in list l (new room zeroed: 4-bit padding is 0). */
static int grow_list(const struct vec_ivf *g, struct list *l, uint64_t need)
{
	uint64_t cap;
	uint32_t *ids;
	uint8_t *data;
	size_t old, nb;

	if (need <= l->cap)
		return 0;
	cap = l->cap ? l->cap : 32;
	while (cap < need)
		cap += cap / 2 + 32;
	ids = realloc(l->own_ids, cap * sizeof *ids);
	if (!ids)
		return -1;
	l->own_ids = ids;
	l->ids = ids;
	old = (size_t)data_bytes(g, l->cap);
	nb = (size_t)data_bytes(g, cap);
	data = realloc(l->own_data, nb);
	if (!data)
		return -1;
	memset(data + old, 0, nb - old);
	l->own_data = data;
	l->data = data;
	if (g->codec == VEC_IVF_SQ8 && g->metric == VEC_METRIC_L2) {
		float *nr = realloc(l->own_norms, cap * sizeof *nr);
		if (!nr)
			return -1;
		l->own_norms = nr;
		l->norms = nr;
	}
	l->cap = cap;
	return 0;
}

int vec_ivf_add(struct vec_ivf *g, const float *x, uint64_t n, int threads,
		struct vec_errbuf *eb)
{
	uint64_t total = g->count + n, *grow = NULL;
	uint32_t *a = NULL;
	uint8_t *codes = NULL;
	float *norms = NULL;
	size_t cs = code_bytes(g);
	int rc;

	if (n == 0)
		return VEC_OK;
	if (total > UINT32_MAX)
		return vec_err(eb, VEC_E_USAGE, "an ivf index holds at most %u vectors",
			       UINT32_MAX);
	a = malloc(n * sizeof *a);
	grow = calloc(g->nlist, sizeof *grow);
	if (g->codec != VEC_IVF_FLAT)
		codes = malloc(n * cs);
	if (g->codec == VEC_IVF_SQ8 && g->metric == VEC_METRIC_L2)
		norms = malloc(n * sizeof *norms);
	if (!a || !grow || (g->codec != VEC_IVF_FLAT && !codes) ||
	    (g->codec == VEC_IVF_SQ8 && g->metric == VEC_METRIC_L2 && !norms)) {
		rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
		goto done;
	}
	if ((rc = vec_kmeans_assign(x, n, g->dim, g->cent, g->nlist, threads,
				    a, NULL, eb)))
		goto done;
	/* The refine codes go past count: nothing counts them until the
	 * lists below have taken the vectors. */
	if (g->rq_head && rq_reserve(g, total)) {
		rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
		goto done;
	}
	if (codes && (rc = encode(g, x, n, a, threads, codes, norms,
				  g->rq_head ? g->own_rq_codes + g->count * g->rq.stride : NULL,
				  g->rq_head ? g->own_rq_head + 2 * g->dim + g->count : NULL,
				  eb)))
		goto done;
	if ((rc = make_owned(g, eb)))
		goto done;
	/* Room first: a failure here leaves every list as it was (only
	 * their capacity grew). */
	for (uint64_t i = 0; i < n; i++)
		grow[a[i]]++;
	for (uint32_t j = 0; j < g->nlist; j++)
		if (grow[j] && grow_list(g, &g->lists[j], g->lists[j].len + grow[j])) {
			rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
			goto done;
		}
	for (uint64_t i = 0; i < n; i++) {
		struct list *l = &g->lists[a[i]];
		uint64_t p = l->len++;
		l->own_ids[p] = (uint32_t)(g->count + i);
		if (g->codec == VEC_IVF_FLAT)
			memcpy(l->own_data + p * g->esize, x + i * g->dim, g->esize);
		else if (pq4(g))
			vec_pq4_set_one(l->own_data, (size_t)p, g->pq.m, codes + i * cs);
		else
			memcpy(l->own_data + p * cs, codes + i * cs, cs);
		if (norms)
			l->own_norms[p] = norms[i];
	}
	g->count = total;
	rc = VEC_OK;
done:
	free(a);
	free(grow);
	free(codes);
	free(norms);
	return rc;
}

/* ---- search ---- */

/*
 * The candidates of one query, "smaller is better".  A candidate better
 * than thr (or as good) is appended; when the buffer is full, the keep
 * best stay and thr becomes the worst of them.  An append is a compare
 * and a store, where a heap would sift: most of a fast scan's hits come
 * in before the threshold has settled.  Each candidate is one 64-bit key,
 * the score's bits made to order as unsigned integers above the id (ivf
 * ids are 32 bits), so that ordering by key is ordering by score, then id.
 */
struct cands {
	uint64_t *key;
	size_t n, keep, cap;
	float thr;
};

static inline uint64_t cand_key(float d, uint32_t id)
{
	uint32_t u;
	memcpy(&u, &d, 4);
	u = u & 0x80000000u ? ~u : u | 0x80000000u;
	return (uint64_t)u << 32 | id;
}

static inline float key_score(uint64_t k)
{
	uint32_t u = (uint32_t)(k >> 32);
	float d;
	u = u & 0x80000000u ? u & 0x7fffffffu : ~u;
	memcpy(&d, &u, 4);
	return d;
}

static inline uint32_t key_id(uint64_t k)
{
	return (uint32_t)k;
}

/* Put the keep smallest keys of c[0..n) first, in no particular order. */
static void cands_select(struct cands *c, size_t keep)
{
	uint64_t *k = c->key;
	size_t lo = 0, hi = c->n; /* the keep-th smallest is in [lo, hi) */

	if (keep >= c->n)
		return;
	if (keep == 1) { /* the smallest, first */
		size_t m = 0;
		for (size_t j = 1; j < c->n; j++)
			m = k[j] < k[m] ? j : m;
		uint64_t t = k[0];
		k[0] = k[m];
		k[m] = t;
		return;
	}
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2, i = lo;
		uint64_t t, piv;
		/* Median of three as the pivot, moved to hi - 1. */
		if (k[mid] < k[lo])
			t = k[mid], k[mid] = k[lo], k[lo] = t;
		if (k[hi - 1] < k[lo])
			t = k[hi - 1], k[hi - 1] = k[lo], k[lo] = t;
		if (k[mid] < k[hi - 1])
			t = k[mid], k[mid] = k[hi - 1], k[hi - 1] = t;
		piv = k[hi - 1];
		/* Branch-free partition: swap always, advance on "below"
		 * (the keys' order is random; a branch would mispredict half
		 * the time). */
		for (size_t j = lo; j < hi - 1; j++) {
			uint64_t x = k[j];
			k[j] = k[i];
			k[i] = x;
			i += x < piv;
		}
		k[hi - 1] = k[i];
		k[i] = piv;
		/* [lo, i) below the pivot, i the pivot, (i, hi) above. */
		if (i == keep - 1 || i == keep)
			return;
		if (i > keep)
			hi = i;
		else
			lo = i + 1;
	}
}

static void cands_shrink(struct cands *c)
{
	uint64_t worst = 0;
	cands_select(c, c->keep);
	c->n = c->keep;
	for (size_t i = 0; i < c->n; i++)
		worst = c->key[i] > worst ? c->key[i] : worst;
	c->thr = key_score(worst);
}

static inline void cand_push(struct cands *c, uint32_t id, float d)
{
	if (d <= c->thr) {
		c->key[c->n] = cand_key(d, id);
		if (++c->n == c->cap)
			cands_shrink(c);
	}
}

/*
 * cand_push of n scores d[r] with ids ids[r], in order, the same keys
 * kept: eight scores at a time are compared with thr and skipped if none
 * passes (most, once thr has settled); otherwise each is stored and
 * counted if it passes, where a branch each would mispredict.
 */
static void cands_take(struct cands *c, const uint32_t *ids, const float *d,
		       size_t n)
{
	size_t m = c->n;
	float thr = c->thr;

	for (size_t r = 0; r < n;) {
		size_t end = n - r < 8 ? n : r + 8;
		int any = 0;
		if (end == r + 8) /* a fixed count: vectorised */
			for (int t = 0; t < 8; t++)
				any |= d[r + t] <= thr;
		else
			for (size_t t = r; t < end; t++)
				any |= d[t] <= thr;
		if (!any) {
			r = end;
			continue;
		}
		for (; r < end; r++) {
			c->key[m] = cand_key(d[r], ids[r]);
			m += d[r] <= thr;
			if (__builtin_expect(m < c->cap, 1))
				continue;
			c->n = m;
			cands_shrink(c);
			m = c->n;
			thr = c->thr;
		}
	}
	c->n = m;
}

static void cands_reset(struct cands *c)
{
	c->n = 0;
	c->thr = INFINITY;
}

static int cmp_key(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sort n keys ascending: insertion for the few (k, nprobe), else qsort. */
static void sort_keys(uint64_t *k, size_t n)
{
	if (n > 48) {
		qsort(k, n, sizeof *k, cmp_key);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		uint64_t x = k[i];
		size_t j = i;
		for (; j > 0 && k[j - 1] > x; j--)
			k[j] = k[j - 1];
		k[j] = x;
	}
}

/* The best min(keep, n) first, sorted if asked; returns how many. */
static size_t cands_final(struct cands *c, size_t keep, int sorted)
{
	size_t n;
	cands_select(c, keep);
	n = c->n < keep ? c->n : keep;
	if (sorted)
		sort_keys(c->key, n);
	return n;
}

static int cands_init(struct cands *c, size_t keep)
{
	c->keep = keep;
	c->cap = 4 * keep > 64 ? 4 * keep : 64;
	c->key = malloc(c->cap * sizeof *c->key);
	cands_reset(c);
	return c->key ? 0 : -1;
}

static void cands_free(struct cands *c)
{
	free(c->key);
}

/* ---- ranking the lists ---- */

/*
 * The nprobe best lists of a batch of queries.  A list's rank is decided
 * by its canonical score: |q - c|^2 (l2) or -<q, c> (ip) as the narrow
 * kernel sums it for that query alone (its sum for a row does not depend
 * on the rows scored with it), then the list number.  That is what makes
 * a query's lists the same whether it comes alone or in a batch of any
 * size: the wide kernel sums in another order, and its scores differ in
 * the last bits.  (nprobe above RANK_PROBE_MAX goes through
 * vec_flat_search, whose choice at a near-tie can still depend on the
 * batch.)
 *
 * Blocks of qb queries go through the exact search's wide kernel, which
 * writes the scores of a chunk of centroids into a buffer ("smaller is
 * better": |c|^2 - 2 <q, c> for l2, -<q, c> for ip); each query keeps
 * every centroid whose fast score is within a margin of its nprobe-th
 * best (a compare and a store per centroid, where a heap offer would
 * sift).  The margin is twice a bound on the difference between a fast
 * score (plus |q|^2 for l2) and the canonical one, so no centroid among
 * the canonical nprobe best is dropped; the kept ones are then scored
 * canonically and the best nprobe taken.  The queries too few to fill a
 * block, and a lane whose margin holds too many centroids to keep, are
 * scored canonically against every centroid.
 */
struct rank {
	const struct vec_ivf *g;
	const struct vec_flat_kernels *fk;
	const struct vec_kernels *kr;
	const float *q;           /* m queries */
	const float *cnorms;      /* l2: |c|^2 of each centroid; ip: NULL */
	double cmax;              /* the largest |c| */
	int bf;                   /* blocks rank on g->cbf (bf16) */
	int any_order;            /* nprobe >= nlist: every list, in list
				     order (a search's; vec_ivf_rank sorts) */
	size_t nwide, nprobe, cap;
	uint64_t *probe;          /* m x nprobe out */
	float *psc;               /* m x nprobe out (l2: |q - c|, ip: <q, c>) */
	struct rank_scratch *rs;  /* one per worker */
};

struct rank_scratch {
	float *qp;                /* dim x qb packed queries (64-aligned) */
	float *out;               /* RANK_CHUNK x qb scores */
	uint64_t *key;            /* qb x cap candidate keys */
	size_t *n;                /* qb: keys held */
	float *thr;               /* qb: their thresholds */
	float *mrg;               /* qb: their margins */
	unsigned char *all;       /* qb: the margin held too many: score all */
	uint64_t *pass;           /* RANK_CHUNK lane masks (kernels.h) */
	uint32_t *qrow;           /* bf16: one query's pairs */
	uint32_t *cid;            /* cap: the lists kept, to score canonically */
	float *sc;                /* cap: their canonical scores */
	float *csc;               /* nlist: canonical scores by list */
	uint64_t *ak, *tk;        /* max(cap, nlist): their keys; sort scratch */
};

/*
 * Sort keys k[0..n) ascending (t: scratch of n): LSD radix, a byte a pass,
 * skipping the bytes every key shares (an id's top bytes, a score's
 * exponent).  No comparisons to mispredict, where extracting a heap of a
 * few hundred took longer than the ranking that filled it.
 */
static void radix_keys(uint64_t *k, uint64_t *t, size_t n)
{
	size_t cnt[256];

	for (unsigned sh = 0; sh < 64; sh += 8) {
		size_t sum = 0;
		memset(cnt, 0, sizeof cnt);
		for (size_t i = 0; i < n; i++)
			cnt[(k[i] >> sh) & 255]++;
		if (cnt[(k[0] >> sh) & 255] == n)
			continue; /* one value of this byte */
		for (unsigned b = 0; b < 256; b++) {
			size_t c = cnt[b];
			cnt[b] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			t[cnt[(k[i] >> sh) & 255]++] = k[i];
		memcpy(k, t, n * sizeof *k);
	}
}

/* A list's score as psc holds it: l2 |q - c|, ip <q, c> (v canonical). */
static inline float probe_score(const struct rank *r, float v)
{
	return r->cnorms ? sqrtf(v > 0 ? v : 0) : -v;
}

/*
 * The best nprobe of n lists (ids[i], or list i when ids is NULL) by
 * canonical score then list number, as probe pr and psc ps (padded): the
 * scores of all n in one call of the kernels' scores (the narrow kernel's
 * sums for q alone), a selection of the best, and a sort of those.
 */
static void canon_pick(const struct rank *r, struct rank_scratch *w,
		       const float *q, const uint32_t *ids, size_t n,
		       uint64_t *pr, float *ps)
{
	const struct vec_ivf *g = r->g;
	size_t got = n < r->nprobe ? n : r->nprobe;
	struct cands c;

	r->fk->scores(q, 1, g->cent, g->dim, ids, n, r->cnorms != NULL,
		      ids ? w->sc : w->csc);
	if (!ids && got == n && r->any_order) {
		for (size_t e = 0; e < n; e++) {
			pr[e] = e;
			ps[e] = probe_score(r, w->csc[e]);
		}
		return; /* got == nprobe: no padding */
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t id = ids ? ids[i] : (uint32_t)i;
		if (ids)
			w->csc[id] = w->sc[i];
		w->ak[i] = cand_key(w->csc[id] + 0.0f, id); /* -0 as +0 */
	}
	c.key = w->ak;
	c.n = n;
	cands_select(&c, got);
	if (got > RANK_RADIX_MIN)
		radix_keys(w->ak, w->tk, got);
	else
		sort_keys(w->ak, got);
	for (size_t e = 0; e < got; e++) {
		pr[e] = key_id(w->ak[e]);
		ps[e] = probe_score(r, w->csc[pr[e]]);
	}
	for (size_t e = got; e < r->nprobe; e++) {
		pr[e] = UINT64_MAX;
		ps[e] = r->cnorms ? INFINITY : -INFINITY;
	}
}

/* Query q against every centroid, canonically. */
static void rank_all(const struct rank *r, const float *q,
		     struct rank_scratch *w, uint64_t *pr, float *ps)
{
	canon_pick(r, w, q, NULL, r->g->nlist, pr, ps);
}

/*
 * The margin of a query of norm qn, in fast-score units: twice a bound on
 * |fast (+ |q|^2) - canonical|.  Each is a float sum of at most dim + 2
 * terms; with u = 2^-24 and g = (dim + 4) u / (1 - (dim + 4) u), each is
 * within g (|q| + |c|)^2 (l2: the terms of |c|^2, 2 <q, c> and |q - c|^2
 * are bounded by it) or g |q| |c| (ip) of the exact value; the bound
 * below doubles that once more for the rounding of the sums of sums.
 */
static float rank_margin(const struct rank *r, double qn)
{
	const double u = 1.0 / 16777216.0, n = (double)r->g->dim + 4;
	double g = n * u / (1 - n * u), e;

	e = r->cnorms ? (qn + r->cmax) * (qn + r->cmax) : qn * r->cmax;
	e = 8 * g * e;
	return e < 3.0e38 ? (float)e : INFINITY;
}

/*
 * Keys k[0..*n) of one lane (*n > keep): keep the keep best and every
 * other within the margin of the worst of them; *thr becomes that worst
 * plus the margin.
 */
static void margin_keep(uint64_t *k, size_t *n, size_t keep, float mrg,
			float *thr)
{
	struct cands c;
	uint64_t worst = 0;
	size_t m = 0;
	float lim;

	c.key = k;
	c.n = *n;
	cands_select(&c, keep);
	for (size_t i = 0; i < keep; i++)
		worst = k[i] > worst ? k[i] : worst;
	lim = key_score(worst) + mrg;
	for (size_t i = 0; i < *n; i++)
		if (i < keep || key_score(k[i]) <= lim)
			k[m++] = k[i];
	*n = m;
	*thr = lim;
}

/* Bits set in x (no popcnt instruction in the portable build). */
static inline size_t bit_count(uint64_t x)
{
	x -= (x >> 1) & 0x5555555555555555u;
	x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fu;
	return (size_t)((x * 0x0101010101010101u) >> 56);
}

/*
 * Lane l's key buffer is full (*n = cap): shrink it to the margin; if that
 * still holds over half, the lane is scored in full (w->all), and takes
 * nothing more (*n = 0, *thr = -inf).  Returns whether it went so.
 */
static int lane_full(const struct rank *r, struct rank_scratch *w,
		     unsigned l, size_t *n, float *thr)
{
	margin_keep(w->key + (size_t)l * r->cap, n, r->nprobe, w->mrg[l], thr);
	if (*n <= r->cap / 2)
		return 0;
	w->all[l] = 1;
	*n = 0;
	*thr = -INFINITY;
	return 1;
}

/*
 * Lane l's scores of chunk [c0, c0 + nb) (w->out), those no worse than its
 * threshold appended as keys: a store for every score and a count of
 * those that pass, where following the pass masks costs a branch each.
 */
static void dense_append(const struct rank *r, struct rank_scratch *w,
			 unsigned l, size_t c0, size_t nb)
{
	const size_t qb = r->fk->qb;
	uint64_t *key = w->key + (size_t)l * r->cap;
	const float *o = w->out + l;
	size_t n = w->n[l];
	float thr = w->thr[l];

	if (w->all[l])
		return;
	for (size_t e = 0; e < nb; e++) {
		float v = o[e * qb];
		key[n] = cand_key(v + 0.0f, (uint32_t)(c0 + e));
		n += v <= thr;
		if (__builtin_expect(n == r->cap, 0) && lane_full(r, w, l, &n, &thr))
			break;
	}
	w->n[l] = n;
	w->thr[l] = thr;
}

static void rank_task(void *ctx, size_t b, int worker)
{
	const struct rank *r = ctx;
	const struct vec_ivf *g = r->g;
	struct rank_scratch *w = r->rs + worker;
	unsigned qb = r->fk->qb, nlanes;
	size_t first = b * qb, dim = g->dim, keep = r->nprobe;
	size_t np = (dim + 1) / 2;
	struct vec_flat_wide ww;
	struct vec_flat_bf16_wide bw;
	uint32_t *qbp = (uint32_t *)(void *)w->qp; /* bf16: npairs x qb */
	double bfe[64];
	int bf = r->bf;

	nlanes = (unsigned)(r->nwide - first < qb ? r->nwide - first : qb);
	if (keep >= g->nlist) { /* every list: no fast pass to filter */
		for (unsigned l = 0; l < nlanes; l++)
			rank_all(r, r->q + (first + l) * dim, w,
				 r->probe + (first + l) * keep,
				 r->psc + (first + l) * keep);
		return;
	}
	/* bf16: each lane's scores are within E = A max B + C max D +
	 * max N of the fp32 path's (kernels.h), which are within half
	 * rank_margin of the canonical ones; so the margin grows by 2 E. */
	for (unsigned l = 0; bf && l < qb; l++) {
		float qa = 0, qc = 0;
		if (l < nlanes &&
		    vec_flat_bf16_query(r->q + (first + l) * dim, dim, np,
					w->qrow, &qa, &qc)) {
			bf = 0; /* a value unfit for the bound */
			break;
		}
		for (size_t p = 0; p < np; p++)
			qbp[p * qb + l] = l < nlanes ? w->qrow[p] : 0;
		bfe[l] = 2 * ((double)qa * g->cbf_max[0] + (double)qc * g->cbf_max[1] +
			      g->cbf_max[2]) * (1 + 0x1p-10);
	}
	for (unsigned l = 0; l < qb; l++) {
		const float *src = r->q + (first + l) * dim;
		for (size_t d = 0; !bf && d < dim; d++)
			w->qp[d * qb + l] = l < nlanes ? src[d] : 0.0f;
		w->n[l] = 0;
		w->thr[l] = INFINITY;
		w->all[l] = 0;
		if (l < nlanes) {
			double qn = 0, e;
			for (size_t d = 0; d < dim; d++)
				qn += (double)src[d] * src[d];
			e = rank_margin(r, sqrt(qn)) * (1 + 0x1p-20);
			e += bf ? bfe[l] : 0;
			w->mrg[l] = e < 3.0e38 ? (float)e : INFINITY;
		}
	}
	memset(&ww, 0, sizeof ww);
	ww.qp = w->qp;
	ww.dim = dim;
	ww.nlanes = nlanes;
	ww.out = w->out;
	ww.pthr = w->thr;
	ww.pass = w->pass;
	memset(&bw, 0, sizeof bw);
	bw.qp = qbp;
	bw.npairs = np;
	bw.l2 = r->cnorms != NULL;
	bw.nlanes = nlanes;
	bw.out = w->out;
	bw.pthr = w->thr;
	bw.pass = w->pass;
	/* After a short first chunk, each lane's threshold is set. */
	for (size_t c0 = 0, nb, npass = 0; c0 < g->nlist; c0 += nb, npass = 0) {
		int dense;

		nb = c0 ? RANK_CHUNK : RANK_FIRST;
		nb = g->nlist - c0 < nb ? g->nlist - c0 : nb;
		ww.x = g->cent + c0 * dim;
		ww.norms = r->cnorms ? r->cnorms + c0 : NULL;
		ww.nb = nb;
		ww.id0 = c0;
		if (bf) {
			bw.x = g->cbf + c0 * np;
			bw.row = g->cbf_row + 4 * c0;
			bw.nb = nb;
			bw.id0 = c0;
			vec_flat_bf16_wide(&bw);
		} else {
			r->fk->wide(&ww);
		}
		/* The kernel compared each centroid's scores with the
		 * thresholds at the chunk's start (qb <= 64, kernels.h); those
		 * that pass are checked against the current ones (which only
		 * come down) and appended.  Where most pass (a first chunk, a
		 * large nprobe), each lane takes the chunk's scores in one
		 * branch-free pass instead: the same keys, in the same order. */
		for (size_t e = 0; e < nb; e++)
			npass += bit_count(w->pass[e]);
		dense = npass * 4 >= nb * nlanes;
		for (unsigned l = 0; dense && l < nlanes; l++)
			dense_append(r, w, l, c0, nb);
		for (size_t e = 0; !dense && e < nb; e++) {
			const float *o = w->out + e * qb;
			uint64_t mask = w->pass[e];
			while (mask) {
				unsigned l = (unsigned)__builtin_ctzll(mask);
				uint64_t *key = w->key + (size_t)l * r->cap;
				mask &= mask - 1;
				if (!(o[l] <= w->thr[l]))
					continue;
				key[w->n[l]] = cand_key(o[l] + 0.0f, (uint32_t)(c0 + e));
				if (++w->n[l] == r->cap)
					lane_full(r, w, l, &w->n[l], &w->thr[l]);
			}
		}
		for (unsigned l = 0; c0 == 0 && l < nlanes; l++)
			if (!w->all[l] && w->n[l] > keep)
				margin_keep(w->key + (size_t)l * r->cap, &w->n[l],
					    keep, w->mrg[l], &w->thr[l]);
	}
	for (unsigned l = 0; l < nlanes; l++) {
		uint64_t *key = w->key + (size_t)l * r->cap;
		uint64_t *pr = r->probe + (first + l) * keep;
		float *ps = r->psc + (first + l) * keep;
		const float *q = r->q + (first + l) * dim;
		size_t n = w->n[l];
		float lim;

		if (w->all[l]) {
			rank_all(r, q, w, pr, ps);
			continue;
		}
		/* Every centroid within the margin of the keep-th fast score,
		 * scored canonically. */
		if (n > keep)
			margin_keep(key, &n, keep, w->mrg[l], &lim);
		for (size_t i = 0; i < n; i++)
			w->cid[i] = key_id(key[i]);
		canon_pick(r, w, q, w->cid, n, pr, ps);
	}
}

static void rank_free(struct rank *r, size_t nworkers)
{
	if (r->rs)
		for (size_t i = 0; i < nworkers; i++) {
			free(r->rs[i].qp);
			free(r->rs[i].out);
			free(r->rs[i].key);
			free(r->rs[i].n);
			free(r->rs[i].thr);
			free(r->rs[i].mrg);
			free(r->rs[i].all);
			free(r->rs[i].pass);
			free(r->rs[i].qrow);
			free(r->rs[i].cid);
			free(r->rs[i].sc);
			free(r->rs[i].csc);
			free(r->rs[i].ak);
			free(r->rs[i].tk);
		}
	free(r->rs);
	r->rs = NULL;
}

/*
 * Things a search makes once per index and then shares (list_pre,
 * centroid_stats, centroid_bf16) each have a state: 0 not made, 1 being
 * made by one thread, 2 made (published with release order).  once_begin
 * returns 1 when the caller is to make the thing (it moved the state from
 * 0 to 1) and 0 when it is made (having waited the few microseconds that
 * takes if another thread was at it); the maker ends with once_end, ok or
 * not (not ok: back to 0, for a later search to try again).
 */
static int once_begin(_Atomic unsigned char *st)
{
	for (;;) {
		unsigned char v = atomic_load_explicit(st, memory_order_acquire);
		if (v == 2)
			return 0;
		if (v == 0 && atomic_compare_exchange_strong(st, &v, 1))
			return 1;
		sched_yield();
	}
}

static void once_end(_Atomic unsigned char *st, int ok)
{
	atomic_store_explicit(st, ok ? 2 : 0, memory_order_release);
}

/* The centroids' squared norms and the largest norm, made once per
 * index by the first search that needs them (g->cnorm, g->cmax); the
 * largest is within a few ulps (the ranking's margin has a factor of 2
 * to spare).  Nonzero: no memory (another search may try again). */
static int centroid_stats(const struct vec_ivf *g)
{
	struct vec_ivf *m = (struct vec_ivf *)(uintptr_t)g; /* the cache */
	double mx = 0;
	float *cn;

	if (!once_begin(&m->cstat_state))
		return 0;
	cn = malloc(((size_t)g->nlist + 1) * sizeof *cn);
	if (!cn) {
		once_end(&m->cstat_state, 0);
		return -1;
	}
	for (uint32_t j = 0; j < g->nlist; j++) {
		const float *c = g->cent + (size_t)j * g->dim;
		double s = 0;
		for (size_t d = 0; d < g->dim; d++)
			s += (double)c[d] * c[d];
		cn[j] = (float)s;
		mx = s > mx ? s : mx;
	}
	m->cnorm = cn;
	m->cmax = sqrt(mx) * (1 + 1e-12);
	once_end(&m->cstat_state, 1);
	return 0;
}

/*
 * The bf16 copy of the centroids (g->cbf), made once per index; 0 if it
 * is there for l2 (l2 != 0) or ip.
 */
static int centroid_bf16(const struct vec_ivf *g, int l2)
{
	struct vec_ivf *m = (struct vec_ivf *)(uintptr_t)g; /* the cache */
	size_t np = (g->dim + 1) / 2;
	uint32_t *xb;
	float *rc;

	if (!once_begin(&m->cbf_state))
		return g->cbf && g->cbf_l2 == l2 ? 0 : -1;
	xb = malloc((size_t)g->nlist * np * sizeof *xb);
	rc = malloc((size_t)g->nlist * 4 * sizeof *rc);
	if (!xb || !rc || vec_flat_bf16_rows(g->cent, g->nlist, g->dim, np,
					     l2 ? g->cnorm : NULL, xb, rc)) {
		free(xb);
		free(rc);
		xb = NULL;
		rc = NULL;
	}
	m->cbf_max[0] = m->cbf_max[1] = m->cbf_max[2] = 0;
	for (uint32_t j = 0; rc && j < g->nlist; j++)
		for (int f = 0; f < 3; f++)
			if (rc[4 * j + 1 + f] > m->cbf_max[f])
				m->cbf_max[f] = rc[4 * j + 1 + f];
	m->cbf = xb;
	m->cbf_row = rc;
	m->cbf_l2 = l2;
	once_end(&m->cbf_state, 1); /* made, or found unfit: not tried again */
	return xb ? 0 : -1;
}

/* Scratch for ranking through the wide kernel on threads workers; nonzero:
 * no memory (then rank_free). */
static int rank_init(struct rank *r, const struct vec_ivf *g, size_t nprobe,
		     int l2, int threads)
{
	size_t qb, dim = g->dim, nk;

	memset(r, 0, sizeof *r);
	r->g = g;
	r->fk = vec_flat_kernels();
	r->kr = vec_kernels();
	r->nprobe = nprobe;
	r->cap = 4 * nprobe > 64 ? 4 * nprobe : 64;
	qb = r->fk->qb;
	if (centroid_stats(g))
		return -1;
	r->cmax = g->cmax;
	r->cnorms = l2 ? g->cnorm : NULL;
	/* bf16 dot products, twice the fp32 rate: a wider margin (below)
	 * keeps a few more centroids for the canonical scores. */
	r->bf = r->fk->qb == VEC_FLAT_BF16_QB && vec_flat_bf16_usable() &&
		centroid_bf16(g, l2) == 0;
	if (r->bf)
		r->cap = 4 * nprobe > 256 ? 4 * nprobe : 256;
	nk = r->cap > g->nlist ? r->cap : g->nlist;
	r->rs = calloc((size_t)threads, sizeof *r->rs);
	if (!r->rs)
		return -1;
	for (int i = 0; i < threads; i++) {
		struct rank_scratch *w = &r->rs[i];
		size_t qbytes = (dim * qb * sizeof(float) + 63) / 64 * 64;
		w->qp = aligned_alloc(64, qbytes);
		w->out = malloc(RANK_CHUNK * qb * sizeof *w->out);
		w->key = malloc(qb * r->cap * sizeof *w->key);
		w->n = malloc(qb * sizeof *w->n);
		w->thr = malloc(qb * sizeof *w->thr);
		w->mrg = calloc(qb, sizeof *w->mrg);
		w->all = malloc(qb);
		w->pass = malloc(RANK_CHUNK * sizeof *w->pass);
		w->qrow = malloc((dim + 1) / 2 * sizeof *w->qrow);
		w->cid = malloc(r->cap * sizeof *w->cid);
		w->sc = malloc(r->cap * sizeof *w->sc);
		w->csc = malloc(g->nlist * sizeof *w->csc);
		w->ak = malloc(nk * sizeof *w->ak);
		w->tk = malloc(nk * sizeof *w->tk);
		if (!w->qp || !w->out || !w->key || !w->n || !w->thr || !w->mrg ||
		    !w->all || !w->pass || !w->qrow || !w->cid || !w->sc ||
		    !w->csc || !w->ak || !w->tk)
			return -1;
	}
	return 0;
}

/* The nprobe best lists of the m queries q (see struct rank; q unit
 * length for cos, as vec_ivf_search gets them). */
static int rank_lists(struct rank *r, const float *q, size_t m,
		      int threads, uint64_t *probe, float *psc)
{
	const struct vec_ivf *g = r->g;
	size_t qb = r->fk->qb, nblocks = m / qb;

	if ((m % qb) * 3 >= qb)
		nblocks++;
	r->nwide = nblocks * qb < m ? nblocks * qb : m;
	r->q = q;
	r->probe = probe;
	r->psc = psc;
	if (nblocks)
		vec_pool_run(threads, nblocks, rank_task, r);
	/* The few left: every centroid, canonically (worker 0's scratch:
	 * the pool has returned). */
	for (size_t i = r->nwide; i < m; i++)
		rank_all(r, q + i * g->dim, &r->rs[0], probe + i * r->nprobe,
			 psc + i * r->nprobe);
	return VEC_OK;
}

int vec_ivf_rank(const struct vec_ivf *g, const float *q, size_t nq,
		 size_t nprobe, int threads, uint64_t *probe, float *psc,
		 struct vec_errbuf *eb)
{
	struct rank r;
	size_t blocks, workers;
	int l2 = g->metric == VEC_METRIC_L2, rc;

	if (nq == 0 || nprobe == 0)
		return VEC_OK;
	if (nprobe > g->nlist || nprobe > RANK_PROBE_MAX)
		return vec_err(eb, VEC_E_USAGE, "nprobe %zu out of range", nprobe);
	if (threads <= 0)
		threads = vec_ncpu();
	blocks = (nq + vec_flat_kernels()->qb - 1) / vec_flat_kernels()->qb;
	workers = (size_t)threads < blocks ? (size_t)threads : blocks;
	if (rank_init(&r, g, nprobe, l2, (int)workers)) {
		rank_free(&r, workers);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	rc = rank_lists(&r, q, nq, (int)workers, probe, psc);
	rank_free(&r, workers);
	return rc ? vec_err(eb, rc, "search failed: %s", vec_strerror(rc)) : VEC_OK;
}

struct scratch {
	struct cands cand;        /* k, or refine x k to re-rank */
	struct cands top;         /* k, re-ranked */
	float *table;             /* m x ksub */
	float *qtab;              /* m x ksub: the query's part (l2) */
	float *qres;              /* dim: the query's residual */
	float *dist;              /* a list's estimates */
	uint16_t *sums;           /* 4 bits: a list's sums */
	uint32_t *pos;            /* 4 bits: positions below the threshold */
	uint8_t *lut;             /* 4 bits: the quantised table ... */
	float delta, lbias;       /* ... its step and offset */
	int8_t *cq, *cq2;         /* sq8: the quantised query and what its
	                             rounding left, times 254 ... */
	float t, qlo;             /* ... their scale and offset */
	int32_t *i1, *i2;         /* sq8: a list's integer dot products */
	float *rq_q;              /* refine codes: the query against them */
	float *rq_x;              /* refine codes: an exact code's vector */
	float *rq_lb;             /* refine codes: each candidate's bound */
	struct cands rq_est;      /* refine codes: the k best estimates */
	uint64_t *loff;           /* list-major: nlist + 1 offsets into byl */
	float *qblk;              /* list-major, flat: a few queries' rows */
	uint64_t scanned;
};

struct search {
	const struct vec_ivf *g;
	const struct vec_vectors *v;
	const float *q;          /* this batch's queries */
	size_t k, k2, nprobe;
	int refine;
	const uint64_t *probe;   /* nprobe list numbers per query, best first */
	const float *psc;        /* their scores (ip: <q, c>) */
	int l2;
	const struct vec_kernels *kr;
	const struct vec_flat_kernels *fk;
	struct scratch *sc;      /* one per worker */
	uint64_t *ids;           /* this batch's rows of the output */
	float *scores;
	/* The list-major scan of a batch (NULL: by query). */
	struct cands *qc;        /* one per query of the batch ... */
	unsigned char *qpart;    /* ... and its query_setup (qpart_bytes) */
	uint32_t *byl;           /* batch x nprobe: (query, probe) pairs
				    (query x nprobe + probe) by list */
	size_t nm, nchunks;      /* the batch's queries; its parts (tasks) */
};

/* List j's fixed table part, made now if nobody has; NULL: make the
 * table the long way (no memory for the parts). */
static const float *list_pre(const struct vec_ivf *g, uint64_t j)
{
	size_t nt = g->pq.m * g->pq.ksub, dsub = g->pq.dsub;
	float *pre;

	if (!g->pre)
		return NULL;
	pre = g->pre + j * nt;
	if (!once_begin(&g->pre_state[j]))
		return pre;
	for (size_t i = 0; i < g->pq.m; i++) {
		const float *c = g->cent + j * g->dim + i * dsub;
		const float *b = g->pq.cent + i * g->pq.ksub * dsub;
		for (size_t e = 0; e < g->pq.ksub; e++) {
			float bb = 0, cb = 0;
			for (size_t d = 0; d < dsub; d++) {
				bb += b[e * dsub + d] * b[e * dsub + d];
				cb += c[d] * b[e * dsub + d];
			}
			pre[i * g->pq.ksub + e] = bb + 2 * cb;
		}
	}
	once_end(&g->pre_state[j], 1);
	return pre;
}

/*
 * The query of an SQ8 list scan in two signed bytes a component: cq as
 * vec_sq8_query makes it (the query's weights scaled to +-127), and cq2,
 * the part its rounding dropped (within half a step), scaled by 254.  Two
 * integer dot products then give the query to about 15 bits, so that the
 * codes' own rounding is the only error left that matters.
 */
static void sq8_query2(const struct vec_ivf *g, const float *x,
		       struct scratch *w)
{
	const struct vec_sq8 *q = &g->sq;
	double inv;

	vec_sq8_query(q, x, w->cq, &w->t, &w->qlo);
	inv = w->t > 0 ? 1.0 / w->t : 0;
	for (size_t d = 0; d < g->dim; d++) {
		double e = (double)x[d] * q->scale[d] * inv - w->cq[d];
		e *= 254;
		if (!(e > -127.5 && e < 127.5))
			e = e > 0 ? 127 : e < 0 ? -127 : 0;
		w->cq2[d] = (int8_t)(int)(e + (e < 0 ? -0.5 : 0.5));
	}
	memset(w->cq2 + g->dim, 0, g->esize - g->dim);
}

/* Estimates of a list's SQ8 entries ("smaller is better", as
 * vec_sq8_scores): l2 norms[i] - 2 <q, r_i>, ip -<q, r_i>. */
static void sq8_scores2(const struct vec_ivf *g, struct scratch *w,
			const struct list *l, float *out)
{
	const struct vec_sq8_kernels *k = vec_sq8_kernels();
	size_t n = (size_t)l->len;

	k->scan(l->data, g->esize, w->cq, n, w->i1);
	k->scan(l->data, g->esize, w->cq2, n, w->i2);
	for (size_t i = 0; i < n; i++) {
		float dot = w->qlo + w->t * ((float)w->i1[i] + (float)w->i2[i] / 254.0f);
		out[i] = l->norms ? l->norms[i] - 2 * dot : -dot;
	}
}

/* out = a + b, n floats (restrict: the compiler vectorises it). */
static void add_tables(float *restrict out, const float *restrict a,
		       const float *restrict b, size_t n)
{
	for (size_t e = 0; e < n; e++)
		out[e] = a[e] + b[e];
}

/*
 * A list of full vectors: the exact search's scores for one query (the
 * narrow kernel's sums), taken as candidates by vector id.
 */
static void scan_flat(const struct search *s, struct scratch *w,
		      const struct list *l, const float *q, struct cands *c)
{
	s->fk->scores(q, 1, (const float *)(const void *)l->data, s->g->dim,
		      NULL, (size_t)l->len, s->l2, w->dist);
	cands_take(c, l->ids, w->dist, (size_t)l->len);
}

/*
 * A list of 4-bit codes, w->lut and its delta and bias being the query's
 * quantised table for this list: the estimate of an entry is bias +
 * delta x its sum (within m delta / 2 of the float table's), and only
 * the entries whose sum can beat the threshold are looked at.
 */
static void scan_pq4(const struct search *s, struct scratch *w,
		     const struct list *l, float bias, struct cands *c)
{
	const struct vec_pq *pq = &s->g->pq;
	uint64_t nb = (l->len + VEC_PQ_BLOCK - 1) / VEC_PQ_BLOCK;
	float base = bias + w->lbias;
	uint16_t cut = UINT16_MAX;
	size_t np;

	vec_pq4_scan(w->lut, pq->m, l->data, (size_t)nb, w->sums);
	if (isfinite(c->thr) && w->delta > 0) {
		double t = (c->thr - base) / w->delta + 1;
		cut = t <= 0 ? 0 : t >= UINT16_MAX ? UINT16_MAX : (uint16_t)t;
	}
	np = vec_pq4_below(w->sums, (size_t)l->len, cut, w->pos);
	for (size_t e = 0; e < np; e++) {
		uint32_t r = w->pos[e];
		cand_push(c, l->ids[r], base + w->delta * (float)w->sums[r]);
	}
}

/* Full-precision distances of the candidates, best k into w->top. */
static inline void prefetch_vector(const struct search *s, uint32_t id)
{
	const char *p = (const char *)(s->v->x + (size_t)id * s->g->dim);
	for (size_t o = 0; o < s->g->dim * sizeof(float); o += 64)
		__builtin_prefetch(p + o);
}

/* The full-precision score of vector id ("smaller is better"). */
static inline float exact_score(const struct search *s, const float *q,
				uint32_t id)
{
	const float *x = s->v->x + (size_t)id * s->g->dim;
	return s->l2 ? s->kr->l2sq(q, x, s->g->dim) : -s->kr->dot(q, x, s->g->dim);
}

static void rerank(const struct search *s, struct scratch *w,
		   const struct cands *c, const float *q, size_t n)
{
	const struct vec_ivf *g = s->g;
	const size_t ahead = 8;

	cands_reset(&w->top);
	for (size_t e = 0; e < n && e < ahead; e++)
		__builtin_prefetch(s->v->x + (size_t)key_id(c->key[e]) * g->dim);
	for (size_t e = 0; e < n; e++) {
		uint32_t id = key_id(c->key[e]);
		if (e + ahead < n)
			prefetch_vector(s, key_id(c->key[e + ahead]));
		cand_push(&w->top, id, exact_score(s, q, id));
	}
}

/*
 * The refine with refine codes: the same k best as rerank() finds, from
 * fewer full vectors.  Each candidate's code gives a lower bound L on the
 * score the full-precision kernel would give it (below); the k candidates
 * with the best code estimates are re-ranked on their full vectors, and
 * their worst score w stands for the k-th best from then on (the true
 * k-th best can only be better).  Any other candidate with L > w cannot
 * be among the k best, nor tie with them, and is skipped; the rest are
 * re-ranked.  The candidates re-ranked get exactly rerank()'s scores, so
 * the answers are rerank()'s.  A candidate whose code is exact (bound 0)
 * is scored on its code's reconstruction, the same floats as its vector
 * (rq_exact), so its full vector is never read: the row just summed is
 * still in the cache, the vector (four times its size) is not.
 *
 * The bounds, u = 2^-24 and g = (stride + 8) u (a float sum of at most
 * stride terms, and the rounding of each term, stay within g of the exact
 * sum; the sq8 and exact kernels are such sums):
 *  l2:  S = l2f(q - lo, step, c), e the code's stored bound on |x - x'|
 *       (x' the reconstruction), n = |q - lo|:
 *       |q - x'| >= sqrt(S) (1 - g) - 4 u n       (S's rounding)
 *       |q - x|  >= that - e = A                  (triangle inequality)
 *       kernel   >= |q - x|^2 (1 - g) >= A^2 (1 - g)   when A > 0.
 *  ip:  T = dotf(q step, c), b = <q, lo> (double), r = |255 step|:
 *       <q, x'> <= b + T + (g + 2u) |q| (r + |lo|)
 *       <q, x>  <= <q, x'> + |q| e
 *       kernel = -<q, x> computed >= -<q, x> - g |q| (|lo| + r + e).
 * L is then rounded down to a float.
 */
/* The full-precision score of vector id, from its exact refine code
 * (bound 0) when it has one, else from the vector. */
static float rq_exact(const struct search *s, struct scratch *w,
		      const float *q, uint32_t id)
{
	const struct vec_ivf *g = s->g;
	const uint8_t *row;

	if (g->rq_head[2 * g->dim + id] != 0)
		return exact_score(s, q, id);
	row = g->rq_codes + (size_t)id * g->rq.stride;
	if (g->rq_unit) {
		/* Integers below 2^24: exact in floats, rq_value's result. */
		for (size_t d = 0; d < g->dim; d++)
			w->rq_x[d] = g->rq.lo[d] + (float)row[d];
	} else {
		for (size_t d = 0; d < g->dim; d++)
			w->rq_x[d] = rq_value(g, d, row[d]);
	}
	return s->l2 ? s->kr->l2sq(q, w->rq_x, g->dim) :
		       -s->kr->dot(q, w->rq_x, g->dim);
}

/* Prefetch what rq_exact will read for id: the vector, unless the code
 * is exact. */
static inline void rq_prefetch(const struct search *s, uint32_t id)
{
	if (s->g->rq_head[2 * s->g->dim + id] != 0)
		prefetch_vector(s, id);
}

static void rerank_coded(const struct search *s, struct scratch *w,
			 const struct cands *c, const float *q, size_t n)
{
	const struct vec_ivf *g = s->g;
	const struct vec_sq8_kernels *sk = vec_sq8_kernels();
	struct cands *est = &w->rq_est;
	size_t dim = g->dim, stride = g->rq.stride, lines = stride / 64;
	const size_t ahead = 4;
	const float *bound = g->rq_head + 2 * dim;
	const double u = 1.0 / 16777216.0, gam = (double)(stride + 8) * u;
	double qn = 0, b = 0, slack = 0;
	float worst = -INFINITY;
	size_t got;

	if (s->l2) {
		for (size_t d = 0; d < dim; d++) {
			w->rq_q[d] = q[d] - g->rq.lo[d];
			qn += (double)w->rq_q[d] * w->rq_q[d];
		}
		qn = sqrt(qn) * (1 + 4 * u);
	} else {
		for (size_t d = 0; d < dim; d++) {
			w->rq_q[d] = q[d] * g->rq.scale[d];
			b += (double)q[d] * g->rq.lo[d];
			qn += (double)q[d] * q[d];
		}
		qn = sqrt(qn) * (1 + 4 * u);
		/* <q, x'>'s rounding and the kernel's: both within
		 * |q| (|lo| + r) times g + 2u and g. */
		slack = (2 * gam + 2 * u) * qn * (g->rq_range + g->rq_lonorm);
	}
	cands_reset(est);
	for (size_t e = 0; e < n && e < ahead; e++)
		__builtin_prefetch(g->rq_codes + (size_t)key_id(c->key[e]) * stride);
	for (size_t e = 0; e < n; e++) {
		uint32_t id = key_id(c->key[e]);
		const uint8_t *row = g->rq_codes + (size_t)id * stride;
		double lo, ebd = bound[id];
		float est_v;
		if (e + ahead < n) {
			uint32_t nx = key_id(c->key[e + ahead]);
			const char *p = (const char *)(g->rq_codes + (size_t)nx * stride);
			for (size_t o = 0; o < lines; o++)
				__builtin_prefetch(p + 64 * o);
			__builtin_prefetch(bound + nx);
		}
		if (s->l2) {
			float S = sk->l2f(w->rq_q, g->rq_scale, row, stride);
			double a = sqrt(S > 0 ? (double)S : 0) * (1 - gam) - 4 * u * qn - ebd;
			est_v = S;
			lo = a > 0 ? a * a * (1 - gam) : 0;
		} else {
			float T = sk->dotf(w->rq_q, row, stride);
			est_v = -(float)(b + T);
			lo = -(b + T) - slack - qn * ebd * (1 + gam);
		}
		/* Rounded to a float no larger: a float is within 2^-24 of
		 * the double it rounds, and lo was made 2^-20 smaller. */
		w->rq_lb[e] = (float)(lo - fabs(lo) * (1.0 / 1048576));
		cand_push(est, (uint32_t)e, est_v);
	}
	/* The k best estimates, on their full vectors (the next ones
	 * prefetched while one is summed). */
	got = cands_final(est, s->k, 0);
	cands_reset(&w->top);
	for (size_t i = 0; i < got && i < 2; i++)
		rq_prefetch(s, key_id(c->key[key_id(est->key[i])]));
	for (size_t i = 0; i < got; i++) {
		size_t e = key_id(est->key[i]);
		uint32_t id = key_id(c->key[e]);
		float d;
		if (i + 2 < got)
			rq_prefetch(s, key_id(c->key[key_id(est->key[i + 2])]));
		d = rq_exact(s, w, q, id);
		worst = d > worst ? d : worst;
		w->rq_lb[e] = NAN; /* done */
		cand_push(&w->top, id, d);
	}
	if (got < s->k)
		worst = INFINITY; /* fewer candidates than k: keep them all */
	for (size_t e = 0; e < n; e++)
		if (w->rq_lb[e] <= worst) /* not done, and may be among the k best */
			cand_push(&w->top, key_id(c->key[e]),
				  rq_exact(s, w, q, key_id(c->key[e])));
}

static void finish_query(const struct search *s, struct scratch *w, size_t i,
			 const float *q, struct cands *c);

/*
 * What a query's lists share, in w: inner products: one table (or
 * quantised query) for every list, plus <q, c> per list; l2 with the
 * lists' fixed parts: the query's part -2 <q_i, b_ic>, for every list.
 */
static void query_setup(const struct search *s, struct scratch *w,
			const float *q)
{
	const struct vec_ivf *g = s->g;
	int pq = g->codec == VEC_IVF_PQ, sq = g->codec == VEC_IVF_SQ8;

	if (pq && s->l2 && g->pre) {
		vec_pq_table(&g->pq, q, 0, w->qtab);
		for (size_t e = 0; e < g->pq.m * g->pq.ksub; e++)
			w->qtab[e] *= 2;
	}
	if (pq && !s->l2) {
		vec_pq_table(&g->pq, q, 0, w->table);
		if (pq4(g))
			vec_pq4_lut(w->table, g->pq.m, w->lut, &w->delta, &w->lbias);
	}
	if (sq && !s->l2)
		sq8_query2(g, q, w);
}

/*
 * The bytes of what query_setup makes for a query, kept for each query of
 * a list-major batch: 0 when the lists' tables need nothing per query.
 */
static size_t qpart_bytes(const struct search *s)
{
	const struct vec_ivf *g = s->g;
	size_t nt = g->pq.m * g->pq.ksub * sizeof(float);

	if (g->codec == VEC_IVF_PQ && s->l2)
		return g->pre ? nt : 0;
	if (g->codec == VEC_IVF_PQ)
		return pq4(g) ? vec_pq4_lut_size(g->pq.m) + 2 * sizeof(float) : nt;
	if (g->codec == VEC_IVF_SQ8 && !s->l2)
		return 2 * g->esize + 2 * sizeof(float);
	return 0;
}

/* Copy what query_setup made in w to b (save) or back from b. */
static void qpart_copy(const struct search *s, struct scratch *w,
		       unsigned char *b, int save)
{
	const struct vec_ivf *g = s->g;
	size_t nt = g->pq.m * g->pq.ksub * sizeof(float);
	struct {
		void *p;
		size_t n;
	} f[4] = { { NULL, 0 } };

	if (g->codec == VEC_IVF_PQ && s->l2) {
		f[0].p = w->qtab, f[0].n = nt;
	} else if (g->codec == VEC_IVF_PQ && !pq4(g)) {
		f[0].p = w->table, f[0].n = nt;
	} else if (g->codec == VEC_IVF_PQ) {
		f[0].p = w->lut, f[0].n = vec_pq4_lut_size(g->pq.m);
		f[1].p = &w->delta, f[1].n = sizeof w->delta;
		f[2].p = &w->lbias, f[2].n = sizeof w->lbias;
	} else {
		f[0].p = w->cq, f[0].n = g->esize;
		f[1].p = w->cq2, f[1].n = g->esize;
		f[2].p = &w->t, f[2].n = sizeof w->t;
		f[3].p = &w->qlo, f[3].n = sizeof w->qlo;
	}
	for (int e = 0; e < 4 && f[e].n; e++) {
		if (save)
			memcpy(b, f[e].p, f[e].n);
		else
			memcpy(f[e].p, b, f[e].n);
		b += f[e].n;
	}
}

/*
 * Query i's p-th list j (not empty) into its candidates c, the query's
 * shared part being in w (query_setup).
 */
static void scan_pair(const struct search *s, struct scratch *w, size_t i,
		      size_t p, uint64_t j, struct cands *c)
{
	const struct vec_ivf *g = s->g;
	const struct list *l = &g->lists[j];
	const float *q = s->q + i * g->dim, *cj = g->cent + j * g->dim;
	float bias = 0;

	w->scanned += l->len;
	if (g->codec == VEC_IVF_FLAT) {
		scan_flat(s, w, l, q, c);
		return;
	}
	if (g->codec == VEC_IVF_SQ8) {
		/* l2: |q - c - r|^2 = |q - c|^2 - 2 <q - c, r> + |r|^2;
		 * ip: <q, c + r> = <q, c> + <q, r>. */
		if (s->l2) {
			for (size_t d = 0; d < g->dim; d++)
				w->qres[d] = q[d] - cj[d];
			sq8_query2(g, w->qres, w);
			bias = s->kr->dot(w->qres, w->qres, g->dim);
		} else {
			bias = -s->psc[i * s->nprobe + p];
		}
		sq8_scores2(g, w, l, w->dist);
		for (uint64_t r = 0; r < l->len; r++)
			w->dist[r] += bias;
		cands_take(c, l->ids, w->dist, (size_t)l->len);
		return;
	}
	if (s->l2) {
		float dc = s->psc[i * s->nprobe + p]; /* |q - c| */
		const float *pre = list_pre(g, j);
		if (pre) {
			add_tables(w->table, pre, w->qtab, g->pq.m * g->pq.ksub);
			bias = dc * dc;
			if (pq4(g))
				vec_pq4_lut(w->table, g->pq.m, w->lut, &w->delta,
					    &w->lbias);
		} else if (pq4(g)) {
			/* The residual's table made and quantised in one
			 * pass. */
			vec_pq4_lut_l2(&g->pq, q, cj, w->qres, w->table, w->lut,
				       &w->delta, &w->lbias);
			bias = 0;
		} else {
			for (size_t d = 0; d < g->dim; d++)
				w->qres[d] = q[d] - cj[d];
			vec_pq_table(&g->pq, w->qres, 1, w->table);
			bias = 0;
		}
	} else {
		bias = -s->psc[i * s->nprobe + p]; /* -<q, c> */
	}
	if (pq4(g)) {
		scan_pq4(s, w, l, bias, c);
		return;
	}
	vec_pq_scan8(w->table, g->pq.m, l->data, (size_t)l->len, w->dist);
	for (uint64_t r = 0; r < l->len; r++)
		w->dist[r] += bias;
	cands_take(c, l->ids, w->dist, (size_t)l->len);
}

/* One query: scan its probed lists, best first, then refine. */
static void search_task(void *ctx, size_t i, int worker)
{
	const struct search *s = ctx;
	const struct vec_ivf *g = s->g;
	const float *q = s->q + i * g->dim;
	struct scratch *w = s->sc + worker;

	cands_reset(&w->cand);
	query_setup(s, w, q);
	for (size_t p = 0; p < s->nprobe; p++) {
		uint64_t j = s->probe[i * s->nprobe + p];
		/* j >= nlist: padding (fewer lists than nprobe) */
		if (j < g->nlist && g->lists[j].len)
			scan_pair(s, w, i, p, j, &w->cand);
	}
	finish_query(s, w, i, q, &w->cand);
}

/*
 * The next query's candidates, chosen now (the k2 best, which its
 * finish_query would choose) and their refine codes prefetched into the
 * outer caches, so that they arrive while this query is finished.  (The
 * full vectors of an uncoded refine, prefetched so, gained nothing
 * measurable on glove-100.)
 */
static void refine_ahead(const struct search *s, struct cands *c)
{
	const struct vec_ivf *g = s->g;
	size_t got, stride = g->rq.stride;

	if (!s->refine || !g->rq_head || !g->rq_use)
		return;
	got = cands_final(c, s->k2, 0);
	c->n = got;
	for (size_t e = 0; e < got; e++) {
		const char *p = (const char *)(g->rq_codes +
					       (size_t)key_id(c->key[e]) * stride);
		for (size_t o = 0; o < stride; o += 64)
			__builtin_prefetch(p + o, 0, 1);
	}
}

/*
 * Query i's answer from its candidates c (by score, then vector id):
 * re-ranked if asked, then written out.
 */
static void finish_query(const struct search *s, struct scratch *w, size_t i,
			 const float *q, struct cands *c)
{
	const struct vec_ivf *g = s->g;
	uint64_t *ids = s->ids + i * s->k;
	float *sc = s->scores + i * s->k;
	size_t got;

	got = cands_final(c, s->k2, !s->refine);
	if (s->refine) {
		if (g->rq_head && g->rq_use)
			rerank_coded(s, w, c, q, got);
		else
			rerank(s, w, c, q, got);
		c = &w->top;
		got = cands_final(c, s->k, 1);
	}
	for (size_t e = 0; e < got; e++) {
		float d = key_score(c->key[e]);
		ids[e] = key_id(c->key[e]);
		sc[e] = s->l2 ? sqrtf(d > 0 ? d : 0) : -d;
	}
	for (size_t e = got; e < s->k; e++) {
		ids[e] = UINT64_MAX;
		sc[e] = s->l2 ? INFINITY : -INFINITY;
	}
}

/*
 * List-major, a part of a batch at a time: the part's (query, list) pairs
 * are sorted by list, and each probed list is read once for all the
 * part's queries that probe it, while it is in cache: the list is scanned
 * for each query in turn into the query's own candidates (s->qc).  Every
 * query's candidates are offered the same entries with the same scores as
 * by search_task (a list's scores or table are made the same way), and
 * keep the best by (score, id) whatever the order the entries come in, so
 * the answers are identical; only the entries come in another order.
 */
/*
 * Flat payload, list-major: the whole of the next list some query probes
 * (off[] as in lmajor_task), prefetched as list j is scanned; lists are
 * short, and the hardware's stream prefetch was still ramping up on one
 * when it ended (fetching the list after that as well gained nothing
 * more).  +4-5% at nprobe 1 on glove-100 and fashion-mnist.
 */
static void prefetch_next_list(const struct vec_ivf *g, const uint64_t *off,
			       uint32_t j)
{
	uint32_t n = j + 1;
	const char *d;
	size_t bytes;

	while (n < g->nlist && off[n] == off[j])
		n++;
	if (n >= g->nlist)
		return;
	d = (const char *)g->lists[n].data;
	bytes = (size_t)g->lists[n].len * g->dim * sizeof(float);
	for (size_t o = 0; o < bytes; o += 64)
		__builtin_prefetch(d + o);
}

/*
 * List j of full vectors for the n (query, probe) pairs pr, a few queries
 * at a time (one load of a row serves them all), each query's scores
 * taken into its candidates as scan_flat takes them.
 */
static void scan_flat_many(const struct search *s, struct scratch *w,
			   uint32_t j, const uint32_t *pr, size_t n)
{
	const struct vec_ivf *g = s->g;
	const struct list *l = &g->lists[j];
	const size_t len = (size_t)l->len, dim = g->dim;

	for (size_t e = 0; e < n; e += VEC_FLAT_NARROW_MAX) {
		unsigned nq = n - e < VEC_FLAT_NARROW_MAX ?
			(unsigned)(n - e) : VEC_FLAT_NARROW_MAX;
		const float *q = s->q + pr[e] / s->nprobe * dim;

		if (nq > 1) {
			for (unsigned t = 0; t < nq; t++)
				memcpy(w->qblk + t * dim,
				       s->q + pr[e + t] / s->nprobe * dim,
				       dim * sizeof *w->qblk);
			q = w->qblk;
		}
		s->fk->scores(q, nq, (const float *)(const void *)l->data, dim,
			      NULL, len, s->l2, w->dist);
		for (unsigned t = 0; t < nq; t++)
			cands_take(&s->qc[pr[e + t] / s->nprobe], l->ids,
				   w->dist + t * len, len);
		w->scanned += len * nq;
	}
}

static void lmajor_task(void *ctx, size_t part, int worker)
{
	const struct search *s = ctx;
	const struct vec_ivf *g = s->g;
	struct scratch *w = s->sc + worker;
	size_t m = s->nm, np = s->nprobe;
	size_t a = part * m / s->nchunks, b = (part + 1) * m / s->nchunks;
	uint64_t *off = w->loff, from = 0;
	uint32_t *byl = s->byl + a * np;
	size_t qb = qpart_bytes(s);

	memset(off, 0, ((size_t)g->nlist + 1) * sizeof *off);
	for (size_t i = a; i < b; i++) {
		cands_reset(&s->qc[i]);
		if (qb) {
			query_setup(s, w, s->q + i * g->dim);
			qpart_copy(s, w, s->qpart + i * qb, 1);
		}
		for (size_t p = 0; p < np; p++) {
			uint64_t j = s->probe[i * np + p];
			if (j < g->nlist && g->lists[j].len)
				off[j + 1]++;
		}
	}
	for (uint32_t j = 0; j < g->nlist; j++)
		off[j + 1] += off[j];
	for (size_t i = a; i < b; i++)
		for (size_t p = 0; p < np; p++) {
			uint64_t j = s->probe[i * np + p];
			if (j < g->nlist && g->lists[j].len)
				byl[off[j]++] = (uint32_t)(i * np + p);
		}
	/* off[j] is now where list j's pairs end (and j + 1's begin). */
	for (uint32_t j = 0; j < g->nlist; from = off[j++]) {
		if (from == off[j])
			continue; /* no query probes list j */
		if (g->codec == VEC_IVF_FLAT) {
			prefetch_next_list(g, off, j);
			scan_flat_many(s, w, j, byl + from, off[j] - from);
			continue;
		}
		for (uint64_t e = from; e < off[j]; e++) {
			size_t i = byl[e] / np;
			if (qb)
				qpart_copy(s, w, s->qpart + i * qb, 0);
			scan_pair(s, w, i, byl[e] % np, j, &s->qc[i]);
		}
	}
	for (size_t i = a; i < b; i++) {
		if (i + 1 < b)
			refine_ahead(s, &s->qc[i + 1]);
		finish_query(s, w, i, s->q + i * g->dim, &s->qc[i]);
	}
}

static void scratch_free(struct scratch *w)
{
	cands_free(&w->cand);
	cands_free(&w->top);
	cands_free(&w->rq_est);
	free(w->loff);
	free(w->rq_q);
	free(w->rq_x);
	free(w->rq_lb);
	free(w->table);
	free(w->qtab);
	free(w->qres);
	free(w->dist);
	free(w->qblk);
	free(w->sums);
	free(w->pos);
	free(w->lut);
	free(w->cq);
	free(w->cq2);
	free(w->i1);
	free(w->i2);
}

static int scratch_init(const struct search *s, struct scratch *w,
			uint64_t maxlen)
{
	const struct vec_ivf *g = s->g;
	size_t padded = (size_t)((maxlen + VEC_PQ_BLOCK - 1) / VEC_PQ_BLOCK) *
			VEC_PQ_BLOCK + VEC_PQ_BLOCK;

	memset(w, 0, sizeof *w);
	if (cands_init(&w->cand, s->k2) || cands_init(&w->top, s->k))
		return -1;
	if (s->qc) {
		w->loff = malloc(((size_t)g->nlist + 1) * sizeof *w->loff);
		if (!w->loff)
			return -1;
	}
	if (g->rq_head && s->refine) {
		w->rq_q = calloc(g->rq.stride, sizeof *w->rq_q);
		w->rq_x = malloc(g->dim * sizeof *w->rq_x);
		w->rq_lb = malloc(s->k2 * sizeof *w->rq_lb);
		if (!w->rq_q || !w->rq_x || !w->rq_lb || cands_init(&w->rq_est, s->k))
			return -1;
	}
	w->qres = malloc(g->dim * sizeof *w->qres);
	if (!w->qres)
		return -1;
	if (g->codec == VEC_IVF_SQ8) {
		w->cq = malloc(g->esize);
		w->cq2 = malloc(g->esize);
		w->i1 = malloc(padded * sizeof *w->i1);
		w->i2 = malloc(padded * sizeof *w->i2);
		w->dist = malloc(padded * sizeof *w->dist);
		return w->cq && w->cq2 && w->i1 && w->i2 && w->dist ? 0 : -1;
	}
	if (g->codec == VEC_IVF_FLAT) {
		/* a list's scores for up to VEC_FLAT_NARROW_MAX queries */
		w->dist = malloc(VEC_FLAT_NARROW_MAX * padded * sizeof *w->dist);
		if (s->qc)
			w->qblk = malloc(VEC_FLAT_NARROW_MAX * g->dim *
					 sizeof *w->qblk);
		return w->dist && (!s->qc || w->qblk) ? 0 : -1;
	}
	if (g->codec != VEC_IVF_PQ)
		return 0;
	w->table = malloc(g->pq.m * g->pq.ksub * sizeof *w->table);
	w->qtab = malloc(g->pq.m * g->pq.ksub * sizeof *w->qtab);
	w->dist = malloc(padded * sizeof *w->dist);
	if (!w->table || !w->qtab || !w->dist)
		return -1;
	if (pq4(g)) {
		w->sums = malloc(padded * sizeof *w->sums);
		w->pos = malloc(padded * sizeof *w->pos);
		w->lut = malloc(vec_pq4_lut_size(g->pq.m));
		if (!w->sums || !w->pos || !w->lut)
			return -1;
	}
	return 0;
}

/*
 * Whether a batch of this many queries is searched list-major: when their
 * candidates hold at most LMAJOR_CANDS_MAX; coded payloads also when
 * their lists average at least LMAJOR_CODED_LIST bytes of codes (smaller
 * lists stay in cache from one query to the next anyway, and then the
 * candidates of many queries at once cost more than it saves) and what is
 * kept of their query_setup is at most LMAJOR_QPART_MAX bytes.  bytes:
 * all the lists' data.
 */
static int lmajor_fits(const struct search *s, size_t batch, uint64_t bytes)
{
	const struct vec_ivf *g = s->g;

	if (g->lmajor == 0 || batch * s->k2 > LMAJOR_CANDS_MAX)
		return 0;
	if (g->codec == VEC_IVF_FLAT)
		return 1;
	return (g->lmajor > 0 || bytes >= (uint64_t)LMAJOR_CODED_LIST * g->nlist) &&
	       batch * qpart_bytes(s) <= LMAJOR_QPART_MAX;
}

int vec_ivf_search(const struct vec_ivf *g, const struct vec_vectors *v,
		   const float *queries, size_t nq, size_t k,
		   const struct vec_ivf_search_opts *o, uint64_t *ids,
		   float *scores, struct vec_errbuf *eb)
{
	struct search s;
	struct rank rk;
	int use_rank = 0;
	size_t rank_workers = 0;
	uint64_t *probe = NULL, maxlen = 0, lbytes = 0; /* longest list; all lists' bytes */
	float *psc = NULL;
	size_t nheaps = 0, nqc = 0, batch, nprobe = o->nprobe;
	int threads = o->threads, rc = VEC_OK;
	long refine = o->refine < 0 ? (long)g->refine : o->refine;

	if (k == 0 || nq == 0)
		return VEC_OK;
	if (g->codec == VEC_IVF_FLAT)
		refine = 0;
	if (refine > 0 && !v->x)
		return vec_err(eb, VEC_E_USAGE,
			       "this index keeps no full vectors to refine with (build it with --refine)");
	if (refine > 1000)
		return vec_err(eb, VEC_E_USAGE, "refine must be at most 1000");
	if (nprobe == 0)
		nprobe = vec_ivf_default_nprobe(g);
	if (nprobe >= g->nlist && g->codec == VEC_IVF_FLAT) {
		/* Every list: exhaustive, so the exact search answers it. */
		rc = vec_flat_search(v->x, v->norms, (size_t)v->count, v->dim,
				     v->metric, queries, nq, k, threads, ids, scores);
		if (rc)
			return vec_err(eb, rc, "search failed: %s", vec_strerror(rc));
		if (o->scanned)
			*o->scanned += nq * g->count;
		return VEC_OK;
	}
	if (nprobe > g->nlist)
		nprobe = g->nlist;
	if (threads <= 0)
		threads = vec_ncpu();
	for (uint32_t j = 0; j < g->nlist; j++) {
		maxlen = g->lists[j].len > maxlen ? g->lists[j].len : maxlen;
		lbytes += data_bytes(g, g->lists[j].len);
	}
	/* Bound the ranking's memory: at most PROBE_ENTRIES list numbers. */
	batch = nq < PROBE_BATCH ? nq : PROBE_BATCH;
	if (batch > PROBE_ENTRIES / nprobe)
		batch = PROBE_ENTRIES / nprobe ? PROBE_ENTRIES / nprobe : 1;
	memset(&s, 0, sizeof s);
	memset(&rk, 0, sizeof rk);
	s.g = g;
	s.v = v;
	s.k = k;
	s.refine = refine > 0;
	s.k2 = refine > 0 ? k * (size_t)refine : k;
	s.nprobe = nprobe;
	s.l2 = g->metric == VEC_METRIC_L2;
	s.kr = vec_kernels();
	s.fk = vec_flat_kernels();
	/* List-major when a batch's (query, list) pairs are not too few for
	 * its nlist (a part's pass over the list offsets is O(nlist)). */
	if (batch >= LMAJOR_MIN && 4 * (uint64_t)batch * nprobe >= g->nlist &&
	    lmajor_fits(&s, batch, lbytes)) {
		s.byl = malloc(batch * nprobe * sizeof *s.byl);
		s.qc = calloc(batch, sizeof *s.qc);
		if (s.qc && qpart_bytes(&s))
			s.qpart = malloc(batch * qpart_bytes(&s));
		if (!s.qc || !s.byl || (qpart_bytes(&s) && !s.qpart)) {
			rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
			goto done;
		}
		for (nqc = 0; nqc < batch; nqc++)
			if (cands_init(&s.qc[nqc], s.k2)) {
				rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
				goto done;
			}
	}
	probe = malloc(batch * nprobe * sizeof *probe);
	psc = malloc(batch * nprobe * sizeof *psc);
	s.sc = calloc((size_t)threads < batch ? (size_t)threads : batch,
		      sizeof *s.sc);
	if (!probe || !psc || !s.sc) {
		rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
		goto done;
	}
	for (nheaps = 0; nheaps < ((size_t)threads < batch ? (size_t)threads : batch);
	     nheaps++)
		if (scratch_init(&s, &s.sc[nheaps], maxlen)) {
			nheaps++;
			rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
			goto done;
		}
	s.probe = probe;
	if (nprobe <= RANK_PROBE_MAX) {
		size_t blocks = (batch + s.fk->qb - 1) / s.fk->qb;
		rank_workers = (size_t)threads < blocks ? (size_t)threads : blocks;
		if (rank_init(&rk, g, nprobe, s.l2, (int)rank_workers)) {
			rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
			goto done;
		}
		/* Every list: its answers do not depend on the lists' order
		 * (each query keeps the best by score, then id). */
		rk.any_order = nprobe >= g->nlist;
		use_rank = 1;
	}
	for (size_t q0 = 0; q0 < nq; q0 += batch) {
		size_t m = nq - q0 < batch ? nq - q0 : batch;
		const float *q = queries + q0 * g->dim;
		/* The nprobe best lists of each query, by its centroid. */
		if (use_rank)
			rc = rank_lists(&rk, q, m, (int)rank_workers,
					probe, psc);
		else
			rc = vec_flat_search(g->cent, NULL, g->nlist, g->dim,
					     s.l2 ? VEC_METRIC_L2 : VEC_METRIC_IP,
					     q, m, nprobe, threads, probe, psc);
		if (rc) {
			rc = vec_err(eb, rc, "search failed: %s", vec_strerror(rc));
			goto done;
		}
		s.q = q;
		s.psc = psc;
		s.ids = ids + q0 * k;
		s.scores = scores + q0 * k;
		if (s.qc && m >= LMAJOR_MIN) {
			s.nm = m;
			s.nchunks = nheaps < m ? nheaps : m;
			vec_pool_run((int)nheaps, s.nchunks, lmajor_task, &s);
		} else {
			vec_pool_run((int)nheaps, m, search_task, &s);
		}
	}
done:
	rank_free(&rk, rank_workers);
	if (s.sc) {
		for (size_t w = 0; w < nheaps; w++) {
			if (o->scanned)
				*o->scanned += s.sc[w].scanned;
			scratch_free(&s.sc[w]);
		}
	}
	free(s.sc);
	for (size_t e = 0; e < nqc; e++)
		cands_free(&s.qc[e]);
	free(s.qc);
	free(s.qpart);
	free(s.byl);
	free(probe);
	free(psc);
	return rc;
}

/* ---- the file ---- */

int vec_ivf_sections(struct vec_ivf *g, struct vec_file_section *secs,
		     size_t *n, struct vec_errbuf *eb)
{
	uint8_t *p = g->ivfp;
	uint64_t bytes = 0, pos = 0, done = 0;
	int sq8n = g->codec == VEC_IVF_SQ8 && g->metric == VEC_METRIC_L2;
	size_t ns = 0;

	/* Gather the lists into one array per section. */
	free_written(g);
	for (uint32_t j = 0; j < g->nlist; j++)
		bytes += data_bytes(g, g->lists[j].len);
	g->w_off = malloc(((size_t)g->nlist + 1) * sizeof *g->w_off);
	g->w_ids = malloc(g->count ? g->count * sizeof *g->w_ids : 1);
	g->w_data = malloc(bytes ? bytes : 1);
	if (sq8n)
		g->w_norms = malloc(g->count ? g->count * sizeof *g->w_norms : 1);
	if (!g->w_off || !g->w_ids || !g->w_data || (sq8n && !g->w_norms)) {
		free_written(g);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	for (uint32_t j = 0; j < g->nlist; j++) {
		const struct list *l = &g->lists[j];
		uint64_t db = data_bytes(g, l->len);
		g->w_off[j] = pos;
		if (l->len) {
			memcpy(g->w_ids + pos, l->ids, l->len * sizeof *g->w_ids);
			memcpy(g->w_data + done, l->data, db);
			if (sq8n)
				memcpy(g->w_norms + pos, l->norms, l->len * sizeof *g->w_norms);
		}
		pos += l->len;
		done += db;
	}
	g->w_off[g->nlist] = pos;

	memset(p, 0, IVFP_BYTES);
	vec_put_le32(p + 0, IVFP_VERSION);
	vec_put_le32(p + 4, g->nlist);
	vec_put_le64(p + 8, g->count);
	vec_put_le64(p + 16, g->seed);
	vec_put_le64(p + 24, g->train_size);
	vec_put_le32(p + 32, g->iters);
	vec_put_le32(p + 36, g->max_iter);
	vec_put_le32(p + 40, (uint32_t)g->dim);
	vec_put_le32(p + 44, (uint32_t)g->metric);
	vec_put_le32(p + 48, (uint32_t)g->codec);
	if (g->codec == VEC_IVF_PQ) {
		vec_put_le32(p + 52, (uint32_t)g->pq.m);
		vec_put_le32(p + 56, g->pq.nbits);
	}
	vec_put_le32(p + 60, g->refine);

	memset(secs, 0, VEC_IVF_MAX_SECTIONS * sizeof *secs);
	for (size_t i = 0; i < VEC_IVF_MAX_SECTIONS; i++)
		secs[i].flags = VEC_SEC_REQUIRED;
	secs[ns].id = VEC_SEC_IVFP;
	secs[ns].data = p;
	secs[ns++].length = IVFP_BYTES;
	secs[ns].id = VEC_SEC_IVFC;
	secs[ns].data = (const uint8_t *)g->cent;
	secs[ns++].length = (uint64_t)g->nlist * g->dim * 4;
	secs[ns].id = VEC_SEC_IVFO;
	secs[ns].data = (const uint8_t *)g->w_off;
	secs[ns++].length = ((uint64_t)g->nlist + 1) * 8;
	secs[ns].id = VEC_SEC_IVFI;
	secs[ns].data = (const uint8_t *)g->w_ids;
	secs[ns++].length = g->count * 4;
	secs[ns].id = g->codec == VEC_IVF_FLAT ? VEC_SEC_IVFV : VEC_SEC_IVFQ;
	secs[ns].data = g->w_data;
	secs[ns++].length = bytes;
	if (g->codec != VEC_IVF_FLAT) {
		secs[ns].id = VEC_SEC_IVFX;
		secs[ns].data = (const uint8_t *)g->cb;
		secs[ns++].length = g->cb_floats * 4;
	}
	if (sq8n) {
		secs[ns].id = VEC_SEC_IVFN;
		secs[ns].data = (const uint8_t *)g->w_norms;
		secs[ns++].length = g->count * 4;
	}
	if (g->rq_head) {
		/* Optional: a reader that ignores them re-ranks every
		 * candidate, with the same answers. */
		static const uint8_t none[1];
		secs[ns].id = VEC_SEC_IVFR;
		secs[ns].flags = 0;
		secs[ns].data = (const uint8_t *)g->rq_head;
		secs[ns++].length = (2 * g->dim + g->count) * 4;
		secs[ns].id = VEC_SEC_IVFS;
		secs[ns].flags = 0;
		secs[ns].data = g->rq_codes ? g->rq_codes : none;
		secs[ns++].length = g->count * g->rq.stride;
	}
	*n = ns;
	return VEC_OK;
}

static const char *codec_name(int codec)
{
	return codec == VEC_IVF_PQ ? "pq" : codec == VEC_IVF_SQ8 ? "sq8" : "flat";
}

int vec_ivf_open(struct vec_ivf **out, const struct vec_file *f,
		 const struct vec_vectors *v, struct vec_errbuf *eb)
{
	const struct vec_file_section *sp, *sc, *so, *si, *sd, *sx = NULL, *sn = NULL;
	const struct vec_file_section *sr, *ss;
	const char *name = f->name ? f->name : "index";
	struct vec_ivf_params ip;
	const uint8_t *p;
	const uint64_t *off;
	const uint32_t *ids;
	uint8_t *seen;
	struct vec_ivf *g;
	uint32_t ver, nlist, dim, metric, codec, m = 0, bits = 0, refine;
	uint64_t cnt, want, bytes = 0;
	int rc;

	*out = NULL;
	sp = vec_file_find(f, VEC_SEC_IVFP);
	sc = vec_file_find(f, VEC_SEC_IVFC);
	so = vec_file_find(f, VEC_SEC_IVFO);
	si = vec_file_find(f, VEC_SEC_IVFI);
	/* R-IVF-1: an ivf index has the four list sections. */
	if (!sp || !sc || !so || !si)
		return VEC_CORRUPT(eb, "%s: missing section '%s'", name,
				   !sp ? "IVFP" : !sc ? "IVFC" : !so ? "IVFO" : "IVFI");
	if (sp->length != IVFP_BYTES)
		return VEC_CORRUPT(eb, "%s: section 'IVFP' is %llu bytes, expected %d",
				   name, (unsigned long long)sp->length, IVFP_BYTES);
	p = sp->data;
	ver = vec_get_le32(p);
	if (ver != IVFP_VERSION)
		return vec_err(eb, VEC_E_VERSION, "%s: ivf version %u is not supported",
			       name, ver);
	nlist = vec_get_le32(p + 4);
	cnt = vec_get_le64(p + 8);
	dim = vec_get_le32(p + 40);
	metric = vec_get_le32(p + 44);
	codec = vec_get_le32(p + 48);
	refine = vec_get_le32(p + 60);
	/* R-IVF-2: a known payload; fields it does not use are zero. */
	if (codec > VEC_IVF_SQ8)
		return vec_err(eb, VEC_E_VERSION, "%s: ivf payload %u is not supported",
			       name, codec);
	if (codec == VEC_IVF_PQ) {
		m = vec_get_le32(p + 52);
		bits = vec_get_le32(p + 56);
	} else if (vec_get_le32(p + 52) || vec_get_le32(p + 56)) {
		return VEC_CORRUPT(eb, "%s: section 'IVFP': PQ fields set for payload %s",
				   name, codec_name((int)codec));
	}
	/* R-IVF-3: the lists hold every vector; 1 <= nlist <= count. */
	if (cnt != v->count || cnt > UINT32_MAX)
		return VEC_CORRUPT(eb, "%s: section 'IVFP': %llu vectors in the lists for %llu in the index",
				   name, (unsigned long long)cnt,
				   (unsigned long long)v->count);
	if (nlist < 1 || nlist > VEC_IVF_NLIST_MAX || nlist > cnt)
		return VEC_CORRUPT(eb, "%s: section 'IVFP': bad nlist %u for %llu vectors",
				   name, nlist, (unsigned long long)cnt);
	if (dim != v->dim || (int)metric != v->metric)
		return VEC_CORRUPT(eb, "%s: section 'IVFP': dimension or metric differ from the index",
				   name);
	memset(&ip, 0, sizeof ip);
	ip.nlist = nlist;
	ip.codec = (int)codec;
	ip.pq_m = m;
	ip.pq_bits = bits;
	ip.refine = refine;
	if ((codec == VEC_IVF_PQ && m == 0) ||
	    vec_ivf_check_params(&ip, dim, NULL))
		return VEC_CORRUPT(eb, "%s: section 'IVFP': bad %s parameters", name,
				   codec_name((int)codec));
	/* R-IVF-4: full vectors (VECS) exactly when the payload needs them. */
	if ((codec == VEC_IVF_FLAT || refine) != (v->x != NULL))
		return VEC_CORRUPT(eb, v->x ? "%s: section 'VECS' present, but the %s payload keeps no vectors"
					    : "%s: missing section 'VECS' (the %s payload needs the vectors)",
				   name, codec_name((int)codec));
	g = new_ivf(&ip, dim, (int)metric, nlist);
	if (!g)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	g->owned = 0;
	g->count = cnt;
	g->seed = vec_get_le64(p + 16);
	g->train_size = vec_get_le64(p + 24);
	g->iters = vec_get_le32(p + 32);
	g->max_iter = vec_get_le32(p + 36);
	free(g->own_cent);
	free(g->own_cb);
	g->own_cent = NULL;
	g->own_cb = NULL;

	/* R-IVF-5: sizes follow from nlist, dim, count and the payload. */
	rc = VEC_OK;
	if ((uint64_t)nlist * dim * 4 != sc->length)
		rc = VEC_CORRUPT(eb, "%s: section 'IVFC' is %llu bytes, expected %u x %u x 4",
				 name, (unsigned long long)sc->length, nlist, dim);
	else if (((uint64_t)nlist + 1) * 8 != so->length)
		rc = VEC_CORRUPT(eb, "%s: section 'IVFO' is %llu bytes, expected (%u + 1) x 8",
				 name, (unsigned long long)so->length, nlist);
	else if (cnt * 4 != si->length)
		rc = VEC_CORRUPT(eb, "%s: section 'IVFI' is %llu bytes, expected %llu x 4",
				 name, (unsigned long long)si->length,
				 (unsigned long long)cnt);
	if (rc)
		goto fail;
	/* R-IVF-6: offsets rise from 0 to count. */
	off = (const uint64_t *)(const void *)so->data;
	if (off[0] != 0 || off[nlist] != cnt) {
		rc = VEC_CORRUPT(eb, "%s: section 'IVFO': offsets must run from 0 to %llu",
				 name, (unsigned long long)cnt);
		goto fail;
	}
	for (uint32_t j = 0; j < nlist; j++) {
		if (off[j + 1] < off[j]) {
			rc = VEC_CORRUPT(eb, "%s: section 'IVFO': list %u ends before it starts",
					 name, j);
			goto fail;
		}
		bytes += data_bytes(g, off[j + 1] - off[j]);
	}
	sd = vec_file_find(f, codec == VEC_IVF_FLAT ? VEC_SEC_IVFV : VEC_SEC_IVFQ);
	if (codec != VEC_IVF_FLAT)
		sx = vec_file_find(f, VEC_SEC_IVFX);
	if (codec == VEC_IVF_SQ8 && metric == VEC_METRIC_L2)
		sn = vec_file_find(f, VEC_SEC_IVFN);
	if (!sd || (codec != VEC_IVF_FLAT && !sx) ||
	    (codec == VEC_IVF_SQ8 && metric == VEC_METRIC_L2 && !sn)) {
		rc = VEC_CORRUPT(eb, "%s: missing section '%s'", name,
				 !sd ? (codec == VEC_IVF_FLAT ? "IVFV" : "IVFQ") :
				 !sx && codec != VEC_IVF_FLAT ? "IVFX" : "IVFN");
		goto fail;
	}
	if (vec_mul_overflows(1, bytes, &want) || sd->length != want) {
		rc = VEC_CORRUPT(eb, "%s: section '%s' is %llu bytes, expected %llu",
				 name, codec == VEC_IVF_FLAT ? "IVFV" : "IVFQ",
				 (unsigned long long)sd->length,
				 (unsigned long long)bytes);
		goto fail;
	}
	if (sx && sx->length != g->cb_floats * 4) {
		rc = VEC_CORRUPT(eb, "%s: section 'IVFX' is %llu bytes, expected %llu",
				 name, (unsigned long long)sx->length,
				 (unsigned long long)g->cb_floats * 4);
		goto fail;
	}
	if (sn && sn->length != cnt * 4) {
		rc = VEC_CORRUPT(eb, "%s: section 'IVFN' is %llu bytes, expected %llu x 4",
				 name, (unsigned long long)sn->length,
				 (unsigned long long)cnt);
		goto fail;
	}
	/* R-IVF-9: refine codes come in pairs, with kept vectors, sized by
	 * dim and count; steps >= 0, offsets finite, bounds >= 0. */
	sr = vec_file_find(f, VEC_SEC_IVFR);
	ss = vec_file_find(f, VEC_SEC_IVFS);
	if (sr || ss) {
		uint64_t hl = (2 * (uint64_t)dim + cnt) * 4;
		const float *h;
		if (!sr || !ss || codec == VEC_IVF_FLAT || !refine) {
			rc = VEC_CORRUPT(eb, "%s: section '%s' without %s", name,
					 sr ? "IVFR" : "IVFS",
					 !sr || !ss ? (sr ? "'IVFS'" : "'IVFR'")
						    : "kept vectors of a coded payload");
			goto fail;
		}
		if (sr->length != hl || ss->length != cnt * vec_sq8_stride(dim)) {
			rc = VEC_CORRUPT(eb, "%s: section '%s' is %llu bytes, expected %llu",
					 name, sr->length != hl ? "IVFR" : "IVFS",
					 (unsigned long long)(sr->length != hl ? sr->length : ss->length),
					 (unsigned long long)(sr->length != hl ? hl :
							      cnt * vec_sq8_stride(dim)));
			goto fail;
		}
		h = (const float *)(const void *)sr->data;
		for (uint64_t i = 0; i < 2 * (uint64_t)dim + cnt; i++)
			if (!(i < dim ? isfinite(h[i]) : h[i] >= 0 && (i >= 2 * dim ||
									isfinite(h[i])))) {
				rc = VEC_CORRUPT(eb, i < 2 * (uint64_t)dim ?
						 "%s: section 'IVFR': quantiser value %llu is not finite or negative" :
						 "%s: section 'IVFR': bound %llu is negative or not a number",
						 name, (unsigned long long)(i < 2 * (uint64_t)dim ? i : i - 2 * dim));
				goto fail;
			}
		if (rq_attach(g, h, ss->data)) {
			rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
			goto fail;
		}
	}
	/* R-IVF-7: every id is below count and appears exactly once. */
	ids = (const uint32_t *)(const void *)si->data;
	seen = calloc(cnt / 8 + 1, 1);
	if (!seen) {
		rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
		goto fail;
	}
	for (uint64_t r = 0; r < cnt; r++) {
		uint32_t id = ids[r];
		if (id >= cnt || (seen[id >> 3] & (1u << (id & 7)))) {
			free(seen);
			rc = VEC_CORRUPT(eb, "%s: section 'IVFI': position %llu: %s id %u",
					 name, (unsigned long long)r,
					 id >= cnt ? "out of range" : "repeated", id);
			goto fail;
		}
		seen[id >> 3] |= (uint8_t)(1u << (id & 7));
	}
	free(seen);

	g->cent = (const float *)(const void *)sc->data;
	if (sx)
		set_codebook(g, (const float *)(const void *)sx->data);
	pq_transpose(g);
	bytes = 0;
	for (uint32_t j = 0; j < nlist; j++) {
		struct list *l = &g->lists[j];
		l->len = off[j + 1] - off[j];
		l->ids = ids + off[j];
		l->data = sd->data + bytes;
		if (sn)
			l->norms = (const float *)(const void *)sn->data + off[j];
		bytes += data_bytes(g, l->len);
	}
	*out = g;
	return VEC_OK;
fail:
	vec_ivf_free(g);
	return rc;
}

int vec_ivf_check(const struct vec_ivf *g, const struct vec_vectors *v,
		  struct vec_errbuf *eb)
{
	size_t dim = g->dim, cs = code_bytes(g);
	uint8_t *code = NULL, *want = NULL;
	float *res = NULL;
	int rc = VEC_OK;

	for (uint64_t i = 0; i < (uint64_t)g->nlist * dim; i++)
		if (!isfinite(g->cent[i]))
			return VEC_CORRUPT(eb, "centroid %llu is not finite",
					   (unsigned long long)(i / dim));
	for (size_t i = 0; i < g->cb_floats; i++)
		if (!isfinite(g->cb[i]))
			return VEC_CORRUPT(eb, "section 'IVFX': value %zu is not finite", i);
	if (v->count != g->count)
		return VEC_CORRUPT(eb, "the lists hold %llu vectors, the index %llu",
				   (unsigned long long)g->count,
				   (unsigned long long)v->count);
	for (uint32_t j = 0; j < g->nlist; j++)
		for (uint64_t r = 0; r < g->lists[j].len && g->lists[j].norms; r++)
			if (!isfinite(g->lists[j].norms[r]))
				return VEC_CORRUPT(eb, "section 'IVFN': list %u entry %llu is not finite",
						   j, (unsigned long long)r);
	if (!v->x)
		return VEC_OK; /* nothing to compare the codes with */
	code = malloc(cs + 1);
	want = malloc(cs + 1);
	res = malloc(dim * sizeof *res);
	if (!code || !want || !res) {
		rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
		goto done;
	}
	/* R-IVF-8: each list entry is its vector, or its vector's code. */
	for (uint32_t j = 0; j < g->nlist && !rc; j++) {
		const struct list *l = &g->lists[j];
		const float *c = g->cent + (size_t)j * dim;
		for (uint64_t r = 0; r < l->len; r++) {
			const float *x = v->x + (uint64_t)l->ids[r] * dim;
			const uint8_t *have;
			if (g->codec == VEC_IVF_FLAT) {
				if (memcmp(l->data + r * g->esize, x, g->esize)) {
					rc = VEC_CORRUPT(eb, "section 'IVFV': list %u entry %llu differs from vector %u",
							 j, (unsigned long long)r, l->ids[r]);
					break;
				}
				continue;
			}
			for (size_t d = 0; d < dim; d++)
				res[d] = x[d] - c[d];
			if (g->codec == VEC_IVF_SQ8)
				vec_sq8_encode(&g->sq, res, 1, want, NULL);
			else
				vec_pq_encode(&g->pq, res, 1, want);
			if (pq4(g)) {
				vec_pq4_unpack_one(l->data, (size_t)r, g->pq.m, code);
				have = code;
			} else {
				have = l->data + r * cs;
			}
			if (memcmp(have, want, cs)) {
				rc = VEC_CORRUPT(eb, "section 'IVFQ': list %u entry %llu is not the code of vector %u",
						 j, (unsigned long long)r, l->ids[r]);
				break;
			}
		}
	}
	/* R-IVF-8, refine codes: each is its vector's, and its bound holds. */
	if (!rc && g->rq_head && g->count) {
		uint8_t *rc8 = realloc(want, g->rq.stride);
		float bd;
		if (!rc8) {
			rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
			goto done;
		}
		want = rc8;
		for (uint64_t i = 0; i < g->count; i++) {
			rq_encode(g, v->x + i * dim, 1, want, &bd);
			if (memcmp(want, g->rq_codes + i * g->rq.stride, g->rq.stride)) {
				rc = VEC_CORRUPT(eb, "section 'IVFS': code %llu is not the code of vector %llu",
						 (unsigned long long)i, (unsigned long long)i);
				break;
			}
			if (!(g->rq_head[2 * dim + i] >= bd)) {
				rc = VEC_CORRUPT(eb, "section 'IVFR': bound %llu is below the distance from vector %llu to its code",
						 (unsigned long long)i, (unsigned long long)i);
				break;
			}
		}
	}
done:
	free(code);
	free(want);
	free(res);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void vec_ivf_stats(const struct vec_ivf *g, struct vec_ivf_stats *s)
{
	uint64_t *len = malloc((size_t)g->nlist * sizeof *len), data = 0;

	memset(s, 0, sizeof *s);
	s->nlist = g->nlist;
	s->seed = g->seed;
	s->train_size = g->train_size;
	s->iterations = g->iters;
	s->max_iterations = g->max_iter;
	s->default_nprobe = vec_ivf_default_nprobe(g);
	s->codec = g->codec;
	s->refine = g->refine;
	if (g->codec == VEC_IVF_PQ) {
		s->pq_m = (uint32_t)g->pq.m;
		s->pq_bits = g->pq.nbits;
	}
	s->code_bytes = code_bytes(g);
	s->codebook_bytes = g->cb_floats * 4;
	if (g->rq_head) {
		s->refine_code_bytes = (2 * g->dim + g->count) * 4 +
				       g->count * g->rq.stride;
		for (uint64_t i = 0; i < g->count; i++)
			s->refine_exact += g->rq_head[2 * g->dim + i] == 0;
	}
	for (uint32_t j = 0; j < g->nlist; j++)
		data += data_bytes(g, g->lists[j].len);
	s->list_bytes = IVFP_BYTES + (uint64_t)g->nlist * g->dim * 4 +
			((uint64_t)g->nlist + 1) * 8 + g->count * 4 + data +
			s->codebook_bytes +
			(g->codec == VEC_IVF_SQ8 && g->metric == VEC_METRIC_L2 ?
			 g->count * 4 : 0);
	if (!len)
		return;
	for (uint32_t j = 0; j < g->nlist; j++) {
		len[j] = g->lists[j].len;
		s->empty_lists += len[j] == 0;
	}
	qsort(len, g->nlist, sizeof *len, cmp_u64);
	s->list_min = len[0];
	s->list_max = len[g->nlist - 1];
	s->list_median = len[(g->nlist - 1) / 2];
	free(len);
}
