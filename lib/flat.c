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
 *  - L2 results are finally re-scored directly as sum (q - x)^2 and sorted:
 *    the expanded form loses precision when ||x||^2 is large and the
 *    distance small, which would show in the reported distances.
 *
 * Every (query, row) score is computed by the same instruction sequence
 * whichever thread, part or tile it falls in, so the results do not depend
 * on the thread count.
 */
#include <math.h>
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
		thr[l] = l < w->nlanes ? vec_topk_worst(w->heap[l]) : -INFINITY;
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

static const struct vec_flat_kernels flat_portable = {
	"portable", PQB, wide_portable, narrow_portable,
};

/* The flat kernels matching the distance level in use. */
static const struct vec_flat_kernels *flat_kernels(void)
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
	for (size_t b = 0; b < s->nblocks; b++)
		pack_block(s, b);

	/* A pool that could not start its threads still did all the work
	 * on this one, so its status is not a failure of the search. */
	ntasks = s->ngroups * s->parts;
	if (s->n > 0)
		vec_pool_run(threads, ntasks, search_task, s);
	vec_pool_run(threads, s->nq, finish_task, s);
	rc = VEC_OK;
done:
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
	s.fk = flat_kernels();
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
