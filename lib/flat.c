/*
 * flat.c - exact k-nearest-neighbour search: distances fused with top-k.
 *
 * The work is a matrix product Q X^T (inner products; for L2 the distance
 * is ||x||^2 - 2 <q, x> + ||q||^2, and the last term does not change any
 * query's ranking) whose entries are fed to one bounded heap per query as
 * soon as they are computed, so no nq x n matrix is ever stored.
 *
 * Shape of the computation:
 *  - Queries are cut into wide blocks of qb (16 or 32) queries, packed
 *    dimension-major (qp[d * qb + lane]) once per call, so that a kernel
 *    multiplies one broadcast base value into a whole register of queries:
 *    the base is read in place, never copied or transposed.  Queries left
 *    over after the last full block go to the narrow kernel (a few queries
 *    against consecutive rows, summed along the dimension), which is also
 *    what a single query streams through.
 *  - Each kernel call rejects most candidates with one vector compare
 *    against the heaps' current worst; survivors are few (about
 *    k log(n / k) per query), so the heaps cost almost nothing.
 *  - The base is walked in chunks of a few hundred KiB, and all the queries
 *    of a group visit one chunk before the next, so each base vector comes
 *    from memory once per group, not once per query block.
 *  - Threads take (query group, base part) tasks.  Many queries: split the
 *    queries, one part.  Few queries: split the base into parts, each with
 *    its own heaps, merged at the end.
 *  - On CPUs with AVX512_BF16, large batches first bound every score from
 *    bf16 dot products (twice the rate of fp32 FMAs) and score exactly only
 *    the rows that may be in the result: see "The bf16 prefilter" below.
 *  - L2 results are finally re-scored directly as sum (q - x)^2 and sorted:
 *    the expanded form loses precision when ||x||^2 is large and the
 *    distance small, which would show in the reported distances.
 *
 * Every (query, row) score is computed by the same instruction sequence
 * whichever thread, part or tile it falls in, so the results do not depend
 * on the thread count.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"

#define CHUNK_BYTES (192 * 1024) /* base bytes walked by a group at a time */
#define GROUP_QUERIES 256        /* queries sharing one walk of the base */
#define BATCH_ENTRIES (1u << 22) /* heap entries allocated at once */
#define MIN_PART_ROWS 2048       /* smallest base part worth a task */

/* See kernels.h: the slow path of every kernel's fast reject. */
void vec_flat_offer(struct vec_topk *h, float *thr, uint64_t id, float score)
{
	vec_topk_push(h, id, score);
	*thr = vec_topk_worst(h);
}

/* ---- portable kernels: the scalar level, and NEON's wide blocks ---- */

#define PQB 8 /* lanes of the portable wide kernel */
#define PRB 4 /* rows per portable tile */

/*
 * The wide kernel in plain C, tiled like the SIMD ones (PRB rows x PQB
 * lanes of independent sums) so that compilers can vectorise it.
 */
static void wide_portable(const struct vec_flat_wide *w)
{
	float thr[PQB];
	size_t dim = w->dim;

	for (unsigned l = 0; l < PQB; l++)
		thr[l] = l < w->nlanes && !w->out ? vec_topk_worst(w->heap[l])
						  : -INFINITY;
	for (size_t j = 0; j < w->nb; j += PRB) {
		size_t rows = w->nb - j < PRB ? w->nb - j : PRB;
		float acc[PRB][PQB] = { { 0 } };

		for (size_t d = 0; d < dim; d++) {
			const float *q = w->qp + d * PQB;
			for (size_t r = 0; r < rows; r++) {
				float xv = w->x[(j + r) * dim + d];
				for (unsigned l = 0; l < PQB; l++)
					acc[r][l] += q[l] * xv;
			}
		}
		for (size_t r = 0; r < rows; r++) {
			if (w->out) {
				uint64_t m = 0;
				for (unsigned l = 0; l < PQB; l++) {
					float s = w->norms ? w->norms[j + r] - 2 * acc[r][l]
							   : -acc[r][l];
					w->out[(j + r) * PQB + l] = s;
					m |= (uint64_t)(l < w->nlanes && w->pass &&
							s <= w->pthr[l]) << l;
				}
				if (w->pass)
					w->pass[j + r] = m;
				continue;
			}
			for (unsigned l = 0; l < w->nlanes; l++) {
				float s = w->norms ? w->norms[j + r] - 2 * acc[r][l]
						   : -acc[r][l];
				if (s <= thr[l])
					vec_flat_offer(w->heap[l], &thr[l],
						       w->id0 + j + r, s);
			}
		}
	}
}

/* The narrow kernel through the selected level's l2sq/dot. */
static void narrow_portable(const struct vec_flat_narrow *w)
{
	const struct vec_kernels *kr = vec_kernels();
	float thr[VEC_FLAT_NARROW_MAX];

	for (unsigned i = 0; i < w->nq; i++)
		thr[i] = vec_topk_worst(w->heap[i]);
	for (size_t j = 0; j < w->nb; j++) {
		const float *x = w->x + j * w->dim;
		for (unsigned i = 0; i < w->nq; i++) {
			const float *q = w->q + i * w->dim;
			float s = w->l2 ? kr->l2sq(q, x, w->dim)
					: -kr->dot(q, x, w->dim);
			if (s <= thr[i])
				vec_flat_offer(w->heap[i], &thr[i], w->id0 + j,
					       s);
		}
	}
}

/* Scores of chosen rows, as narrow_portable sums them. */
static void scores_portable(const float *q, unsigned nq, const float *x,
			    size_t dim, const uint32_t *rows, size_t n, int l2,
			    float *out)
{
	const struct vec_kernels *kr = vec_kernels();

	for (size_t j = 0; j < n; j++) {
		const float *xr = x + (rows ? rows[j] : j) * dim;
		for (unsigned i = 0; i < nq; i++) {
			const float *qi = q + i * dim;
			out[i * n + j] = l2 ? kr->l2sq(qi, xr, dim)
					    : -kr->dot(qi, xr, dim);
		}
	}
}

static const struct vec_flat_kernels flat_portable = {
	"portable", PQB, wide_portable, narrow_portable, scores_portable,
};

/* The flat kernels matching the distance level in use. */
const struct vec_flat_kernels *vec_flat_kernels(void)
{
	switch (vec_kernels()->level) {
#ifdef VEC_HAVE_X86
	case VEC_SIMD_AVX512:
		return &vec_flat_avx512;
	case VEC_SIMD_AVX2:
		return &vec_flat_avx2;
#endif
	default:
		return &flat_portable;
	}
}

/* ---- the search ---- */

struct search {
	const float *base, *norms; /* norms: NULL for IP / COS */
	size_t n, dim, k;          /* k: heap capacity, min(k, n) */
	int l2;
	const struct vec_flat_kernels *fk;
	const float *q;            /* this batch's queries */
	size_t nq;
	size_t nwide, nblocks;     /* queries in wide blocks, and blocks */
	float *qp;                 /* nblocks packed blocks */
	size_t gb, nwgroups, ngroups; /* blocks per group; groups */
	size_t parts, part_rows, chunk_rows;
	struct vec_topk *heaps;    /* parts * nq: heaps[p * nq + i] */
	/* final pass */
	const struct vec_kernels *kr;
	size_t kout;               /* the caller's k */
	uint64_t *ids;
	float *scores;
	struct rescore *scratch;   /* kout per worker */
	/* the bf16 prefilter */
	int bf16_ok;               /* this call qualifies */
	size_t bchunk;             /* rows per chunk converted at a time */
	uint32_t *xb;              /* per worker: bchunk rows as bf16 pairs */
	float *rowc;               /* per worker: 4 per row, see kernels.h */
	size_t npairs;
	int use_bf16;              /* this batch's wide blocks use it */
	uint32_t *qpb;             /* nblocks packed bf16 blocks */
	float *qa, *qc;            /* nblocks * 32 bound factors */
	struct vec_flat_cands *cands; /* nwide lists */
	struct vec_topk *ub;       /* their heaps of upper bounds */
	uint64_t *cid;             /* their first arrays, cap + k each */
	float *clo;
	size_t *over, nover;       /* queries searched again in fp32 */
	float *op;                 /* their packed fp32 blocks */
};

struct rescore {
	float s;
	uint64_t id;
};

/* Pack wide block b of the queries dimension-major, padding with zeros. */
static void pack_block(const struct search *s, size_t b)
{
	unsigned qb = s->fk->qb;
	float *dst = s->qp + b * s->dim * qb;
	size_t first = b * qb;

	for (unsigned l = 0; l < qb; l++) {
		const float *src = s->q + (first + l) * s->dim;
		int real = first + l < s->nwide;
		for (size_t d = 0; d < s->dim; d++)
			dst[d * qb + l] = real ? src[d] : 0.0f;
	}
}

#if defined(VEC_HAVE_X86) && (defined(__x86_64__) || defined(__i386__))
#define FLAT_BF16 1
static void bf16_group(const struct search *s, size_t g, int worker);
#endif

/* One (query group, base part) task: walk the part chunk by chunk. */
static void search_task(void *ctx, size_t task, int worker)
{
	const struct search *s = ctx;
	size_t g = task / s->parts, p = task % s->parts;
	size_t lo = p * s->part_rows;
	size_t hi = lo + s->part_rows < s->n ? lo + s->part_rows : s->n;
	struct vec_topk *hp = s->heaps + p * s->nq;
	unsigned qb = s->fk->qb;
	struct vec_topk *lanes[64];

	(void)worker;
#ifdef FLAT_BF16
	if (s->use_bf16 && g < s->nwgroups) {
		bf16_group(s, g, worker);
		return;
	}
#endif
	for (size_t c = lo; c < hi; c += s->chunk_rows) {
		size_t nb = hi - c < s->chunk_rows ? hi - c : s->chunk_rows;
		const float *x = s->base + c * s->dim;

		if (g < s->nwgroups) {
			size_t b0 = g * s->gb;
			size_t b1 = b0 + s->gb < s->nblocks ? b0 + s->gb
							    : s->nblocks;
			for (size_t b = b0; b < b1; b++) {
				struct vec_flat_wide w;
				size_t first = b * qb;
				w.out = NULL;
				w.pass = NULL;
				w.qp = s->qp + b * s->dim * qb;
				w.x = x;
				w.norms = s->norms ? s->norms + c : NULL;
				w.nb = nb;
				w.dim = s->dim;
				w.id0 = c;
				w.nlanes = (unsigned)(s->nwide - first < qb
							      ? s->nwide - first
							      : qb);
				for (unsigned l = 0; l < w.nlanes; l++)
					lanes[l] = hp + first + l;
				w.heap = lanes;
				s->fk->wide(&w);
			}
		} else {
			for (size_t i = s->nwide; i < s->nq;
			     i += VEC_FLAT_NARROW_MAX) {
				struct vec_flat_narrow w;
				size_t m = s->nq - i;
				w.q = s->q + i * s->dim;
				w.nq = (unsigned)(m < VEC_FLAT_NARROW_MAX
							  ? m
							  : VEC_FLAT_NARROW_MAX);
				w.x = x;
				w.nb = nb;
				w.dim = s->dim;
				w.id0 = c;
				w.l2 = s->l2;
				for (unsigned l = 0; l < w.nq; l++)
					lanes[l] = hp + i + l;
				w.heap = lanes;
				s->fk->narrow(&w);
			}
		}
	}
}

/* Order for the final L2 sort: distance, then id. */
static int rescore_cmp(const void *a, const void *b)
{
	const struct rescore *x = a, *y = b;

	if (x->s != y->s)
		return x->s < y->s ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * Final pass for query i: merge the parts' heaps, extract best first,
 * re-score L2 directly, write the caller's row with its padding.
 */
static void finish_task(void *ctx, size_t i, int worker)
{
	const struct search *s = ctx;
	struct vec_topk *h0 = s->heaps + i;
	uint64_t *ids = s->ids + i * s->kout;
	float *sc = s->scores + i * s->kout;
	size_t got;

	for (size_t p = 1; p < s->parts; p++) {
		const struct vec_topk *hp = s->heaps + p * s->nq + i;
		for (size_t e = 0; e < hp->n; e++)
			vec_topk_push(h0, hp->id[e], hp->score[e]);
	}
	got = vec_topk_extract(h0, ids, sc);
	if (s->l2) {
		struct rescore *r = s->scratch + (size_t)worker * s->kout;
		const float *q = s->q + i * s->dim;
		for (size_t e = 0; e < got; e++) {
			r[e].id = ids[e];
			r[e].s = s->kr->l2sq(q, s->base + ids[e] * s->dim,
					     s->dim);
		}
		qsort(r, got, sizeof *r, rescore_cmp);
		for (size_t e = 0; e < got; e++) {
			ids[e] = r[e].id;
			sc[e] = sqrtf(r[e].s > 0 ? r[e].s : 0);
		}
	} else {
		for (size_t e = 0; e < got; e++)
			sc[e] = -sc[e];
	}
	for (size_t e = got; e < s->kout; e++) {
		ids[e] = UINT64_MAX;
		sc[e] = s->l2 ? INFINITY : -INFINITY;
	}
}

/* Squared norms of base rows, one task per slice. */
struct norms_ctx {
	const float *base;
	float *out;
	size_t n, dim, slice;
	const struct vec_kernels *kr;
};

/* Squared norms of one slice of rows. */
static void norms_task(void *ctx, size_t t, int worker)
{
	const struct norms_ctx *c = ctx;
	size_t lo = t * c->slice;
	size_t hi = lo + c->slice < c->n ? lo + c->slice : c->n;

	(void)worker;
	for (size_t j = lo; j < hi; j++)
		c->out[j] = c->kr->dot(c->base + j * c->dim,
				       c->base + j * c->dim, c->dim);
}

/* 64-byte aligned allocation of n floats (n may be 0). */
static float *alloc_floats(size_t n)
{
	size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;

	return aligned_alloc(64, bytes ? bytes : 64);
}

/* Round up to a multiple of m. */
static size_t round_up(size_t v, size_t m)
{
	return (v + m - 1) / m * m;
}



#ifdef FLAT_BF16
/*
 * The bf16 prefilter, on CPUs with AVX512_BF16 when the AVX-512 level is in
 * use and the batch is large enough to pay for converting the base.
 *
 * Queries q and base rows x are rounded to bf16 (q~, x~); vdpbf16ps gives
 * a ~ <q~, x~> at twice the rate of fp32 FMAs.  What the fp32 path would
 * compute, f ~ <q, x> (one FMA per dimension), differs from a by at most
 *
 *   |<q, x> - <q~, x~>| <= ||q|| e_x + e_q ||x~||     e_x = ||x - x~||,
 *                                                      e_q = ||q - q~||
 *   |f - <q, x>|        <= g32 ||q|| ||x||             g32 = (dim+16) u
 *   |a - <q~, x~>|      <= gbf ||q~|| ||x~||           gbf = (2dim+16) u
 *
 * (u = 2^-24; each sum's rounding errors, at most one per FMA and two per
 * vdpbf16ps, by the classical recursive-summation bound with margin), plus
 * an absolute allowance for flushed denormals (vdpbf16ps flushes inputs,
 * products and sums below 2^-126).  The scores add the rounding of
 * nrm - 2 a (L2) and of s +- e, covered by 2^-20 relative terms, and every
 * factor is rounded up and enlarged by 2^-18 for the fp32 arithmetic that
 * evaluates the bound.  So, with
 *
 *   e = A B + C D + N,   A = ||q||,  C = e_q + (gbf + 2^-20) ||q~||,
 *   B = e_x + g32 ||x||, D = ||x~||  (both doubled for L2),
 *   N = the denormal allowance (+ 2^-20 |nrm| for L2),
 *
 * the fp32 path's score of every (query, row) lies in [s - e, s + e].
 * Each query keeps the k best upper bounds (tau: the worst of them); a row
 * whose lower bound exceeds tau is beaten by k rows and cannot be in the
 * result.  The others are collected, filtered once more with the final
 * tau, and scored again exactly as the fp32 kernels score them, into the
 * same heaps: the results are those of the fp32 path, bit for bit.
 *
 * Values must be finite and norms below 2^50 so that nothing overflows;
 * otherwise, or if a query collects too many candidates (data with huge
 * ties), the fp32 path does the work.
 */
/*
 * Each thread's group of queries converts the whole base, chunk by chunk
 * into a buffer that stays in cache; that costs about what 30-60 queries
 * gain, so a batch needs 128 queries per thread (bench_flat).
 */
#define BF16_THREAD_QUERIES 128
#define BF16_MIN_ROWS 2048
#define BF16_MAX_DIM 16384
#define BF16_MAX_SQ 0x1p100     /* squared norms of rows and queries */
#define BF16_MAX_NRM 0x1p120    /* |given squared norms| */
#define BF16_SLICE 256          /* rows converted per call */

/* v rounded up to a float (v >= 0, far below FLT_MAX). */
static float up(double v)
{
	return (float)(v * (1 + 0x1p-20));
}

/* Accumulation error factors of the two sums. */
static double g32(size_t dim)
{
	return (double)(dim + 16) * 0x1p-24 * 1.01;
}

static double gbf(size_t dim)
{
	return (double)(2 * dim + 16) * 0x1p-24 * 1.01;
}

/* The allowance for flushed denormals and underflow, either sum. */
static double abs_allowance(size_t dim)
{
	return (double)(2 * dim + 16) * 0x1p-124;
}

static int bf16_cpu;
static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;

/* Probe the CPU once, not per search call. */
static void bf16_probe(void)
{
	__builtin_cpu_init();
	bf16_cpu = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
}

int vec_flat_bf16_usable(void)
{
	const char *env = getenv("VEC_FLAT_BF16");

	if (vec_flat_kernels() != &vec_flat_avx512 || (env && !strcmp(env, "0")))
		return 0;
	pthread_once(&bf16_once, bf16_probe);
	return bf16_cpu;
}

/* Does this call qualify (sizes, level, CPU; VEC_FLAT_BF16=0 is off)?  The
 * variable is read per call so that a program (the tests) may toggle it. */
static int bf16_wanted(const struct search *s, size_t nq, int threads)
{
	if (s->fk != &vec_flat_avx512 || s->n < BF16_MIN_ROWS ||
	    s->dim > BF16_MAX_DIM || nq < BF16_THREAD_QUERIES * (size_t)threads)
		return 0;
	return vec_flat_bf16_usable();
}

int vec_flat_bf16_rows(const float *x, size_t n, size_t dim, size_t npairs,
		       const float *norms, uint32_t *xb, float *rc)
{
	double st[3 * BF16_SLICE], g = g32(dim), ab = abs_allowance(dim);
	double two = norms ? 2 : 1;

	for (size_t lo = 0; lo < n; lo += BF16_SLICE) {
		size_t m = n - lo < BF16_SLICE ? n - lo : BF16_SLICE;
		if (vec_flat_bf16_convert(x + lo * dim, m, dim, npairs,
					  xb + lo * npairs, st))
			return 1;
		for (size_t j = 0; j < m; j++) {
			const double *r = st + 3 * j;
			float *o = rc + 4 * (lo + j);
			double nrm = norms ? norms[lo + j] : 0;

			if (!(r[0] <= BF16_MAX_SQ && r[1] <= BF16_MAX_SQ) ||
			    !(fabs(nrm) <= BF16_MAX_NRM))
				return 1;
			o[0] = (float)nrm;
			o[1] = up(two * (sqrt(r[2]) + g * sqrt(r[0])));
			o[2] = up(two * sqrt(r[1]));
			o[3] = up(ab + (norms ? 0x1p-20 * fabs(nrm) : 0));
		}
	}
	return 0;
}

int vec_flat_bf16_query(const float *q, size_t dim, size_t npairs,
			uint32_t *row, float *qa, float *qc)
{
	double st[3];

	if (dim > BF16_MAX_DIM ||
	    vec_flat_bf16_convert(q, 1, dim, npairs, row, st) ||
	    !(st[0] <= BF16_MAX_SQ && st[1] <= BF16_MAX_SQ))
		return 1;
	*qa = up(sqrt(st[0]) * (1 + 0x1p-18));
	*qc = up((sqrt(st[2]) + (gbf(dim) + 0x1p-20) * sqrt(st[1])) *
		 (1 + 0x1p-18));
	return 0;
}

/*
 * Base rows [c, c + nb) to bf16 pairs in xb, with their bound factors in
 * rc.  Returns nonzero if a row is not fit for the bound.
 */
static int bf16_rows(const struct search *s, size_t c, size_t nb,
		     uint32_t *xb, float *rc)
{
	return vec_flat_bf16_rows(s->base + c * s->dim, nb, s->dim, s->npairs,
				  s->l2 ? s->norms + c : NULL, xb, rc);
}

/*
 * Convert and pack the wide blocks' queries, with their bound factors.
 * Returns 0 if a query is not fit for the bound (the batch goes fp32).
 */
static int bf16_queries(struct search *s)
{
	const unsigned qb = VEC_FLAT_BF16_QB;
	uint32_t *row = malloc(s->npairs * sizeof *row);
	int ok = 1;

	if (!row)
		return 0;
	for (size_t b = 0; b < s->nblocks && ok; b++) {
		uint32_t *dst = s->qpb + b * s->npairs * qb;
		for (unsigned l = 0; l < qb; l++) {
			size_t i = b * qb + l;
			if (i >= s->nwide) {
				for (size_t p = 0; p < s->npairs; p++)
					dst[p * qb + l] = 0;
				s->qa[i] = s->qc[i] = 0;
				continue;
			}
			if (vec_flat_bf16_query(s->q + i * s->dim, s->dim,
						s->npairs, row, s->qa + i,
						s->qc + i)) {
				ok = 0;
				break;
			}
			for (size_t p = 0; p < s->npairs; p++)
				dst[p * qb + l] = row[p];
		}
	}
	free(row);
	return ok;
}

/* Wide block b against base rows [c, c + nb), converted: candidates. */
static void bf16_block(const struct search *s, size_t b, const uint32_t *xb,
		       const float *rc, size_t c, size_t nb)
{
	const unsigned qb = VEC_FLAT_BF16_QB;
	struct vec_flat_bf16_wide w;
	struct vec_flat_cands *cl[VEC_FLAT_BF16_QB];
	size_t first = b * qb;

	w.out = NULL;

	w.qp = s->qpb + b * s->npairs * qb;
	w.x = xb;
	w.row = rc;
	w.qa = s->qa + first;
	w.qc = s->qc + first;
	w.nb = nb;
	w.npairs = s->npairs;
	w.id0 = c;
	w.l2 = s->l2;
	w.nlanes = (unsigned)(s->nwide - first < qb ? s->nwide - first : qb);
	for (unsigned l = 0; l < w.nlanes; l++)
		cl[l] = s->cands + first + l;
	w.cand = cl;
	vec_flat_bf16_wide(&w);
}

/*
 * A group of wide blocks: each chunk of the base is converted once into
 * this worker's buffer, then all the group's blocks visit it.  A chunk
 * unfit for the bound sends the group's queries to the fp32 re-run.
 */
static void bf16_group(const struct search *s, size_t g, int worker)
{
	const unsigned qb = VEC_FLAT_BF16_QB;
	uint32_t *xb = s->xb + (size_t)worker * s->bchunk * s->npairs;
	float *rc = s->rowc + (size_t)worker * s->bchunk * 4;
	size_t b0 = g * s->gb;
	size_t b1 = b0 + s->gb < s->nblocks ? b0 + s->gb : s->nblocks;

	for (size_t c = 0; c < s->n; c += s->bchunk) {
		size_t nb = s->n - c < s->bchunk ? s->n - c : s->bchunk;
		if (bf16_rows(s, c, nb, xb, rc)) {
			size_t hi = b1 * qb < s->nwide ? b1 * qb : s->nwide;
			for (size_t i = b0 * qb; i < hi; i++)
				s->cands[i].overflow = 1;
			return;
		}
		for (size_t b = b0; b < b1; b++)
			bf16_block(s, b, xb, rc, c, nb);
	}
}

/*
 * A full list: drop what the current tau already excludes, and grow if
 * that did not free half of it.  0 if the list may not grow further.
 */
static int cand_make_room(struct vec_flat_cands *c, float tau)
{
	size_t m = 0, cap;
	uint64_t *id;
	float *lo;

	for (size_t e = 0; e < c->n; e++) {
		if (c->lo[e] <= tau) {
			c->id[m] = c->id[e];
			c->lo[m] = c->lo[e];
			m++;
		}
	}
	c->n = m;
	if (m <= c->cap / 2)
		return 1;
	cap = c->cap * 2;
	if (cap > c->limit)
		return 0;
	id = malloc(cap * sizeof *id);
	lo = malloc(cap * sizeof *lo);
	if (!id || !lo) {
		free(id);
		free(lo);
		return 0;
	}
	memcpy(id, c->id, m * sizeof *id);
	memcpy(lo, c->lo, m * sizeof *lo);
	if (c->owned) {
		free(c->id);
		free(c->lo);
	}
	c->id = id;
	c->lo = lo;
	c->cap = cap;
	c->owned = 1;
	return 1;
}

/* See kernels.h: a row whose lower bound passed the threshold. */
void vec_flat_cand_offer(struct vec_flat_cands *c, float *thr, uint64_t id,
			 float lo, float hi)
{
	if (c->n == c->cap && !cand_make_room(c, *thr)) {
		c->overflow = 1;
		*thr = -INFINITY; /* nothing more for this query */
		return;
	}
	c->id[c->n] = id;
	c->lo[c->n] = lo;
	c->n++;
	if (hi <= *thr) {
		vec_topk_push(c->ub, id, hi);
		*thr = vec_topk_worst(c->ub);
	}
}

/*
 * Query i of the wide blocks: score its remaining candidates as the fp32
 * wide kernel would, into its result heap.
 */
static void rerank_task(void *ctx, size_t i, int worker)
{
	const struct search *s = ctx;
	struct vec_flat_cands *c = s->cands + i;
	struct vec_topk *h = s->heaps + i;
	float tau = vec_topk_worst(c->ub);
	size_t m = 0;

	(void)worker;
	if (c->overflow)
		return;
	for (size_t e = 0; e < c->n; e++)
		if (c->lo[e] <= tau)
			c->id[m++] = c->id[e];
	vec_flat_fma_dots(s->q + i * s->dim, s->base, s->dim, c->id, m,
			  c->lo);
	for (size_t e = 0; e < m; e++) {
		/* 2a is exact: nrm - 2a rounds once, like the kernel's
		 * fused negative multiply-add */
		float a = c->lo[e];
		float sc = s->l2 ? s->norms[c->id[e]] - 2.0f * a : -a;
		vec_topk_push(h, c->id[e], sc);
	}
}

/* Block b of the overflowed queries through the fp32 wide kernel. */
static void over_task(void *ctx, size_t b, int worker)
{
	const struct search *s = ctx;
	unsigned qb = s->fk->qb;
	struct vec_topk *lanes[64];
	struct vec_flat_wide w;
	size_t first = b * qb;

	(void)worker;
	w.out = NULL;
	w.pass = NULL;
	w.qp = s->op + b * s->dim * qb;
	w.dim = s->dim;
	w.nlanes = (unsigned)(s->nover - first < qb ? s->nover - first : qb);
	for (unsigned l = 0; l < w.nlanes; l++)
		lanes[l] = s->heaps + s->over[first + l];
	w.heap = lanes;
	for (size_t c = 0; c < s->n; c += s->chunk_rows) {
		w.nb = s->n - c < s->chunk_rows ? s->n - c : s->chunk_rows;
		w.x = s->base + c * s->dim;
		w.norms = s->norms ? s->norms + c : NULL;
		w.id0 = c;
		s->fk->wide(&w);
	}
}

/* Search the overflowed queries again in fp32; their heaps are empty. */
static int bf16_overflow(struct search *s, int threads)
{
	unsigned qb = s->fk->qb;
	size_t nb;

	s->nover = 0;
	for (size_t i = 0; i < s->nwide; i++)
		if (s->cands[i].overflow)
			s->nover++;
	if (s->nover == 0)
		return VEC_OK;
	nb = (s->nover + qb - 1) / qb;
	s->over = malloc(s->nover * sizeof *s->over);
	s->op = alloc_floats(nb * s->dim * qb);
	if (!s->over || !s->op)
		return VEC_E_NOMEM;
	s->nover = 0;
	for (size_t i = 0; i < s->nwide; i++)
		if (s->cands[i].overflow)
			s->over[s->nover++] = i;
	for (size_t e = 0; e < nb * qb; e++) {
		float *dst = s->op + (e / qb) * s->dim * qb + e % qb;
		for (size_t d = 0; d < s->dim; d++)
			dst[d * qb] = e < s->nover ? s->q[s->over[e] * s->dim + d]
						   : 0.0f;
	}
	vec_pool_run(threads, nb, over_task, s);
	return VEC_OK;
}

/*
 * Set up this batch's prefilter: packed bf16 queries and candidate lists.
 * Returns VEC_OK with use_bf16 set or not, or VEC_E_NOMEM.
 */
static void bf16_free(struct search *s);

static int bf16_setup(struct search *s, int threads)
{
	const unsigned qb = VEC_FLAT_BF16_QB;
	size_t cap = 2 * s->k + 128, nw = s->nwide, k = s->k;

	s->use_bf16 = 0;
	if (!s->bf16_ok || s->parts != 1 || s->nblocks == 0 ||
	    s->fk->qb != qb || nw < qb || (s->l2 && !s->norms))
		return VEC_OK;
	s->npairs = (s->dim + 1) / 2;
	s->bchunk = round_up(CHUNK_BYTES / (s->npairs * 4), 12);
	if (s->bchunk > s->n)
		s->bchunk = s->n;
	s->xb = aligned_alloc(64, round_up((size_t)threads * s->bchunk *
					   s->npairs * 4, 64));
	s->rowc = malloc((size_t)threads * s->bchunk * 4 * sizeof *s->rowc);
	s->qpb = aligned_alloc(64, round_up(s->nblocks * s->npairs * qb * 4, 64));
	s->qa = malloc(s->nblocks * qb * sizeof *s->qa);
	s->qc = malloc(s->nblocks * qb * sizeof *s->qc);
	s->cands = calloc(nw, sizeof *s->cands);
	s->ub = calloc(nw, sizeof *s->ub);
	s->cid = malloc(nw * (cap + k) * sizeof *s->cid);
	s->clo = malloc(nw * (cap + k) * sizeof *s->clo);
	if (!s->xb || !s->rowc || !s->qpb || !s->qa || !s->qc || !s->cands ||
	    !s->ub || !s->cid || !s->clo) {
		/* The prefilter is only a shortcut: without its memory the
		 * batch runs on the fp32 path, which needs none of it. */
		bf16_free(s);
		return VEC_OK;
	}
	if (!bf16_queries(s))
		return VEC_OK;
	for (size_t i = 0; i < nw; i++) {
		struct vec_flat_cands *c = s->cands + i;
		c->id = s->cid + i * (cap + k);
		c->lo = s->clo + i * (cap + k);
		c->cap = cap;
		c->limit = 16 * cap;
		c->ub = s->ub + i;
		c->ub->k = k;
		c->ub->id = c->id + cap;
		c->ub->score = c->lo + cap;
	}
	/* one group per thread, at most 1024 queries: each group converts
	 * the whole base once */
	s->gb = (s->nblocks + (size_t)threads - 1) / (size_t)threads;
	if (s->gb > 32)
		s->gb = 32;
	s->nwgroups = (s->nblocks + s->gb - 1) / s->gb;
	s->ngroups = s->nwgroups + (s->nwide < s->nq);
	s->use_bf16 = 1;
	return VEC_OK;
}

/* Release a batch's prefilter buffers. */
static void bf16_free(struct search *s)
{
	if (s->cands)
		for (size_t i = 0; i < s->nwide; i++)
			if (s->cands[i].owned) {
				free(s->cands[i].id);
				free(s->cands[i].lo);
			}
	free(s->xb);
	free(s->rowc);
	free(s->qpb);
	free(s->qa);
	free(s->qc);
	free(s->cands);
	free(s->ub);
	free(s->cid);
	free(s->clo);
	free(s->over);
	free(s->op);
	s->xb = NULL;
	s->rowc = NULL;
	s->qpb = NULL;
	s->qa = s->qc = NULL;
	s->cands = NULL;
	s->ub = NULL;
	s->cid = NULL;
	s->clo = NULL;
	s->over = NULL;
	s->op = NULL;
	s->use_bf16 = 0;
}
#else
int vec_flat_bf16_usable(void)
{
	return 0;
}

int vec_flat_bf16_rows(const float *x, size_t n, size_t dim, size_t npairs,
		       const float *norms, uint32_t *xb, float *rc)
{
	(void)x, (void)n, (void)dim, (void)npairs, (void)norms, (void)xb, (void)rc;
	return 1;
}

int vec_flat_bf16_query(const float *q, size_t dim, size_t npairs,
			uint32_t *row, float *qa, float *qc)
{
	(void)q, (void)dim, (void)npairs, (void)row, (void)qa, (void)qc;
	return 1;
}

void vec_flat_bf16_wide(const struct vec_flat_bf16_wide *w)
{
	(void)w; /* never called: vec_flat_bf16_usable() is 0 */
}
#endif

/*
 * Search one batch of queries (all of them unless the heaps would be very
 * large) with everything already validated.
 */
static int search_batch(struct search *s, int threads)
{
	unsigned qb = s->fk->qb;
	size_t rem, nworkers, ntasks, entries;
	float *hs = NULL;
	uint64_t *hi = NULL;
	int rc = VEC_E_NOMEM;

	/* Wide blocks, and the leftover queries: a partly filled wide block
	 * still beats the narrow kernel once it is a third full.  (L2 wide
	 * blocks need the norms; without them everything goes narrow.) */
	s->nblocks = s->nq / qb;
	rem = s->nq % qb;
	if (rem * 3 >= qb)
		s->nblocks++;
	if (s->l2 && !s->norms)
		s->nblocks = 0;
	s->nwide = s->nblocks * qb < s->nq ? s->nblocks * qb : s->nq;

	/* Groups and parts. */
	s->gb = GROUP_QUERIES / qb;
	if (s->nq >= (size_t)threads * 64 && s->nblocks > 0) {
		/* about four groups per thread: balance when a core is
		 * busy elsewhere, while each group still reuses every base
		 * chunk for 128-256 queries */
		size_t per = (s->nblocks + 4 * (size_t)threads - 1) /
			     (4 * (size_t)threads);
		size_t least = (GROUP_QUERIES / 2 + qb - 1) / qb;
		if (per < least)
			per = least;
		if (per < s->gb)
			s->gb = per;
		s->parts = 1;
	} else {
		s->gb = s->nblocks ? s->nblocks : 1;
		s->parts = threads > 1 ? 2 * (size_t)threads : 1;
		if (s->parts > s->n / MIN_PART_ROWS)
			s->parts = s->n / MIN_PART_ROWS ? s->n / MIN_PART_ROWS : 1;
	}
	s->nwgroups = (s->nblocks + s->gb - 1) / s->gb;
	s->ngroups = s->nwgroups + (s->nwide < s->nq);
	s->part_rows = round_up((s->n + s->parts - 1) / s->parts, 12);
	if (s->part_rows == 0)
		s->part_rows = 12;
	s->parts = (s->n + s->part_rows - 1) / s->part_rows;
	if (s->parts == 0)
		s->parts = 1;
	s->chunk_rows = round_up(CHUNK_BYTES / (s->dim * sizeof(float)), 12);
	if (s->chunk_rows < 12)
		s->chunk_rows = 12;

	s->qp = alloc_floats(s->nblocks * s->dim * qb);
	s->heaps = calloc(s->parts * s->nq, sizeof *s->heaps);
	nworkers = (size_t)threads < s->nq ? (size_t)threads : s->nq;
	s->scratch = malloc((nworkers ? nworkers : 1) * s->kout *
			    sizeof *s->scratch + 1);
	entries = s->parts * s->nq * s->k;
	hs = malloc(entries * sizeof *hs + 1);
	hi = malloc(entries * sizeof *hi + 1);
	if (!s->qp || !s->heaps || !s->scratch || !hs || !hi)
		goto done;
	for (size_t e = 0; e < s->parts * s->nq; e++) {
		s->heaps[e].k = s->k;
		s->heaps[e].n = 0;
		s->heaps[e].score = hs + e * s->k;
		s->heaps[e].id = hi + e * s->k;
	}
#ifdef FLAT_BF16
	if (bf16_setup(s, threads) != VEC_OK)
		goto done;
#endif
	if (!s->use_bf16)
		for (size_t b = 0; b < s->nblocks; b++)
			pack_block(s, b);

	/* A pool that could not start its threads still did all the work
	 * on this one, so its status is not a failure of the search. */
	ntasks = s->ngroups * s->parts;
	if (s->n > 0)
		vec_pool_run(threads, ntasks, search_task, s);
#ifdef FLAT_BF16
	if (s->use_bf16) {
		vec_pool_run(threads, s->nwide, rerank_task, s);
		if (bf16_overflow(s, threads) != VEC_OK)
			goto done;
	}
#endif
	vec_pool_run(threads, s->nq, finish_task, s);
	rc = VEC_OK;
done:
#ifdef FLAT_BF16
	bf16_free(s);
#endif
	free(s->qp);
	free(s->heaps);
	free(s->scratch);
	free(hs);
	free(hi);
	return rc;
}

/*
 * Validate, make the norms if L2 needs them and the caller has none, then
 * search the queries in batches that bound the heap memory.
 */
int vec_flat_search(const float *base, const float *norms, size_t n,
		    size_t dim, int metric, const float *queries, size_t nq,
		    size_t k, int threads, uint64_t *ids, float *scores)
{
	struct search s;
	float *own_norms = NULL;
	uint64_t tmp;
	size_t batch;
	int rc = VEC_OK;

	if (metric != VEC_METRIC_L2 && metric != VEC_METRIC_IP &&
	    metric != VEC_METRIC_COS)
		return VEC_E_USAGE;
	if (dim == 0 || dim > VEC_DIM_MAX)
		return VEC_E_USAGE;
	if (nq == 0 || k == 0)
		return VEC_OK;
	if ((n && !base) || !queries || !ids || !scores)
		return VEC_E_USAGE;
	if (vec_mul_overflows(nq, k, &tmp) || tmp > SIZE_MAX / 8 ||
	    vec_mul_overflows(n, dim, &tmp) || tmp > SIZE_MAX / 4 ||
	    vec_mul_overflows(nq, dim, &tmp) || tmp > SIZE_MAX / 4)
		return VEC_E_USAGE;
	if (threads <= 0)
		threads = vec_ncpu();

	memset(&s, 0, sizeof s);
	s.base = base;
	s.n = n;
	s.dim = dim;
	s.k = k < n ? k : n;
	s.kout = k;
	s.l2 = metric == VEC_METRIC_L2;
	s.fk = vec_flat_kernels();
	s.kr = vec_kernels();

	/* L2 through the wide kernel needs ||x||^2; make it if not given. */
	if (s.l2 && !norms && n > 0 && nq * 3 >= s.fk->qb) {
		struct norms_ctx nc;
		own_norms = malloc(n * sizeof *own_norms);
		if (!own_norms)
			return VEC_E_NOMEM;
		nc.base = base;
		nc.out = own_norms;
		nc.n = n;
		nc.dim = dim;
		nc.slice = 4096;
		nc.kr = s.kr;
		vec_pool_run(threads, (n + nc.slice - 1) / nc.slice,
			     norms_task, &nc);
		norms = own_norms;
	}
	s.norms = s.l2 ? norms : NULL;

	/* Bound the heap memory: queries in batches when nq * k is huge. */
	batch = nq;
	if (s.k > 0 && batch * s.k * (size_t)threads * 2 > BATCH_ENTRIES) {
		batch = BATCH_ENTRIES / (s.k * (size_t)threads * 2);
		batch = batch / 256 * 256;
		if (batch < 256)
			batch = 256;
	}

#ifdef FLAT_BF16
	s.bf16_ok = bf16_wanted(&s, batch, threads);
#endif
	for (size_t q0 = 0; q0 < nq && rc == VEC_OK; q0 += batch) {
		size_t m = nq - q0 < batch ? nq - q0 : batch;
		s.q = queries + q0 * dim;
		s.nq = m;
		s.ids = ids + q0 * k;
		s.scores = scores + q0 * k;
		rc = search_batch(&s, threads);
	}
	free(own_norms);
	return rc;
}
