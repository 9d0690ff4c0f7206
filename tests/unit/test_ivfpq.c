/*
 * test_ivfpq.c - the coded inverted-list types (ivfpq with 8- and 4-bit
 * codes, pq, ivfsq8, sq8) through the public API: an index that trains on
 * the first vectors of a stream and encodes the rest as they come; codes
 * through a file answer exactly as in memory; refining every candidate is
 * the exact search; recall floors against the exact answers; empty lists;
 * bad parameters; hostile payload sections.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"
#include "internal.h"
#include "ivf.h"
#include "unit.h"

#define N 3000
#define DIM 16
#define NQ 100
#define K 10
#define NLIST 20
#define TRAIN 1000

static uint64_t rs;
static uint64_t rnd(void)
{
	return unit_xorshift(&rs);
}
static float noise(void)
{
	return unit_uniform(&rs);
}

/* n points around 30 random centres, shifted off the origin (so that ip
 * and cos differ from l2). */
static float *points(size_t n)
{
	float centre[30][DIM];
	float *x = malloc(n * DIM * sizeof *x);

	rs = 0x0123456789abcdefu;
	for (int c = 0; c < 30; c++)
		for (int d = 0; d < DIM; d++)
			centre[c][d] = 8 * noise() + 2;
	for (size_t i = 0; i < n; i++) {
		int c = (int)(rnd() % 30);
		for (int d = 0; d < DIM; d++)
			x[i * DIM + d] = centre[c][d] + noise();
	}
	return x;
}

struct kind {
	const char *name;
	int type;
	uint32_t m;
	unsigned bits;
};

static const struct kind kinds[] = {
	{ "ivfpq8", VEC_TYPE_IVFPQ, 8, 8 },
	{ "ivfpq4", VEC_TYPE_IVFPQ, 16, 4 },
	{ "ivfpq4-odd", VEC_TYPE_IVFPQ, 1, 4 },
	{ "pq8", VEC_TYPE_PQ, 4, 8 },
	{ "pq4", VEC_TYPE_PQ, 8, 4 },
	{ "ivfsq8", VEC_TYPE_IVFSQ8, 0, 0 },
	{ "sq8", VEC_TYPE_SQ8, 0, 0 },
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static void params_of(const struct kind *kd, int metric, uint32_t refine,
		      struct vec_index_params *p)
{
	struct vec_index_params z = VEC_INDEX_PARAMS_INIT;
	*p = z;
	p->type = kd->type;
	p->metric = metric;
	p->dim = DIM;
	p->pq_m = kd->m;
	p->pq_bits = kd->bits;
	p->refine = refine;
	p->nlist = kd->type == VEC_TYPE_PQ || kd->type == VEC_TYPE_SQ8 ? 0 : NLIST;
	p->train_size = TRAIN;
	p->seed = 3;
	p->threads = 2;
}

/* A coded index fed n vectors in batches of 250: it trains at TRAIN. */
static struct vec_index *make(const struct kind *kd, int metric,
			      uint32_t refine, const float *x, size_t n)
{
	struct vec_index_params p;
	struct vec_index *idx = NULL;
	struct vec_errbuf eb;

	params_of(kd, metric, refine, &p);
	if (vec_index_create(&idx, &p, &eb)) {
		EXPECT_MSG(0, "%s: %s", kd->name, eb.msg);
		return NULL;
	}
	for (size_t i = 0; i < n; i += 250)
		if (vec_index_add(idx, n - i < 250 ? n - i : 250, x + i * DIM, NULL,
				  &eb)) {
			EXPECT_MSG(0, "%s: %s", kd->name, eb.msg);
			vec_index_close(idx);
			return NULL;
		}
	if (vec_index_train(idx, &eb)) {
		EXPECT_MSG(0, "%s: %s", kd->name, eb.msg);
		vec_index_close(idx);
		return NULL;
	}
	return idx;
}

static int search(const struct vec_index *idx, const float *q, size_t nq,
		  size_t nprobe, long refine, uint64_t *ids, float *sc)
{
	struct vec_search_opts so = VEC_SEARCH_OPTS_INIT;
	so.nprobe = nprobe;
	so.refine = refine;
	so.threads = 2;
	return vec_index_search(idx, nq, q, K, &so, ids, sc, NULL);
}

/* Exact answers: a flat index of the same vectors. */
static void exact(const float *x, size_t n, int metric, const float *q,
		  uint64_t *ids, float *sc)
{
	struct vec_index *f = NULL;
	EXPECT(vec_index_new(&f, VEC_TYPE_FLAT, metric, DIM, NULL) == VEC_OK);
	if (!f)
		return;
	EXPECT(vec_index_add(f, n, x, NULL, NULL) == VEC_OK);
	EXPECT(vec_index_search(f, NQ, q, K, NULL, ids, sc, NULL) == VEC_OK);
	vec_index_close(f);
}

/* Share of the true top K found (ids; the data has no ties to speak of). */
static double recall(const uint64_t *got, const uint64_t *want)
{
	size_t hit = 0;
	for (size_t i = 0; i < NQ; i++)
		for (size_t a = 0; a < K; a++)
			for (size_t b = 0; b < K; b++)
				hit += got[i * K + a] == want[i * K + b];
	return (double)hit / (NQ * K);
}

static int has_section(const struct vec_index *idx, const char *id)
{
	struct vec_index_info in;
	vec_index_info(idx, &in);
	for (size_t i = 0; i < in.n_sections; i++)
		if (!strcmp(in.sections[i].id, id))
			return 1;
	return 0;
}

/* Trained from the stream's first TRAIN vectors; without refine the
 * vectors are gone once trained; a file answers exactly as memory. */
static void test_round_trip(void)
{
	float *x = points(N + NQ);
	static const int metrics[] = { VEC_METRIC_L2, VEC_METRIC_IP, VEC_METRIC_COS };

	for (size_t kk = 0; kk < NKINDS; kk++)
		for (int mi = 0; mi < 3; mi++)
			for (uint32_t refine = 0; refine <= 4; refine += 4) {
				const struct kind *kd = &kinds[kk];
				struct vec_index *idx = make(kd, metrics[mi], refine, x, N), *o = NULL;
				uint64_t ids1[NQ * K], ids2[NQ * K];
				float sc1[NQ * K], sc2[NQ * K];
				struct vec_index_info in;
				char path[4200];

				if (!idx)
					continue;
				vec_index_stats(idx, &in);
				EXPECT(in.count == N && in.type == kd->type);
				EXPECT(in.ivf.train_size == TRAIN);
				EXPECT(in.ivf.refine == refine);
				EXPECT_MSG((vec_index_vector(idx, 5) != NULL) == (refine > 0),
					   "%s: vectors kept without refine", kd->name);
				EXPECT(search(idx, x + N * DIM, NQ, 4, -1, ids1, sc1) == VEC_OK);
				snprintf(path, sizeof path, "%s/%s.vec", unit_tmpdir, kd->name);
				EXPECT(vec_index_save(idx, path, NULL) == VEC_OK);
				EXPECT(vec_index_open(&o, path, VEC_OPEN_VERIFY, NULL) == VEC_OK);
				if (o) {
					EXPECT(has_section(o, "VECS") == (refine > 0));
					EXPECT(has_section(o, "IVFQ") && has_section(o, "IVFX"));
					EXPECT(search(o, x + N * DIM, NQ, 4, -1, ids2, sc2) == VEC_OK);
					EXPECT_MSG(!memcmp(ids1, ids2, sizeof ids1) &&
						   !memcmp(sc1, sc2, sizeof sc1),
						   "%s metric %d refine %u: file differs",
						   kd->name, metrics[mi], refine);
					/* Growth of the mapped lists, then through
					 * the file again. */
					EXPECT(vec_index_add(o, NQ, x + N * DIM, NULL, NULL) == VEC_OK);
					EXPECT(vec_index_verify(o, NULL) == VEC_OK);
					EXPECT(vec_index_save(o, path, NULL) == VEC_OK);
					vec_index_close(o);
					o = NULL;
					EXPECT(vec_index_open(&o, path, VEC_OPEN_VERIFY, NULL) == VEC_OK);
					if (o) {
						vec_index_info(o, &in);
						EXPECT(in.count == N + NQ);
					}
					vec_index_close(o);
				}
				vec_index_close(idx);
			}
	free(x);
}

/* Recall floors at nprobe 8 of 20 against the exact answers; refining
 * every candidate of every list is the exact search. */
static void test_recall(void)
{
	float *x = points(N + NQ);
	const float *q = x + N * DIM;
	uint64_t want[NQ * K], got[NQ * K];
	float wsc[NQ * K], sc[NQ * K];
	/* Floors for l2 at nprobe 8, without and with refine 4 (measured:
	 * 0.829 1.000, 0.732 0.997, 0.099 0.403, 0.480 0.918, 0.161 0.518,
	 * 0.975 1.000, 0.960 1.000). */
	static const double floor0[NKINDS] = { 0.75, 0.65, 0.05, 0.4, 0.12, 0.93, 0.92 };
	static const double floor4[NKINDS] = { 0.98, 0.97, 0.3, 0.85, 0.45, 0.99, 0.99 };

	exact(x, N, VEC_METRIC_L2, q, want, wsc);
	for (size_t kk = 0; kk < NKINDS; kk++) {
		const struct kind *kd = &kinds[kk];
		struct vec_index *idx = make(kd, VEC_METRIC_L2, 4, x, N);
		double r0, r4;
		if (!idx)
			continue;
		EXPECT(search(idx, q, NQ, 8, 0, got, sc) == VEC_OK);
		r0 = recall(got, want);
		EXPECT(search(idx, q, NQ, 8, -1, got, sc) == VEC_OK);
		r4 = recall(got, want);
		EXPECT_MSG(r0 >= floor0[kk], "%s: recall %.3f without refine", kd->name, r0);
		EXPECT_MSG(r4 >= r0 && r4 >= floor4[kk], "%s: recall %.3f with refine 4 (%.3f without)",
			   kd->name, r4, r0);
		/* Every list, every candidate re-ranked: exactly the flat
		 * answers, scores included. */
		EXPECT(search(idx, q, NQ, NLIST, N / K, got, sc) == VEC_OK);
		EXPECT_MSG(!memcmp(got, want, sizeof got), "%s: full refine differs", kd->name);
		for (size_t i = 0; i < NQ * K; i++)
			EXPECT(fabsf(sc[i] - wsc[i]) <= 1e-4f * (1 + fabsf(wsc[i])));
		/* The scores without refine estimate the true ones (for the
		 * codes fine enough to speak of an estimate). */
		EXPECT(search(idx, q, NQ, NLIST, 0, got, sc) == VEC_OK);
		for (size_t i = 0; i < NQ && floor0[kk] >= 0.5; i++)
			EXPECT_MSG(fabsf(sc[i * K] - wsc[i * K]) < 1.5f, "%s: query %zu: %g for %g",
				   kd->name, i, sc[i * K], wsc[i * K]);
		vec_index_close(idx);
	}
	free(x);
}

/* Lists left empty, and lists shorter than a fast-scan block. */
static void test_empty_lists(void)
{
	float *x = points(N);
	struct vec_ivf_params p;
	struct vec_ivf *g = NULL;
	struct vec_vectors v = { NULL, NULL, DIM, VEC_METRIC_L2, 3 };
	struct vec_ivf_search_opts o = { 0, 0, 1, NULL };
	uint64_t ids[K];
	float sc[K];

	memset(&p, 0, sizeof p);
	p.nlist = NLIST;
	p.codec = VEC_IVF_PQ;
	p.pq_m = 8;
	p.pq_bits = 4;
	EXPECT(vec_ivf_train(&g, &p, x, N, DIM, VEC_METRIC_L2, 1, NULL) == VEC_OK);
	if (!g)
		goto done;
	/* Three vectors: at most three lists hold anything. */
	EXPECT(vec_ivf_add(g, x, 3, 1, NULL) == VEC_OK);
	for (size_t np = 1; np <= NLIST; np++) {
		o.nprobe = np;
		EXPECT(vec_ivf_search(g, &v, x + 1 * DIM, 1, K, &o, ids, sc, NULL) == VEC_OK);
		EXPECT(ids[0] == 1 || (np < 3 && ids[0] == UINT64_MAX));
		EXPECT(ids[3] == UINT64_MAX && isinf(sc[3]));
	}
	o.nprobe = NLIST;
	EXPECT(vec_ivf_search(g, &v, x + 1 * DIM, 1, K, &o, ids, sc, NULL) == VEC_OK);
	EXPECT(ids[0] == 1 && ids[1] != UINT64_MAX && ids[2] != UINT64_MAX);
	/* Refining needs vectors this index does not keep. */
	o.refine = 2;
	EXPECT(vec_ivf_search(g, &v, x, 1, K, &o, ids, sc, NULL) == VEC_E_USAGE);
done:
	vec_ivf_free(g);
	free(x);
}

static void test_params(void)
{
	float *x = points(300);
	struct vec_index_params p;
	struct vec_index *idx = NULL;
	struct vec_errbuf eb;

#define REFUSED(what, text)                                                   \
	do {                                                                  \
		EXPECT_MSG(vec_index_create(&idx, &p, &eb) == VEC_E_USAGE &&  \
				   idx == NULL, "%s", what);                  \
		EXPECT_MSG(strstr(eb.msg, text) != NULL, "%s: %s", what, eb.msg); \
		vec_index_close(idx);                                         \
		idx = NULL;                                                   \
	} while (0)
	params_of(&kinds[0], VEC_METRIC_L2, 0, &p);
	p.pq_m = 5;
	REFUSED("m not dividing", "5 sub-quantisers do not divide the dimension 16");
	p.pq_m = 32;
	REFUSED("m above dim", "32 sub-quantisers do not divide the dimension 16");
	p.pq_m = 8;
	p.pq_bits = 6;
	REFUSED("bits", "4 or 8 bits per sub-quantiser, not 6");
	p.pq_bits = 8;
	p.sq_bits = 4;
	REFUSED("sq-bits for ivfpq", "sq-bits applies to hnsw indexes only");
	p.type = VEC_TYPE_HNSW;
	p.sq_bits = 6;
	REFUSED("sq-bits 6", "sq-bits must be 4 or 8, not 6");
	params_of(&kinds[3], VEC_METRIC_L2, 0, &p);
	p.nlist = 4;
	REFUSED("nlist for pq", "a pq index has one list");
	params_of(&kinds[5], VEC_METRIC_L2, 0, &p);
	p.pq_m = 4;
	REFUSED("pq for sq8", "PQ parameters given for a payload without PQ");
	params_of(&kinds[0], VEC_METRIC_L2, 0, &p);
	p.type = VEC_TYPE_IVF;
	p.pq_m = 0;
	p.pq_bits = 0;
	p.refine = 3;
	REFUSED("refine for ivf", "needs no refinement");
	p.type = VEC_TYPE_HNSW;
	REFUSED("refine for hnsw", "apply to the coded types only");
	params_of(&kinds[0], VEC_METRIC_L2, 0, &p);
	p.train_size = NLIST - 1;
	REFUSED("train size", "smaller than nlist");
#undef REFUSED
	/* 8-bit codes need 256 vectors to train on; the batch that would
	 * train is refused whole, and the index is still collecting. */
	params_of(&kinds[0], VEC_METRIC_L2, 0, &p);
	p.train_size = 200;
	EXPECT(vec_index_create(&idx, &p, &eb) == VEC_OK);
	if (idx) {
		struct vec_index_info in;
		EXPECT(vec_index_add(idx, 200, x, NULL, &eb) == VEC_E_USAGE);
		EXPECT(strstr(eb.msg, "needs at least 256 vectors to train on, not 200") != NULL);
		vec_index_info(idx, &in);
		EXPECT(in.count == 0);
		EXPECT(vec_index_add(idx, 100, x, NULL, &eb) == VEC_OK);
		vec_index_close(idx);
	}
	free(x);
}

static uint8_t *sec(struct vec_file *f, uint32_t id, uint64_t *len)
{
	const struct vec_file_section *s = vec_file_find(f, id);
	if (len)
		*len = s ? s->length : 0;
	return s ? (uint8_t *)(uintptr_t)s->data : NULL;
}

/* Payload sections that disagree with the parameters are refused at open;
 * a changed code is found by verification (when vectors are kept). */
static void test_hostile(void)
{
	float *x = points(N);
	struct vec_index *idx = make(&kinds[1], VEC_METRIC_L2, 2, x, N), *o = NULL;
	struct vec_errbuf eb;
	struct vec_file f;
	char path[4200];
	uint8_t *buf = NULL, *pp, *pq, save[64];
	uint64_t qlen;
	size_t len;

	if (!idx)
		goto done;
	snprintf(path, sizeof path, "%s/hostile-pq.vec", unit_tmpdir);
	EXPECT(vec_index_save(idx, path, NULL) == VEC_OK);
	buf = unit_slurp(path, &len);
	if (!buf)
		goto done;
	if (vec_file_parse(&f, "h", buf, len, NULL) != VEC_OK)
		goto done;
	pp = sec(&f, VEC_SEC_IVFP, NULL);
	pq = sec(&f, VEC_SEC_IVFQ, &qlen);
	EXPECT(pp && pq);
	if (!pp || !pq)
		goto done;
#define REFUSED(what, code)                                                  \
	do {                                                                 \
		EXPECT_MSG(vec_index_open_mem(&o, buf, len, 0, &eb) == (code), \
			   "%s", what);                                      \
		EXPECT(o == NULL);                                           \
		vec_index_close(o);                                          \
		o = NULL;                                                    \
	} while (0)
	memcpy(save, pp, 64);
	vec_put_le32(pp + 52, 5); /* m not dividing 16 */
	REFUSED("m", VEC_E_CORRUPT);
	vec_put_le32(pp + 52, 8); /* m consistent, but IVFQ/IVFX sized for 16 */
	REFUSED("m size", VEC_E_CORRUPT);
	memcpy(pp, save, 64);
	vec_put_le32(pp + 56, 5);
	REFUSED("bits", VEC_E_CORRUPT);
	memcpy(pp, save, 64);
	vec_put_le32(pp + 48, 9);
	REFUSED("payload", VEC_E_VERSION);
	memcpy(pp, save, 64);
	vec_put_le32(pp + 60, 0); /* no refine, yet VECS is there */
	REFUSED("refine", VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "section 'VECS' present") != NULL);
	memcpy(pp, save, 64);
	vec_put_le32(pp + 48, VEC_IVF_SQ8); /* sq8 with PQ fields */
	REFUSED("sq8 with pq fields", VEC_E_CORRUPT);
	memcpy(pp, save, 64);
	/* The header says ivf (payload 0) or pq (one list). */
	vec_put_le32(buf + 16, VEC_TYPE_IVF);
	unit_reseal(buf, len);
	REFUSED("type ivf", VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "payload 1 with 20 lists for type ivf") != NULL);
	vec_put_le32(buf + 16, VEC_TYPE_PQ);
	unit_reseal(buf, len);
	REFUSED("type pq", VEC_E_CORRUPT);
	vec_put_le32(buf + 16, VEC_TYPE_IVFPQ);
	unit_reseal(buf, len);
	EXPECT(vec_index_open_mem(&o, buf, len, VEC_OPEN_VERIFY, NULL) == VEC_OK);
	vec_index_close(o);
	o = NULL;
	/* A changed code: opens, searches, but --verify says which. */
	pq[0] ^= 0x11;
	unit_reseal(buf, len);
	EXPECT(vec_index_open_mem(&o, buf, len, 0, NULL) == VEC_OK);
	if (o) {
		EXPECT(vec_index_verify(o, &eb) == VEC_E_CORRUPT);
		EXPECT_MSG(strstr(eb.msg, "is not the code of vector") != NULL, "%s", eb.msg);
	}
	vec_index_close(o);
	o = NULL;
#undef REFUSED
done:
	free(buf);
	vec_index_close(idx);
	free(x);
}

/*
 * Refine codes (vectors of 256 components or more): kept by every coded
 * payload that refines, grown by adds, saved and opened; the refine that
 * reads them first answers exactly (ids and scores) as re-ranking every
 * candidate on the full vectors, for each metric, with vectors of small
 * integers (codes without error) and of floats; --verify finds a changed
 * code or a bound that does not hold, and open refuses a negative bound.
 */
#define RDIM 256
#define RN 1000
/* The file in buf (resealed first) is refused at open with msg. */
static void refused_at_open(uint8_t *buf, size_t len, const char *msg)
{
	struct vec_index *o = NULL;
	struct vec_errbuf eb;

	unit_reseal(buf, len);
	EXPECT_MSG(vec_index_open_mem(&o, buf, len, 0, &eb) == VEC_E_CORRUPT && !o &&
		   strstr(eb.msg, msg), "expected \"%s\"", msg);
	vec_index_close(o);
}

static void refine_codes_hostile(const char *path)
{
	struct vec_index *o = NULL;
	struct vec_errbuf eb;
	struct vec_file f;
	uint8_t *buf = NULL, *r, *c;
	uint64_t rlen, clen;
	size_t len;
	float bd;

	buf = unit_slurp(path, &len);
	EXPECT(buf != NULL);
	if (!buf)
		return;
	if (vec_file_parse(&f, "h", buf, len, NULL) != VEC_OK) {
		EXPECT(0);
		free(buf);
		return;
	}
	r = sec(&f, VEC_SEC_IVFR, &rlen);
	c = sec(&f, VEC_SEC_IVFS, &clen);
	EXPECT(r && c && rlen == (2 * RDIM + RN) * 4 && clen == (uint64_t)RN * RDIM);
	if (!r || !c)
		goto done;
	/* A changed code: opens, but --verify names it. */
	c[7 * RDIM] ^= 0x40;
	unit_reseal(buf, len);
	EXPECT(vec_index_open_mem(&o, buf, len, 0, NULL) == VEC_OK);
	EXPECT(o && vec_index_verify(o, &eb) == VEC_E_CORRUPT &&
	       strstr(eb.msg, "'IVFS': code 7 is not the code of vector 7"));
	vec_index_close(o);
	o = NULL;
	c[7 * RDIM] ^= 0x40;
	/* A bound that does not hold (float vectors: never 0). */
	memcpy(&bd, r + (2 * RDIM + 5) * 4, 4);
	EXPECT(bd > 0);
	vec_put_le32(r + (2 * RDIM + 5) * 4, 0);
	unit_reseal(buf, len);
	EXPECT(vec_index_open_mem(&o, buf, len, 0, NULL) == VEC_OK);
	EXPECT(o && vec_index_verify(o, &eb) == VEC_E_CORRUPT &&
	       strstr(eb.msg, "'IVFR': bound 5 is below"));
	vec_index_close(o);
	o = NULL;
	/* A negative bound is refused at open. */
	bd = -1;
	memcpy(r + (2 * RDIM + 5) * 4, &bd, 4);
	refused_at_open(buf, len, "'IVFR': bound 5 is negative");
	bd = 1;
	memcpy(r + (2 * RDIM + 5) * 4, &bd, 4);
	/* So are a quantiser offset that is not finite and a negative step. */
	bd = NAN;
	memcpy(r + 3 * 4, &bd, 4);
	refused_at_open(buf, len, "'IVFR': quantiser value 3 is not finite or negative");
	bd = 0;
	memcpy(r + 3 * 4, &bd, 4);
	bd = -0.5f;
	memcpy(r + (RDIM + 9) * 4, &bd, 4);
	refused_at_open(buf, len, "'IVFR': quantiser value 265 is not finite or negative");
	/* And codes without their quantiser: IVFR renamed in the table. */
	for (size_t i = 0; i + 4 <= (size_t)(r - buf); i++)
		if (!memcmp(buf + i, "IVFR", 4)) {
			buf[i + 3] = 'Z';
			break;
		}
	refused_at_open(buf, len, "section 'IVFS' without 'IVFR'");
done:
	free(buf);
}

static void test_refine_codes(void)
{
	/* The refine is the same code for every payload: one of each
	 * family (4-bit PQ, SQ8) and the one-list type. */
	static const struct kind rk[] = {
		{ "ivfpq4", VEC_TYPE_IVFPQ, 64, 4 },
		{ "ivfsq8", VEC_TYPE_IVFSQ8, 0, 0 },
		{ "pq4", VEC_TYPE_PQ, 64, 4 },
	};
	static const int metrics[] = { VEC_METRIC_L2, VEC_METRIC_IP, VEC_METRIC_COS };
	float *x = malloc((size_t)RN * RDIM * sizeof *x);
	float *q = malloc((size_t)NQ * RDIM * sizeof *q);
	uint64_t *i1 = malloc(NQ * K * sizeof *i1), *i2 = malloc(NQ * K * sizeof *i2);
	float *s1 = malloc(NQ * K * sizeof *s1), *s2 = malloc(NQ * K * sizeof *s2);
	char path[4200];

	if (!x || !q || !i1 || !i2 || !s1 || !s2)
		goto done;
	/* ints 0: float vectors; 1: small integers, whose codes are exact
	 * (scored on the codes, not the vectors: the same answers); 2: the
	 * same with every seventh row after the 600 trained on off the
	 * integers, and one -0.0, a mix of both.  (A fractional value among those trained
	 * on would take its component off the integer steps for all.) */
	for (int ints = 0; ints < 3; ints++) {
		rs = 0x5eed + (uint64_t)ints;
		for (size_t i = 0; i < (size_t)RN * RDIM; i++)
			x[i] = ints ? (float)(rnd() % 16) : 3 * noise() + (float)(i % 7);
		for (size_t i = 601; ints == 2 && i < RN; i += 7)
			x[i * RDIM + i % RDIM] += 0.25f;
		/* -0.0 equals 0 but is not its bits: not exact either. */
		if (ints == 2)
			x[602 * RDIM + 3] = -0.0f;
		for (size_t i = 0; i < (size_t)NQ * RDIM; i++)
			q[i] = x[(size_t)(rnd() % RN) * RDIM + i % RDIM] + noise();
		for (size_t t = 0; t < sizeof rk / sizeof rk[0]; t++)
			for (size_t mi = 0; mi < 3; mi++) {
				struct vec_index_params p = VEC_INDEX_PARAMS_INIT;
				struct vec_index *idx = NULL, *o = NULL;
				struct vec_search_opts so = VEC_SEARCH_OPTS_INIT;
				struct vec_errbuf eb;
				int ok;
				p.type = rk[t].type;
				p.metric = metrics[mi];
				p.dim = RDIM;
				p.pq_m = rk[t].m;
				p.pq_bits = rk[t].bits;
				p.refine = 3;
				p.nlist = rk[t].type == VEC_TYPE_PQ ? 0 : 12;
				p.train_size = 600;
				p.seed = 5;
				p.threads = 2;
				ok = vec_index_create(&idx, &p, &eb) == VEC_OK;
				EXPECT_MSG(ok, "%s: %s", rk[t].name, eb.msg);
				if (!ok)
					continue;
				/* Trains at 600, then grows in two more steps. */
				for (size_t i = 0; i < RN && ok; i += 400)
					ok = vec_index_add(idx, RN - i < 400 ? RN - i : 400,
							   x + i * RDIM, NULL, &eb) == VEC_OK;
				EXPECT_MSG(ok, "%s: %s", rk[t].name, eb.msg);
				snprintf(path, sizeof path, "%s/rq-%d-%zu-%zu.vec", unit_tmpdir,
					 ints, t, mi);
				EXPECT(ok && vec_index_save(idx, path, NULL) == VEC_OK);
				EXPECT(vec_index_open(&o, path, VEC_OPEN_VERIFY, &eb) == VEC_OK);
				EXPECT_MSG(o && vec_index_verify(o, &eb) == VEC_OK, "%s: %s",
					   rk[t].name, o ? eb.msg : "not opened");
				EXPECT_MSG(o && has_section(o, "IVFR") && has_section(o, "IVFS"),
					   "%s: no refine codes", rk[t].name);
				if (o) {
					/* cos stores normalised vectors: not integers. */
					struct vec_index_info in;
					uint64_t want = !ints || metrics[mi] == VEC_METRIC_COS ? 0 :
							ints == 1 ? RN : RN - (RN - 601 + 6) / 7 - 1;
					vec_index_stats(o, &in);
					EXPECT_MSG(in.ivf.refine_exact == want,
						   "%s metric %d ints %d: %llu exact codes, want %llu",
						   rk[t].name, metrics[mi], ints,
						   (unsigned long long)in.ivf.refine_exact,
						   (unsigned long long)want);
				}
				for (int from = 0; from < 2 && o; from++) {
					struct vec_index *use = from ? o : idx;
					for (size_t np = 1; np <= 12; np += 11) {
						so.nprobe = np;
						so.refine = -1;
						so.threads = 1;
						vec_ivf_use_refine_codes(vec_index_ivf(use), 1);
						EXPECT(vec_index_search(use, NQ, q, K, &so, i1, s1, NULL) == VEC_OK);
						vec_ivf_use_refine_codes(vec_index_ivf(use), 0);
						EXPECT(vec_index_search(use, NQ, q, K, &so, i2, s2, NULL) == VEC_OK);
						EXPECT_MSG(!memcmp(i1, i2, NQ * K * sizeof *i1) &&
							   !memcmp(s1, s2, NQ * K * sizeof *s1),
							   "%s metric %d ints %d nprobe %zu from %d: answers differ",
							   rk[t].name, metrics[mi], ints, np, from);
					}
				}
				vec_index_close(o);
				vec_index_close(idx);
			}
	}
	/* Hostile refine codes, in the first file (float vectors, l2). */
	snprintf(path, sizeof path, "%s/rq-0-0-0.vec", unit_tmpdir);
	refine_codes_hostile(path);
done:
	free(x);
	free(q);
	free(i1);
	free(i2);
	free(s1);
	free(s2);
}

/*
 * A batch of coded queries may be searched list-major (each probed list
 * read once for all the queries that probe it; forced here, these lists
 * being small) or query by query (forced too): every query's answer must
 * be the one it gets alone, to the bit, either way, for each coded kind,
 * metric and SIMD level, with and without refine, with exact ties (small
 * integers, repeated rows, twin queries).
 */
static void test_batch_vs_one(void)
{
	static const int metrics[] = { VEC_METRIC_L2, VEC_METRIC_IP, VEC_METRIC_COS };
	const int saved = vec_kernels()->level;
	float *x = malloc(N * DIM * sizeof *x), *q = malloc(NQ * DIM * sizeof *q);
	uint64_t *i1 = malloc(NQ * K * sizeof *i1), *i2 = malloc(NQ * K * sizeof *i2);
	float *s1 = malloc(NQ * K * sizeof *s1), *s2 = malloc(NQ * K * sizeof *s2);
	int compared = 0, shared = 0;

	if (!x || !q || !i1 || !i2 || !s1 || !s2)
		goto done;
	rs = 777;
	for (size_t i = 0; i < N * DIM; i++)
		x[i] = (float)(rnd() % 9) - 2.0f;
	for (size_t i = 0; i < N; i += 5) /* repeated rows: exact ties */
		memcpy(x + (i + 2 < N ? i + 2 : i) * DIM, x + i * DIM, DIM * sizeof *x);
	for (size_t i = 0; i < NQ * DIM; i++)
		q[i] = (float)(rnd() % 9) - 2.0f;
	memcpy(q + 7 * DIM, q + 3 * DIM, DIM * sizeof *q); /* twins */
	for (size_t t = 0; t < NKINDS; t++) {
		if (kinds[t].type != VEC_TYPE_IVFPQ && kinds[t].type != VEC_TYPE_IVFSQ8)
			continue;
		for (size_t mi = 0; mi < 3; mi++)
			for (uint32_t refine = 0; refine <= 4; refine += 4) {
				struct vec_index *idx = make(&kinds[t], metrics[mi], refine,
							     x, N);
				if (!idx)
					continue;
				for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
					if (!vec_kernels_for(level))
						continue;
					vec_simd_select(level);
					/* nprobe NLIST: every list, scanned in list
					 * order (no ranking to sort) */
					for (size_t pi = 0; pi < 3; pi++)
					for (int lm = 0; lm <= 1; lm++) {
						const size_t np = pi == 0 ? 1 : pi == 1 ? 7 : NLIST;
						int bad = 0;
						vec_ivf_list_major(vec_index_ivf(idx), lm);
						EXPECT(search(idx, q, NQ, np, -1, i1, s1) == VEC_OK);
						for (size_t i = 0; i < NQ; i++)
							EXPECT(search(idx, q + i * DIM, 1, np, -1,
								      i2 + i * K, s2 + i * K) == VEC_OK);
						for (size_t e = 0; e < NQ * K; e++)
							bad += i1[e] != i2[e] ||
							       memcmp(&s1[e], &s2[e], sizeof *s1);
						EXPECT_MSG(bad == 0, "%s metric %d refine %u level %d nprobe %zu list-major %d: %d differ",
							   kinds[t].name, metrics[mi], refine, level, np, lm, bad);
						compared++;
					}
				}
				vec_simd_select(saved);
				/* An entry's estimate depends on its query, list
				 * and code alone: every id answered at nprobe 7
				 * (lists best first) and at NLIST (every list,
				 * in list order) has the same score in both. */
				if (!refine) {
					int bad = 0;
					EXPECT(search(idx, q, NQ, 7, -1, i1, s1) == VEC_OK);
					EXPECT(search(idx, q, NQ, NLIST, -1, i2, s2) == VEC_OK);
					for (size_t i = 0; i < NQ; i++)
						for (size_t a = 0; a < K; a++)
							for (size_t b = 0; b < K; b++)
								if (i1[i * K + a] == i2[i * K + b] &&
								    i1[i * K + a] != UINT64_MAX) {
									bad += memcmp(&s1[i * K + a],
										      &s2[i * K + b], 4) != 0;
									shared++;
								}
					EXPECT_MSG(bad == 0, "%s metric %d: %d scores differ between nprobe 7 and %d",
						   kinds[t].name, metrics[mi], bad, NLIST);
				}
				vec_index_close(idx);
			}
	}
	EXPECT(compared >= 4 * 3 * 2 * 2 * 2);
	EXPECT(shared > NQ);
done:
	free(x);
	free(q);
	free(i1);
	free(i2);
	free(s1);
	free(s2);
}

void suite_ivfpq(void)
{
	RUN(test_round_trip);
	RUN(test_recall);
	RUN(test_empty_lists);
	RUN(test_params);
	RUN(test_hostile);
	RUN(test_refine_codes);
	RUN(test_batch_vs_one);
}
