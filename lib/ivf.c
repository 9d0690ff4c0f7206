/*
 * ivf.c - inverted lists over k-means centroids (IVF-Flat).
 *
 * Sections (man/vec-index.5 gives every byte and rule; R-IVF-n below):
 *   IVFP required  64 bytes: version, nlist, count, seed, train size,
 *                  iterations run and allowed, dim, metric, reserved zeros
 *   IVFC required  nlist x dim float32 centroids
 *   IVFO required  nlist + 1 u64: list j is positions [off[j], off[j+1])
 *   IVFI required  count u32: the insertion id of each position
 *   IVFV required  count x dim float32: the vector of each position
 *
 * Within a list, members are in increasing id order.  IVFV repeats the
 * vectors of VECS in list order: VECS stays what every index type shares
 * (ids, keys, vec_index_vector, the exact search), and a probe reads one
 * contiguous block instead of gathering rows from all over the file.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ivf.h"
#include "kmeans.h"

#define IVFP_BYTES 64
#define IVFP_VERSION 1
#define PROBE_BATCH 1024 /* queries whose lists are ranked at once ... */
#define PROBE_ENTRIES (1u << 22) /* ... holding at most this many list numbers */

struct vec_ivf {
	uint32_t nlist;
	size_t dim;
	int metric;
	uint64_t count;
	uint64_t seed, train_size;
	uint32_t iters, max_iter;

	/* Current view: into the mapping, or the owned arrays below. */
	const float *cent;      /* nlist x dim */
	const uint64_t *off;    /* nlist + 1 */
	const uint32_t *ids;    /* count */
	const float *vecs;      /* count x dim, list order */

	float *own_cent;
	uint64_t *own_off;
	uint32_t *own_ids;
	float *own_vecs;
	uint8_t ivfp[IVFP_BYTES]; /* serialised by vec_ivf_sections */
};

uint32_t vec_ivf_default_nlist(uint64_t n)
{
	double r = floor(4.0 * sqrt((double)n) + 0.5);
	if (r > (double)n)
		r = (double)n;
	if (r > VEC_IVF_NLIST_MAX)
		r = VEC_IVF_NLIST_MAX;
	return r < 1 ? 1 : (uint32_t)r;
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

void vec_ivf_free(struct vec_ivf *g)
{
	if (!g)
		return;
	free(g->own_cent);
	free(g->own_off);
	free(g->own_ids);
	free(g->own_vecs);
	free(g);
}

int vec_ivf_build(struct vec_ivf **out, const struct vec_ivf_params *p,
		  const struct vec_vectors *v, int threads,
		  struct vec_errbuf *eb)
{
	struct vec_kmeans_params kp = { 0, 0, 0, 0, 0, NULL };
	struct vec_kmeans_result kr;
	struct vec_ivf *g;
	uint32_t nlist;
	int rc;

	*out = NULL;
	if (v->count == 0)
		return vec_err(eb, VEC_E_USAGE, "an ivf index needs at least one vector to train on");
	if (v->count > UINT32_MAX)
		return vec_err(eb, VEC_E_USAGE, "an ivf index holds at most %u vectors",
			       UINT32_MAX);
	nlist = p->nlist ? p->nlist : vec_ivf_default_nlist(v->count);
	if (nlist > VEC_IVF_NLIST_MAX)
		return vec_err(eb, VEC_E_USAGE, "nlist %u is larger than %u", nlist,
			       VEC_IVF_NLIST_MAX);
	if (nlist > v->count)
		return vec_err(eb, VEC_E_USAGE,
			       "nlist %u is larger than the number of vectors (%llu)",
			       nlist, (unsigned long long)v->count);
	g = calloc(1, sizeof *g);
	if (!g)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	g->nlist = nlist;
	g->dim = v->dim;
	g->metric = v->metric;
	g->seed = p->seed ? p->seed : VEC_KMEANS_DEFAULT_SEED;
	g->max_iter = VEC_KMEANS_DEFAULT_ITERS;
	g->own_cent = malloc((size_t)nlist * v->dim * sizeof *g->own_cent);
	g->own_off = calloc((size_t)nlist + 1, sizeof *g->own_off);
	if (!g->own_cent || !g->own_off) {
		vec_ivf_free(g);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	kp.k = nlist;
	kp.train_size = p->train_size;
	kp.max_iter = g->max_iter;
	kp.seed = g->seed;
	kp.threads = threads;
	rc = vec_kmeans(v->x, v->count, v->dim, &kp, g->own_cent, &kr, eb);
	if (rc) {
		vec_ivf_free(g);
		return rc;
	}
	g->train_size = kr.trained;
	g->iters = kr.iters;
	g->cent = g->own_cent;
	g->off = g->own_off;
	/* Empty lists so far: the build is an add of every vector. */
	if ((rc = vec_ivf_add(g, v, threads, eb))) {
		vec_ivf_free(g);
		return rc;
	}
	*out = g;
	return VEC_OK;
}

int vec_ivf_add(struct vec_ivf *g, const struct vec_vectors *v, int threads,
		struct vec_errbuf *eb)
{
	uint64_t old = g->count, n, total = v->count, *off = NULL, *pos = NULL;
	size_t dim = g->dim;
	uint32_t *a = NULL, *ids = NULL;
	float *vecs = NULL;
	int rc;

	if (total < old || v->dim != dim)
		return vec_err(eb, VEC_E_USAGE, "ivf lists and vectors disagree");
	n = total - old;
	if (n == 0)
		return VEC_OK;
	if (total > UINT32_MAX)
		return vec_err(eb, VEC_E_USAGE, "an ivf index holds at most %u vectors",
			       UINT32_MAX);
	a = malloc(n * sizeof *a);
	off = malloc(((size_t)g->nlist + 1) * sizeof *off);
	pos = malloc(((size_t)g->nlist) * sizeof *pos);
	ids = malloc(total * sizeof *ids);
	vecs = malloc(total * dim * sizeof *vecs);
	if (!a || !off || !pos || !ids || !vecs) {
		rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
		goto fail;
	}
	rc = vec_kmeans_assign(v->x + old * dim, n, dim, g->cent, g->nlist,
			       threads, a, NULL, eb);
	if (rc)
		goto fail;
	/* New offsets: each list grows by its new members. */
	memset(pos, 0, g->nlist * sizeof *pos);
	for (uint64_t i = 0; i < n; i++)
		pos[a[i]]++;
	off[0] = 0;
	for (uint32_t j = 0; j < g->nlist; j++)
		off[j + 1] = off[j] + (g->off[j + 1] - g->off[j]) + pos[j];
	/* Old members first (already in id order), then the new ones, whose
	 * ids are all larger, in id order. */
	for (uint32_t j = 0; j < g->nlist; j++) {
		uint64_t len = g->off[j + 1] - g->off[j];
		if (len) {
			memcpy(ids + off[j], g->ids + g->off[j], len * sizeof *ids);
			memcpy(vecs + off[j] * dim, g->vecs + g->off[j] * dim,
			       len * dim * sizeof *vecs);
		}
		pos[j] = off[j] + len;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = pos[a[i]]++;
		ids[p] = (uint32_t)(old + i);
		memcpy(vecs + p * dim, v->x + (old + i) * dim, dim * sizeof *vecs);
	}
	free(g->own_off);
	free(g->own_ids);
	free(g->own_vecs);
	g->own_off = off;
	g->own_ids = ids;
	g->own_vecs = vecs;
	g->off = off;
	g->ids = ids;
	g->vecs = vecs;
	g->count = total;
	free(a);
	free(pos);
	return VEC_OK;
fail:
	free(a);
	free(off);
	free(pos);
	free(ids);
	free(vecs);
	return rc;
}

/* ---- search ---- */

struct search {
	const struct vec_ivf *g;
	const float *q;          /* this batch's queries */
	size_t k, nprobe;
	const uint64_t *probe;   /* nprobe list numbers per query, best first */
	int l2;
	const struct vec_kernels *kr;
	struct vec_topk *heaps;  /* one per worker */
	uint64_t *ids;           /* this batch's rows of the output */
	float *scores;
};

/* One query: scan its probed lists into its worker's heap. */
static void search_task(void *ctx, size_t i, int worker)
{
	const struct search *s = ctx;
	const struct vec_ivf *g = s->g;
	const float *q = s->q + i * g->dim;
	struct vec_topk *h = s->heaps + worker;
	uint64_t *ids = s->ids + i * s->k;
	float *sc = s->scores + i * s->k;
	float thr;
	size_t got;

	vec_topk_reset(h);
	thr = vec_topk_worst(h);
	for (size_t p = 0; p < s->nprobe; p++) {
		uint64_t j = s->probe[i * s->nprobe + p];
		if (j >= g->nlist)
			continue; /* padding: fewer lists than nprobe */
		for (uint64_t r = g->off[j]; r < g->off[j + 1]; r++) {
			const float *x = g->vecs + r * g->dim;
			float d = s->l2 ? s->kr->l2sq(q, x, g->dim)
					: -s->kr->dot(q, x, g->dim);
			if (d <= thr) {
				vec_topk_push(h, g->ids[r], d);
				thr = vec_topk_worst(h);
			}
		}
	}
	got = vec_topk_extract(h, ids, sc);
	for (size_t e = 0; e < got; e++)
		sc[e] = s->l2 ? sqrtf(sc[e] > 0 ? sc[e] : 0) : -sc[e];
	for (size_t e = got; e < s->k; e++) {
		ids[e] = UINT64_MAX;
		sc[e] = s->l2 ? INFINITY : -INFINITY;
	}
}

int vec_ivf_search(const struct vec_ivf *g, const struct vec_vectors *v,
		   const float *queries, size_t nq, size_t k, size_t nprobe,
		   int threads, uint64_t *ids, float *scores,
		   struct vec_errbuf *eb)
{
	struct search s;
	uint64_t *probe = NULL;
	float *psc = NULL;
	size_t nheaps, batch;
	int rc = VEC_OK;

	if (k == 0 || nq == 0)
		return VEC_OK;
	if (nprobe == 0)
		nprobe = vec_ivf_default_nprobe(g);
	if (nprobe >= g->nlist) {
		/* Every list: exhaustive, so the exact search answers it. */
		rc = vec_flat_search(v->x, v->norms, (size_t)v->count, v->dim,
				     v->metric, queries, nq, k, threads, ids, scores);
		if (rc)
			return vec_err(eb, rc, "search failed: %s", vec_strerror(rc));
		return VEC_OK;
	}
	if (threads <= 0)
		threads = vec_ncpu();
	/* Bound the ranking's memory: at most PROBE_ENTRIES list numbers. */
	batch = nq < PROBE_BATCH ? nq : PROBE_BATCH;
	if (batch > PROBE_ENTRIES / nprobe)
		batch = PROBE_ENTRIES / nprobe ? PROBE_ENTRIES / nprobe : 1;
	nheaps = (size_t)threads < batch ? (size_t)threads : batch;
	memset(&s, 0, sizeof s);
	s.g = g;
	s.k = k;
	s.nprobe = nprobe;
	s.l2 = g->metric == VEC_METRIC_L2;
	s.kr = vec_kernels();
	probe = malloc(batch * nprobe * sizeof *probe);
	psc = malloc(batch * nprobe * sizeof *psc);
	s.heaps = calloc(nheaps, sizeof *s.heaps);
	if (!probe || !psc || !s.heaps) {
		rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
		goto done;
	}
	for (size_t w = 0; w < nheaps; w++)
		if (vec_topk_init(&s.heaps[w], k)) {
			rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
			goto done;
		}
	s.probe = probe;
	for (size_t q0 = 0; q0 < nq; q0 += batch) {
		size_t m = nq - q0 < batch ? nq - q0 : batch;
		const float *q = queries + q0 * g->dim;
		/* The nprobe best lists of each query, by its centroid. */
		rc = vec_flat_search(g->cent, NULL, g->nlist, g->dim,
				     s.l2 ? VEC_METRIC_L2 : VEC_METRIC_IP, q, m,
				     nprobe, threads, probe, psc);
		if (rc) {
			rc = vec_err(eb, rc, "search failed: %s", vec_strerror(rc));
			goto done;
		}
		s.q = q;
		s.ids = ids + q0 * k;
		s.scores = scores + q0 * k;
		vec_pool_run((int)nheaps, m, search_task, &s);
	}
done:
	if (s.heaps)
		for (size_t w = 0; w < nheaps; w++)
			vec_topk_free(&s.heaps[w]);
	free(s.heaps);
	free(probe);
	free(psc);
	return rc;
}

/* ---- the file ---- */

int vec_ivf_sections(struct vec_ivf *g, struct vec_file_section *secs,
		     size_t *n, struct vec_errbuf *eb)
{
	uint8_t *p = g->ivfp;
	(void)eb;

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

	memset(secs, 0, VEC_IVF_MAX_SECTIONS * sizeof *secs);
	for (size_t i = 0; i < VEC_IVF_MAX_SECTIONS; i++)
		secs[i].flags = VEC_SEC_REQUIRED;
	secs[0].id = VEC_SEC_IVFP;
	secs[0].data = p;
	secs[0].length = IVFP_BYTES;
	secs[1].id = VEC_SEC_IVFC;
	secs[1].data = (const uint8_t *)g->cent;
	secs[1].length = (uint64_t)g->nlist * g->dim * 4;
	secs[2].id = VEC_SEC_IVFO;
	secs[2].data = (const uint8_t *)g->off;
	secs[2].length = ((uint64_t)g->nlist + 1) * 8;
	secs[3].id = VEC_SEC_IVFI;
	secs[3].data = g->count ? (const uint8_t *)g->ids : p;
	secs[3].length = g->count * 4;
	secs[4].id = VEC_SEC_IVFV;
	secs[4].data = g->count ? (const uint8_t *)g->vecs : p;
	secs[4].length = g->count * g->dim * 4;
	*n = VEC_IVF_MAX_SECTIONS;
	return VEC_OK;
}

int vec_ivf_open(struct vec_ivf **out, const struct vec_file *f,
		 const struct vec_vectors *v, struct vec_errbuf *eb)
{
	const struct vec_file_section *sp, *sc, *so, *si, *sv;
	const char *name = f->name ? f->name : "index";
	const uint8_t *p;
	const uint64_t *off;
	const uint32_t *ids;
	uint8_t *seen;
	struct vec_ivf *g;
	uint32_t ver, nlist, dim, metric;
	uint64_t cnt, want;

	*out = NULL;
	sp = vec_file_find(f, VEC_SEC_IVFP);
	sc = vec_file_find(f, VEC_SEC_IVFC);
	so = vec_file_find(f, VEC_SEC_IVFO);
	si = vec_file_find(f, VEC_SEC_IVFI);
	sv = vec_file_find(f, VEC_SEC_IVFV);
	/* R-IVF-1: an ivf index has all five list sections. */
	if (!sp || !sc || !so || !si || !sv)
		return VEC_CORRUPT(eb, "%s: missing section '%s'", name,
				   !sp ? "IVFP" : !sc ? "IVFC" : !so ? "IVFO" :
				   !si ? "IVFI" : "IVFV");
	if (sp->length != IVFP_BYTES)
		return VEC_CORRUPT(eb, "%s: section 'IVFP' is %llu bytes, expected %d",
				   name, (unsigned long long)sp->length, IVFP_BYTES);
	p = sp->data;
	ver = vec_get_le32(p);
	if (ver != IVFP_VERSION)
		return vec_err(eb, VEC_E_VERSION, "%s: ivf version %u is not supported",
			       name, ver);
	/* R-IVF-2: reserved bytes are zero. */
	for (int i = 48; i < IVFP_BYTES; i++)
		if (p[i])
			return VEC_CORRUPT(eb, "%s: section 'IVFP': reserved byte %d is not zero",
					   name, i);
	nlist = vec_get_le32(p + 4);
	cnt = vec_get_le64(p + 8);
	dim = vec_get_le32(p + 40);
	metric = vec_get_le32(p + 44);
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
	/* R-IVF-4: sizes follow from nlist, dim and count. */
	if ((uint64_t)nlist * dim * 4 != sc->length)
		return VEC_CORRUPT(eb, "%s: section 'IVFC' is %llu bytes, expected %u x %u x 4",
				   name, (unsigned long long)sc->length, nlist, dim);
	if (((uint64_t)nlist + 1) * 8 != so->length)
		return VEC_CORRUPT(eb, "%s: section 'IVFO' is %llu bytes, expected (%u + 1) x 8",
				   name, (unsigned long long)so->length, nlist);
	if (cnt * 4 != si->length)
		return VEC_CORRUPT(eb, "%s: section 'IVFI' is %llu bytes, expected %llu x 4",
				   name, (unsigned long long)si->length,
				   (unsigned long long)cnt);
	if (vec_mul_overflows(cnt, (uint64_t)dim * 4, &want) || want != sv->length)
		return VEC_CORRUPT(eb, "%s: section 'IVFV' is %llu bytes, expected %llu x %u x 4",
				   name, (unsigned long long)sv->length,
				   (unsigned long long)cnt, dim);
	/* R-IVF-5: offsets rise from 0 to count. */
	off = (const uint64_t *)(const void *)so->data;
	if (off[0] != 0 || off[nlist] != cnt)
		return VEC_CORRUPT(eb, "%s: section 'IVFO': offsets must run from 0 to %llu",
				   name, (unsigned long long)cnt);
	for (uint32_t j = 0; j < nlist; j++)
		if (off[j + 1] < off[j])
			return VEC_CORRUPT(eb, "%s: section 'IVFO': list %u ends before it starts",
					   name, j);
	/* R-IVF-6: every id is below count and appears exactly once. */
	ids = (const uint32_t *)(const void *)si->data;
	seen = calloc(cnt / 8 + 1, 1);
	if (!seen)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	for (uint64_t r = 0; r < cnt; r++) {
		uint32_t id = ids[r];
		if (id >= cnt || (seen[id >> 3] & (1u << (id & 7)))) {
			free(seen);
			return VEC_CORRUPT(eb, "%s: section 'IVFI': position %llu: %s id %u",
					   name, (unsigned long long)r,
					   id >= cnt ? "out of range" : "repeated", id);
		}
		seen[id >> 3] |= (uint8_t)(1u << (id & 7));
	}
	free(seen);

	g = calloc(1, sizeof *g);
	if (!g)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	g->nlist = nlist;
	g->dim = dim;
	g->metric = (int)metric;
	g->count = cnt;
	g->seed = vec_get_le64(p + 16);
	g->train_size = vec_get_le64(p + 24);
	g->iters = vec_get_le32(p + 32);
	g->max_iter = vec_get_le32(p + 36);
	g->cent = (const float *)(const void *)sc->data;
	g->off = off;
	g->ids = ids;
	g->vecs = (const float *)(const void *)sv->data;
	*out = g;
	return VEC_OK;
}

int vec_ivf_check(const struct vec_ivf *g, const struct vec_vectors *v,
		  struct vec_errbuf *eb)
{
	size_t dim = g->dim;

	for (uint64_t i = 0; i < (uint64_t)g->nlist * dim; i++)
		if (!isfinite(g->cent[i]))
			return VEC_CORRUPT(eb, "centroid %llu is not finite",
					   (unsigned long long)(i / dim));
	if (v->count != g->count)
		return VEC_CORRUPT(eb, "the lists hold %llu vectors, the index %llu",
				   (unsigned long long)g->count,
				   (unsigned long long)v->count);
	/* R-IVF-7: each list row is the vector of its id. */
	for (uint64_t r = 0; r < g->count; r++)
		if (g->ids[r] >= v->count ||
		    memcmp(g->vecs + r * dim, v->x + (uint64_t)g->ids[r] * dim,
			   dim * sizeof(float)))
			return VEC_CORRUPT(eb, "section 'IVFV': list position %llu differs from vector %u",
					   (unsigned long long)r, g->ids[r]);
	return VEC_OK;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void vec_ivf_stats(const struct vec_ivf *g, struct vec_ivf_stats *s)
{
	uint64_t *len = malloc((size_t)g->nlist * sizeof *len);

	memset(s, 0, sizeof *s);
	s->nlist = g->nlist;
	s->seed = g->seed;
	s->train_size = g->train_size;
	s->iterations = g->iters;
	s->max_iterations = g->max_iter;
	s->default_nprobe = vec_ivf_default_nprobe(g);
	s->list_bytes = IVFP_BYTES + (uint64_t)g->nlist * g->dim * 4 +
			((uint64_t)g->nlist + 1) * 8 + g->count * 4 +
			g->count * g->dim * 4;
	if (!len)
		return;
	for (uint32_t j = 0; j < g->nlist; j++) {
		len[j] = g->off[j + 1] - g->off[j];
		s->empty_lists += len[j] == 0;
	}
	qsort(len, g->nlist, sizeof *len, cmp_u64);
	s->list_min = len[0];
	s->list_max = len[g->nlist - 1];
	s->list_median = len[(g->nlist - 1) / 2];
	free(len);
}
