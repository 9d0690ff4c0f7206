/*
 * hnsw.c - the hierarchical navigable small-world graph (Malkov and
 * Yashunin): insert, search, sections and open in place, check, stats.
 *
 * Shape of the graph:
 *  - Node i has a level drawn as floor(-ln(U) mL), mL = 1 / ln(M), where U
 *    comes from a hash of (seed, i): levels depend on neither the thread
 *    count nor how the nodes were split between insert calls.
 *  - Level 0, while built or grown: one row of 1 + M0 u32 per node
 *    (degree, then ids), so a node's links are at a fixed stride and can
 *    be rewritten in place.  In a file (HNSL, read in place): each node's
 *    links only, as bit fields just wide enough for the node count,
 *    found by offsets (l0_start); 56 bytes a node on glove-100 at M 16
 *    instead of 132, which brought the index within 1.1x of hnswlib's
 *    saved index with its quantised copy, at the same q/s.
 *    Upper levels: offsets[count + 1]
 *    (in blocks) into blocks of 1 + M u32; node i's level L >= 1 block is
 *    offsets[i] + L - 1, and its level is offsets[i + 1] - offsets[i].
 *  - A quantised copy of the vectors steers the search (sq8.h): 8 bits
 *    per component (4 for long vectors, see vec_hnsw_default_bits),
 *    per-dimension offset lo[d] and step scale[d], rows padded to 64
 *    bytes or, from 256, packed (code_stride).  At 784 dimensions
 *    4-bit rows answered 20-30%
 *    more queries a second at the same ef (half the cache lines a node),
 *    with recall@10 within 0.002 from ef 16 on; at 100 dimensions they
 *    were no faster and lost recall, so short vectors keep 8 bits.  The query is scaled by scale[d] and
 *    quantised to signed bytes, so that one integer dot product (VNNI
 *    vpdpbusd where the CPU has it) estimates <q, x> for every metric; for
 *    l2 the squared norm of the reconstructed row completes the distance.
 *    The final ef candidates are re-ranked on the full-precision vectors,
 *    so the codes only decide where the search goes, never the scores.
 *  - Construction steers by the codes too: each insertion's searches
 *    (greedy descent, then the ef_construction beam on each level) rank
 *    by them, and the beam's candidates are then re-scored on the
 *    full-precision vectors, by which the neighbour heuristic chooses and
 *    the lists are pruned.  Reading codes, not vectors, makes building
 *    about a third faster; recall at every ef measured the same.
 *
 * Sections (man/vec-index.5), all little-endian:
 *   HNSP required  64 bytes: version, M, M0, ef_construction, seed, count,
 *                  entry point, max level, dim, metric, code stride, then
 *                  (versions 2, 3) the code bits, (3) the bits of a
 *                  level-0 link, then reserved zero bytes; writers use
 *                  version 3, readers open 1 (8 bits, no bits byte) and 2
 *   HSQ8 optional  count x stride bytes of codes (8 or 4 bits), then 64
 *                  zero bytes if the stride is not a multiple of 64
 *   HNSL required  (3) E = count / 2^16 + 1 u64 bases, count + 1 u32
 *                  offsets, the ids' bit fields, padding to 4, 8 zeros
 *   HNS0 required  (1, 2) count x (1 + M0) u32
 *   HNSU required  (count + 1) u32 offsets, then offsets[count] x (1 + M) u32
 *   HSQN optional  lo[dim], scale[dim] f32, then (l2) count f32 squared
 *                  norms of the reconstructed rows
 * Without HSQ8/HSQN (another writer) the codes are rebuilt at open.
 *
 * Concurrency of insert: one spin lock per node guards its lists (taken to
 * read them too, while other threads may write); a mutex guards the entry
 * point and max level, and is held for a whole insertion only by a node
 * that raises the max level.  No thread ever holds two node locks.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hnsw.h"
#include "internal.h"
#include "sq8.h"

#define HNSP_BYTES 64
#define HNSP_VERSION 3        /* 3: HNSL, packed codes; 2: HNS0 and the
				 code bits; 1: HNS0, 8 bits implied */
#define MAX_LEVEL 31           /* levels 0..31: stats has 32 slots */
#define M_LIMIT 4096           /* largest M accepted (links per list) */
#define EF_DEFAULT 80          /* see vec_hnsw_default_ef */
#define NONE UINT32_MAX
#define TOUCHED_MAX 16384      /* visited nodes remembered for a reset */
#define QGROUP 4               /* queries searched in turns on one thread */

#define VEC_SEC_HSQ8 VEC_FOURCC('H', 'S', 'Q', '8')
#define VEC_SEC_HSQN VEC_FOURCC('H', 'S', 'Q', 'N')

struct vec_hnsw {
	uint32_t M, M0, efc;
	uint64_t seed;
	size_t dim;
	int metric;
	uint64_t count;
	uint32_t entry;             /* NONE while empty */
	uint32_t max_level;

	/* Current view: into a mapped file, or the owned arrays below. */
	const uint32_t *l0;         /* count x (1 + M0), or NULL: compact */
	const uint64_t *l0base;     /* compact (HNSL): epoch bases ... */
	const uint32_t *l0rel;      /* ... count + 1 offsets in them ... */
	const uint8_t *l0ids;       /* ... and the ids, l0bits bits each
				       (l0base: the mapped HNSL section) */
	unsigned l0bits;
	const uint32_t *uoff;       /* count + 1 block offsets */
	const uint32_t *ublk;       /* uoff[count] x (1 + M) */
	const uint8_t *codes;       /* count x stride */
	struct vec_sq8 sq;          /* lo, scale (dim each), code stride */
	const float *qnorm;         /* count (l2 only), else NULL */

	int owned;
	uint64_t cap;               /* nodes room of the owned arrays */
	uint64_t ublk_cap;          /* blocks room of own_ublk */
	uint32_t *own_l0, *own_uoff, *own_ublk;
	uint8_t *own_codes;
	float *own_qparam;          /* lo[dim] then scale[dim] */
	float *own_qnorm;

	/* Serialised sections, valid until the next change. */
	uint8_t hnsp[HNSP_BYTES];
	uint8_t *ser_u, *ser_n, *ser_l;
};

/* ---- small helpers ---- */

static inline size_t row0(const struct vec_hnsw *g)
{
	return (size_t)g->M0 + 1;
}

static inline size_t rowu(const struct vec_hnsw *g)
{
	return (size_t)g->M + 1;
}

static inline unsigned node_level(const struct vec_hnsw *g, uint32_t i)
{
	return g->uoff[i + 1] - g->uoff[i];
}

/* Node i's list at level L (block of 1 + M or 1 + M0 u32). */
static inline const uint32_t *list_at(const struct vec_hnsw *g, uint32_t i,
				      unsigned L)
{
	if (L == 0)
		return g->l0 + (size_t)i * row0(g);
	return g->ublk + ((size_t)g->uoff[i] + L - 1) * rowu(g);
}

/*
 * Compact level 0 (HNSL, what files hold): node i's links are ids
 * [start(i), start(i + 1)) of one array of l0bits-bit fields (just
 * enough for count - 1: 17 bits at 100,000 nodes), where start(i) =
 * base[i >> 16] + rel[i].  Open checks that every degree is within M0,
 * so that these reads stay in the section.
 */
#define L0_EPOCH 16 /* rel[] counts from base[] every 2^16 nodes */

static inline uint64_t l0_start(const struct vec_hnsw *g, uint64_t i)
{
	return g->l0base[i >> L0_EPOCH] + g->l0rel[i];
}

/* Node i's level-0 degree, either layout. */
static inline uint32_t degree0(const struct vec_hnsw *g, uint64_t i)
{
	if (g->l0)
		return g->l0[i * row0(g)];
	return (uint32_t)(l0_start(g, i + 1) - l0_start(g, i));
}

/* The bits of a link id for count nodes: enough for count - 1, at least 1. */
static unsigned link_bits(uint64_t count)
{
	unsigned b = 1;
	while (b < 32 && (count - 1) >> b)
		b++;
	return b;
}

/* Node i's level-0 links into buf (M0 room); returns how many.  Each id
 * is one 8-byte little-endian read, shifted and masked (the section ends
 * in 8 spare bytes). */
static size_t links0(const struct vec_hnsw *g, uint64_t i, uint32_t *buf)
{
	const unsigned w = g->l0bits;
	const uint64_t mask = ((uint64_t)1 << w) - 1;
	uint64_t b = l0_start(g, i) * w;
	size_t n = degree0(g, i);

	for (size_t j = 0; j < n; j++, b += w) {
		uint64_t u;
		memcpy(&u, g->l0ids + (b >> 3), 8); /* little-endian hosts (open) */
		buf[j] = (uint32_t)((u >> (b & 7)) & mask);
	}
	return n;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* Node i's level: a function of (seed, i) only. */
static unsigned draw_level(uint64_t seed, uint64_t i, uint32_t M)
{
	uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ull * (i + 1));
	double u = (double)((h >> 11) + 1) * 0x1p-53; /* (0, 1] */
	double l = floor(-log(u) / log((double)M));

	return l >= MAX_LEVEL ? MAX_LEVEL : (unsigned)l;
}

/* ---- spin locks (insert only) ---- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static inline void spin_lock(_Atomic unsigned char *l)
{
	while (atomic_exchange_explicit(l, 1, memory_order_acquire))
		while (atomic_load_explicit(l, memory_order_relaxed))
			cpu_relax();
}

static inline void spin_unlock(_Atomic unsigned char *l)
{
	atomic_store_explicit(l, 0, memory_order_release);
}

/* ---- the searcher: one thread's scratch and its query ---- */

struct ent {
	float d;      /* smaller is better */
	uint32_t id;
};

struct searcher {
	const struct vec_hnsw *g;
	const float *vx;            /* the vectors (v->x) */
	uint32_t limit;             /* ids >= limit are never followed */
	_Atomic unsigned char *locks; /* insert with threads > 1 */
	const struct vec_kernels *k;
	vec_sq8_gather_fn dots;

	/* The query. */
	const float *x;
	int quant;                  /* distances from the codes */
	int8_t *cq;                 /* stride bytes */
	float t, qlo;

	/* Scratch. */
	uint64_t *vis;              /* 2 bits a node: seen, expanded */
	uint32_t *touched;          /* nodes marked since the last reset */
	size_t ntouched, touched_cap;
	struct ent *pool;
	size_t pool_cap;
	uint32_t *ids, *nbuf;
	float *dist;
	int32_t *idot;
	struct ent *cand;           /* M0 + 1: pruning a full list */
	uint32_t *sel;              /* M0: selected neighbours */

	/* A beam search in progress (beam_start, beam_expand, beam_update). */
	size_t bn, bcur, bm, bef;   /* pool size, next to expand, ids[] held, ef */
	unsigned bL;                /* its level */
	/* A greedy descent in progress (greedy_expand, greedy_update). */
	uint32_t gcur;              /* the closest node so far ... */
	float gd;                   /* ... its distance */
	unsigned gL, gto;           /* the level, the last level + 1 */
};

static void searcher_free(struct searcher *s)
{
	free(s->cq);
	free(s->vis);
	free(s->touched);
	free(s->pool);
	free(s->ids);
	free(s->nbuf);
	free(s->dist);
	free(s->idot);
	free(s->cand);
	free(s->sel);
}

static int searcher_init(struct searcher *s, const struct vec_hnsw *g,
			 const float *vx, uint64_t nodes, size_t ef)
{
	size_t m = (size_t)g->M0 + 1;

	memset(s, 0, sizeof *s);
	s->g = g;
	s->vx = vx;
	s->limit = (uint32_t)nodes;
	s->k = vec_kernels();
	s->dots = g->sq.bits == 4 ? vec_sq8_kernels()->gather4
				  : vec_sq8_kernels()->gather;
	s->pool_cap = ef + 1;
	s->cq = calloc(vec_sq_qbytes(&g->sq) ? vec_sq_qbytes(&g->sq) : 1, 1);
	s->vis = calloc((size_t)(nodes / 32 + 1), sizeof *s->vis);
	s->touched_cap = nodes < TOUCHED_MAX ? (size_t)nodes + 1 : TOUCHED_MAX;
	s->touched = malloc(s->touched_cap * sizeof *s->touched);
	s->pool = malloc(s->pool_cap * sizeof *s->pool);
	s->ids = malloc(m * sizeof *s->ids);
	s->nbuf = malloc(m * sizeof *s->nbuf);
	s->dist = malloc(m * sizeof *s->dist);
	s->idot = malloc(m * sizeof *s->idot);
	s->cand = malloc((m + 1) * sizeof *s->cand);
	s->sel = malloc(m * sizeof *s->sel);
	if (!s->cq || !s->vis || !s->touched || !s->pool || !s->ids || !s->nbuf ||
	    !s->dist || !s->idot || !s->cand || !s->sel) {
		searcher_free(s);
		return VEC_E_NOMEM;
	}
	return VEC_OK;
}

/* Distance of two stored rows (or a query and a row), smaller is better. */
static inline float fdist(const struct searcher *s, const float *a,
			  const float *b)
{
	size_t dim = s->g->dim;
	if (s->g->metric == VEC_METRIC_L2)
		return s->k->l2sq(a, b, dim);
	return -s->k->dot(a, b, dim);
}

/* Prefetch bytes [0, len) of p (whole cache lines). */
static inline void prefetch_rows(const void *p, size_t len)
{
	for (size_t o = 0; o < len; o += 64)
		__builtin_prefetch((const char *)p + o);
}

static inline const float *vec_row(const struct searcher *s, uint32_t id)
{
	return s->vx + (size_t)id * s->g->dim;
}

/* Set up the quantised query: cq, t, qlo. */
static void query_prepare(struct searcher *s, const float *x)
{
	s->x = x;
	s->quant = s->g->codes != NULL;
	if (s->quant)
		vec_sq8_query(&s->g->sq, x, s->cq, &s->t, &s->qlo);
}

/* Distances of the query to nodes ids[0..n). */
static void eval(struct searcher *s, const uint32_t *ids, size_t n, float *out)
{
	const struct vec_hnsw *g = s->g;

	if (s->quant) {
		s->dots(g->codes, g->sq.stride, s->cq, ids, n, s->idot);
		if (g->qnorm) {
			for (size_t j = 0; j < n; j++)
				out[j] = vec_sq8_est_l2(g->qnorm[ids[j]], s->t,
							s->qlo, s->idot[j]);
		} else {
			for (size_t j = 0; j < n; j++)
				out[j] = vec_sq8_est_ip(s->t, s->qlo, s->idot[j]);
		}
		return;
	}
	for (size_t j = 0; j < n; j++) {
		if (j + 1 < n) {
			const char *p = (const char *)vec_row(s, ids[j + 1]);
			__builtin_prefetch(p);
			__builtin_prefetch(p + 64);
			__builtin_prefetch(p + 128);
			__builtin_prefetch(p + 192);
		}
		out[j] = fdist(s, s->x, vec_row(s, ids[j]));
	}
}

/* Start fetching node id's code row, if short: the lines of its first
 * and last bytes (the gather kernel fetches the rest).  Always inlined:
 * called as a function, it cost 16% of glove-100's q/s. */
static inline __attribute__((always_inline)) void
prefetch_code(const struct vec_hnsw *g, uint32_t id)
{
	const char *r = (const char *)g->codes + (size_t)id * g->sq.stride;

	__builtin_prefetch(r);
	if (g->sq.stride <= 256)
		__builtin_prefetch(r + g->sq.stride - 1);
}

/*
 * Node c's links at level L, clamped to the list's capacity; a level the
 * node does not have gives none (a hostile file cannot make us read
 * another node's block).  While threads insert, the list is copied under
 * the node's lock.
 */
static size_t neighbours(struct searcher *s, uint32_t c, unsigned L,
			 const uint32_t **out)
{
	const struct vec_hnsw *g = s->g;
	const uint32_t *p;
	uint32_t max = L ? g->M : g->M0, n;

	if (L && node_level(g, c) < L)
		return 0;
	if (!L && !g->l0) {
		*out = s->nbuf;
		return links0(g, c, s->nbuf);
	}
	p = list_at(g, c, L);
	if (!s->locks) {
		n = p[0] < max ? p[0] : max;
		*out = p + 1;
		return n;
	}
	spin_lock(&s->locks[c]);
	n = p[0] < max ? p[0] : max;
	memcpy(s->nbuf, p + 1, n * sizeof *p);
	spin_unlock(&s->locks[c]);
	*out = s->nbuf;
	return n;
}

/*
 * Greedy descent from level `from` down to level `to` + 1: on each level,
 * move to the closest neighbour while one is closer.  Like the beam
 * search, in two steps a node (greedy_expand gathers and prefetches the
 * current node's neighbours, or returns 0 when the descent is over;
 * greedy_update scores them and moves), so that queries can take turns.
 */
static void greedy_start(struct searcher *s, uint32_t cur, float dcur,
			 unsigned from, unsigned to)
{
	s->gcur = cur;
	s->gd = dcur;
	s->gL = from;
	s->gto = to;
	s->bm = 0;
}

static int greedy_expand(struct searcher *s)
{
	for (; s->gL > s->gto; s->gL--) {
		const uint32_t *nb;
		size_t deg = neighbours(s, s->gcur, s->gL, &nb), m = 0;

		for (size_t j = 0; j < deg; j++)
			if (nb[j] < s->limit) {
				s->ids[m++] = nb[j];
				if (s->quant)
					prefetch_code(s->g, nb[j]);
			}
		if (m) {
			s->bm = m;
			return 1;
		}
	}
	return 0;
}

static void greedy_update(struct searcher *s)
{
	int changed = 0;

	eval(s, s->ids, s->bm, s->dist);
	for (size_t j = 0; j < s->bm; j++)
		if (s->dist[j] < s->gd) {
			s->gd = s->dist[j];
			s->gcur = s->ids[j];
			changed = 1;
		}
	s->bm = 0;
	if (!changed)
		s->gL--;
}

/* The whole descent at once; returns the node reached (*dcur its distance). */
static uint32_t greedy(struct searcher *s, uint32_t cur, float *dcur,
		       unsigned from, unsigned to)
{
	greedy_start(s, cur, *dcur, from, to);
	while (greedy_expand(s))
		greedy_update(s);
	*dcur = s->gd;
	return s->gcur;
}

/*
 * The visited set: two bits a node (seen, expanded), 1/4 byte, so that it
 * stays in the first-level caches while codes and lists stream past (a
 * tag array was a cache miss per neighbour on 100k nodes).  A reset clears
 * only the words of the nodes marked since the last one, unless they were
 * too many to remember.
 */
static void visit_reset(struct searcher *s)
{
	if (s->ntouched >= s->touched_cap) {
		memset(s->vis, 0, ((size_t)s->limit / 32 + 1) * sizeof *s->vis);
	} else {
		for (size_t i = 0; i < s->ntouched; i++)
			s->vis[s->touched[i] >> 5] = 0;
	}
	s->ntouched = 0;
}

static inline int vis_seen(const struct searcher *s, uint32_t id)
{
	return (int)(s->vis[id >> 5] >> ((id & 31) * 2)) & 1;
}

static inline int vis_expanded(const struct searcher *s, uint32_t id)
{
	return (int)(s->vis[id >> 5] >> ((id & 31) * 2 + 1)) & 1;
}

static inline void vis_mark(struct searcher *s, uint32_t id, unsigned bit)
{
	s->vis[id >> 5] |= (uint64_t)1 << ((id & 31) * 2 + bit);
	if (bit == 0 && s->ntouched < s->touched_cap)
		s->touched[s->ntouched++] = id;
	else if (bit == 0)
		s->ntouched = s->touched_cap; /* overflow: clear it all */
}

/* Prefetch node c's level-0 list (a few cache lines). */
static inline void prefetch_list0(const struct vec_hnsw *g, uint32_t c)
{
	const char *p;
	uint64_t a, n;

	if (g->l0) {
		prefetch_rows(g->l0 + (size_t)c * row0(g), row0(g) * 4);
		return;
	}
	a = l0_start(g, c);
	p = (const char *)g->l0ids + a * g->l0bits / 8;
	n = (l0_start(g, (uint64_t)c + 1) - a) * g->l0bits / 8 + 1;
	__builtin_prefetch(p);
	if (n > 64)
		__builtin_prefetch(p + 64);
	if (n)
		__builtin_prefetch(p + n - 1);
}

/*
 * The first place in pool[0..n) (sorted by d) whose distance is above d:
 * a binary search written without branches in its steps (the compiler
 * can use conditional moves), since the comparisons go either way at
 * random.
 */
static inline size_t pool_upper(const struct ent *pool, size_t n, float d)
{
	size_t lo = 0;

	while (n > 0) {
		size_t half = n / 2;
		int right = pool[lo + half].d <= d;
		lo = right ? lo + half + 1 : lo;
		n = right ? n - half - 1 : half;
	}
	return lo;
}

/*
 * Beam search on level L from ep: the pool holds the best ef nodes seen,
 * sorted; the closest not yet expanded is expanded next, and the search
 * ends when every node in the pool has been.  It runs in two steps a node
 * so that several queries' searches can take turns (search_group): while
 * one waits for the rows its expansion prefetched, the others work.
 * beam_start sets it up; beam_expand takes the next node and gathers its
 * unseen neighbours (prefetching their rows), or returns 0 when the search
 * is over; beam_update scores them and moves them into the pool.
 */
static void beam_start(struct searcher *s, unsigned L, uint32_t ep, float epd,
		       size_t ef)
{
	visit_reset(s);
	vis_mark(s, ep, 0);
	s->pool[0].d = epd;
	s->pool[0].id = ep;
	s->bn = 1;
	s->bcur = 0;
	s->bm = 0;
	s->bef = ef;
	s->bL = L;
}

static int beam_expand(struct searcher *s)
{
	const struct ent *pool = s->pool;
	const uint32_t *nb;
	size_t deg, m = 0, n = s->bn, cur = s->bcur;
	unsigned L = s->bL;
	uint32_t c;

	if (cur >= n)
		return 0;
	c = pool[cur].id;
	vis_mark(s, c, 1);
	if (L == 0) {
		/* The lists expanded next are most likely the next
		 * unexpanded ones now: fetch them during this one. */
		for (size_t t = cur + 1, got = 0; t < n && t < cur + 8 && got < 2; t++)
			if (!vis_expanded(s, pool[t].id)) {
				prefetch_list0(s->g, pool[t].id);
				got++;
			}
	}
	deg = neighbours(s, c, L, &nb);
	for (size_t j = 0; j < deg; j++) {
		uint32_t id = nb[j];
		if (id >= s->limit || vis_seen(s, id))
			continue;
		vis_mark(s, id, 0);
		s->ids[m++] = id;
		if (s->quant) /* start short rows early */
			prefetch_code(s->g, id);
		/* Compact level 0: its offset, so that expanding the node
		 * later waits for one miss (its links), not two. */
		if (!L && !s->g->l0)
			__builtin_prefetch(&s->g->l0rel[id]);
	}
	s->bm = m;
	return 1;
}

static void beam_update(struct searcher *s)
{
	struct ent *pool = s->pool;
	size_t n = s->bn, cur = s->bcur, lowest = n, m = s->bm, ef = s->bef;

	if (m)
		eval(s, s->ids, m, s->dist);
	for (size_t j = 0; j < m; j++) {
		float d = s->dist[j];
		size_t t;

		if (n == ef && !(d < pool[n - 1].d))
			continue;
		/* Ties go after equals; a full pool drops its last. */
		t = pool_upper(pool, n, d);
		if (n < ef)
			n++;
		memmove(pool + t + 1, pool + t, (n - 1 - t) * sizeof *pool);
		pool[t].d = d;
		pool[t].id = s->ids[j];
		if (t < lowest)
			lowest = t;
		if (s->bL == 0 && t <= cur + 1) /* expanded soon */
			prefetch_list0(s->g, s->ids[j]);
	}
	cur = lowest <= cur ? lowest : cur + 1;
	while (cur < n && vis_expanded(s, pool[cur].id))
		cur++;
	s->bn = n;
	s->bcur = cur;
	s->bm = 0;
}

/* The whole beam search at once; returns the pool's size. */
static size_t beam(struct searcher *s, unsigned L, uint32_t ep, float epd,
		   size_t ef)
{
	beam_start(s, L, ep, epd, ef);
	while (beam_expand(s))
		beam_update(s);
	return s->bn;
}

/*
 * The neighbour heuristic: walk the candidates nearest first and keep one
 * only if it is closer to the base than to every neighbour kept so far.
 * cand[] is sorted by distance to the base (exact distances).
 */
static size_t select_heuristic(struct searcher *s, const struct ent *cand,
			       size_t n, size_t max, uint32_t *out)
{
	size_t kept = 0;

	for (size_t i = 0; i < n && kept < max; i++) {
		const float *xc = vec_row(s, cand[i].id);
		int good = 1;
		for (size_t r = 0; r < kept; r++)
			if (fdist(s, xc, vec_row(s, out[r])) <= cand[i].d) {
				good = 0;
				break;
			}
		if (good)
			out[kept++] = cand[i].id;
	}
	return kept;
}

/* ---- insert ---- */

struct build {
	struct vec_hnsw *g;
	struct searcher *scr;
	pthread_mutex_t top;        /* entry point and max level */
};

/* Writable list of node i at level L (owned graph, insert only). */
static inline uint32_t *list_mut(struct vec_hnsw *g, uint32_t i, unsigned L)
{
	if (L == 0)
		return g->own_l0 + (size_t)i * row0(g);
	return g->own_ublk + ((size_t)g->own_uoff[i] + L - 1) * rowu(g);
}

static int ent_cmp(const struct ent *a, const struct ent *b)
{
	if (a->d != b->d)
		return a->d < b->d ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* Add a link e -> i on level L; a full list is pruned by the heuristic. */
static void link_back(struct searcher *s, uint32_t e, uint32_t i, unsigned L,
		      float dei)
{
	struct vec_hnsw *g = (struct vec_hnsw *)s->g;
	uint32_t *p = list_mut(g, e, L);
	uint32_t max = L ? g->M : g->M0;
	const float *xe = vec_row(s, e);

	if (s->locks)
		spin_lock(&s->locks[e]);
	if (p[0] < max) {
		p[1 + p[0]] = i;
		p[0]++;
	} else {
		size_t n = 0, kept;
		for (uint32_t j = 0; j < max; j++) {
			struct ent x = { fdist(s, xe, vec_row(s, p[1 + j])), p[1 + j] };
			size_t at = n++;
			while (at > 0 && ent_cmp(&x, &s->cand[at - 1]) < 0) {
				s->cand[at] = s->cand[at - 1];
				at--;
			}
			s->cand[at] = x;
		}
		{
			struct ent x = { dei, i };
			size_t at = n++;
			while (at > 0 && ent_cmp(&x, &s->cand[at - 1]) < 0) {
				s->cand[at] = s->cand[at - 1];
				at--;
			}
			s->cand[at] = x;
		}
		kept = select_heuristic(s, s->cand, n, max, s->sel);
		memcpy(p + 1, s->sel, kept * sizeof *p);
		p[0] = (uint32_t)kept;
	}
	if (s->locks)
		spin_unlock(&s->locks[e]);
}

/*
 * Write a new node's list for one level: its chosen neighbours, then any
 * links other threads gave it meanwhile (once its back-links on the level
 * above exist it can be reached, and chosen, before its own list here is
 * written), while room lasts.  Called with the node's lock held.
 */
static void publish_list(uint32_t *p, const uint32_t *sel, size_t kept,
			 uint32_t cap)
{
	uint32_t had = p[0] < cap ? p[0] : cap, extra[M_LIMIT];
	size_t ne = 0, n = kept;

	for (uint32_t t = 0; t < had; t++) {
		size_t j = 0;
		while (j < kept && sel[j] != p[1 + t])
			j++;
		if (j == kept)
			extra[ne++] = p[1 + t];
	}
	memcpy(p + 1, sel, kept * sizeof *p);
	for (size_t t = 0; t < ne && n < cap; t++)
		p[1 + n++] = extra[t];
	p[0] = (uint32_t)n;
}

static int ent_qcmp(const void *a, const void *b)
{
	return ent_cmp(a, b);
}

static void insert_one(struct build *b, struct searcher *s, uint32_t i)
{
	struct vec_hnsw *g = b->g;
	unsigned lev = node_level(g, i), maxl, top;
	uint32_t ep;
	float d;
	int hold;

	query_prepare(s, vec_row(s, i));
	pthread_mutex_lock(&b->top);
	ep = g->entry;
	maxl = g->max_level;
	hold = lev > maxl;
	if (!hold)
		pthread_mutex_unlock(&b->top);
	eval(s, &ep, 1, &d);
	if (maxl > lev)
		ep = greedy(s, ep, &d, maxl, lev);
	top = lev < maxl ? lev : maxl;
	for (unsigned L = top + 1; L-- > 0;) {
		size_t n = beam(s, L, ep, d, g->efc), kept;
		uint32_t *p = list_mut(g, i, L);
		uint32_t sel[M_LIMIT];

		/* The next level starts where this one's search ended; the
		 * candidates are then re-scored on the full vectors, by
		 * which the heuristic and the pruning choose. */
		ep = s->pool[0].id;
		d = s->pool[0].d;
		if (s->quant) {
			for (size_t t = 0; t < n; t++) {
				if (t + 1 < n)
					prefetch_rows(vec_row(s, s->pool[t + 1].id), 256);
				s->pool[t].d = fdist(s, s->x, vec_row(s, s->pool[t].id));
			}
			qsort(s->pool, n, sizeof *s->pool, ent_qcmp);
		}
		kept = select_heuristic(s, s->pool, n, g->M, sel);
		if (s->locks)
			spin_lock(&s->locks[i]);
		publish_list(p, sel, kept, L ? g->M : g->M0);
		if (s->locks)
			spin_unlock(&s->locks[i]);
		for (size_t j = 0; j < kept; j++) {
			float dj = 0;
			for (size_t t = 0; t < n; t++)
				if (s->pool[t].id == sel[j]) {
					dj = s->pool[t].d;
					break;
				}
			link_back(s, sel[j], i, L, dj);
		}
	}
	if (hold) {
		g->entry = i;
		g->max_level = lev;
		pthread_mutex_unlock(&b->top);
	}
}

struct insert_ctx {
	struct build *b;
	uint32_t first;
};

static void insert_task(void *ctx, size_t task, int worker)
{
	struct insert_ctx *c = ctx;

	insert_one(c->b, &c->b->scr[worker], c->first + (uint32_t)task);
}

/* Drop serialised copies: the graph is about to change. */
static void drop_serialised(struct vec_hnsw *g)
{
	free(g->ser_u);
	free(g->ser_n);
	free(g->ser_l);
	g->ser_u = g->ser_n = g->ser_l = NULL;
}

/*
 * The stride of the code rows a graph writes: packed (sq8.h) when the
 * padded row would take PACK_MIN bytes or more, else padded.  Packed
 * 784-dimensional 4-bit rows (400 bytes for 448) read no slower; packed
 * 100-dimensional 8-bit rows (100 for 128) 14% slower, a row touching
 * 2.5 cache lines on average instead of 2.
 */
#define PACK_MIN 256

static size_t code_stride(size_t dim, unsigned bits)
{
	size_t padded = bits == 4 ? vec_sq4_stride(dim) : vec_sq8_stride(dim);

	if (padded < PACK_MIN)
		return padded;
	return bits == 4 ? vec_sq4_packed(dim) : dim;
}

int vec_hnsw_create(struct vec_hnsw **out, const struct vec_hnsw_params *p,
		    size_t dim, int metric, struct vec_errbuf *eb)
{
	struct vec_hnsw *g;
	uint32_t M = p && p->M ? p->M : VEC_HNSW_DEFAULT_M;
	uint32_t efc = p && p->ef_construction ? p->ef_construction
					       : VEC_HNSW_DEFAULT_EFC;
	unsigned bits = p && p->sq_bits ? p->sq_bits : vec_hnsw_default_bits(dim);

	*out = NULL;
	if (M < 2 || M > M_LIMIT / 2)
		return vec_err(eb, VEC_E_USAGE, "bad M %u (must be 2..%d)", M,
			       M_LIMIT / 2);
	if (efc > 1u << 20)
		return vec_err(eb, VEC_E_USAGE, "bad ef_construction %u (at most %u)",
			       efc, 1u << 20);
	if (metric < VEC_METRIC_L2 || metric > VEC_METRIC_COS)
		return vec_err(eb, VEC_E_USAGE, "unknown metric %d", metric);
	if (bits != 4 && bits != 8)
		return vec_err(eb, VEC_E_USAGE, "bad code bits %u (must be 4 or 8)", bits);
	if (dim < 1 || dim > VEC_DIM_MAX)
		return vec_err(eb, VEC_E_USAGE, "bad dimension %zu (must be 1..%d)",
			       dim, VEC_DIM_MAX);
	g = calloc(1, sizeof *g);
	if (!g)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	g->M = M;
	g->M0 = 2 * M;
	g->efc = efc < M ? M : efc;
	g->seed = p ? p->seed : VEC_HNSW_DEFAULT_SEED;
	g->dim = dim;
	g->metric = metric;
	g->entry = NONE;
	g->sq.dim = dim;
	g->sq.bits = bits;
	g->sq.stride = code_stride(dim, bits);
	g->owned = 1;
	g->own_qparam = calloc(2 * dim, sizeof(float));
	if (!g->own_qparam) {
		free(g);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	g->sq.lo = g->own_qparam;
	g->sq.scale = g->own_qparam + dim;
	*out = g;
	return VEC_OK;
}

void vec_hnsw_free(struct vec_hnsw *g)
{
	if (!g)
		return;
	free(g->own_l0);
	free(g->own_uoff);
	free(g->own_ublk);
	free(g->own_codes);
	free(g->own_qparam);
	free(g->own_qnorm);
	drop_serialised(g);
	free(g);
}

uint64_t vec_hnsw_count(const struct vec_hnsw *g)
{
	return g->count;
}

/* Point the view at the owned arrays. */
static void view_owned(struct vec_hnsw *g)
{
	g->l0 = g->own_l0;
	g->uoff = g->own_uoff;
	g->ublk = g->own_ublk;
	g->sq.lo = g->own_qparam;
	g->sq.scale = g->own_qparam + g->dim;
	g->qnorm = g->own_qnorm;
	g->codes = g->count ? g->own_codes : NULL;
}

/* Grow the owned arrays (the view is repointed by reserve). */
static int grow_arrays(struct vec_hnsw *g, uint64_t need, uint64_t blocks)
{
	if (need > g->cap) {
		uint64_t cap = g->cap + g->cap / 2;
		void *p;
		cap = cap < need ? need : cap;
		cap = cap < 256 ? 256 : cap;
		if (cap > (uint64_t)UINT32_MAX)
			cap = UINT32_MAX;
		if (cap * row0(g) * 4 > SIZE_MAX / 2)
			return VEC_E_NOMEM;
		if (!(p = realloc(g->own_l0, (size_t)cap * row0(g) * 4)))
			return VEC_E_NOMEM;
		g->own_l0 = p;
		if (!(p = realloc(g->own_uoff, (size_t)(cap + 1) * 4)))
			return VEC_E_NOMEM;
		g->own_uoff = p;
		if (!(p = realloc(g->own_codes, (size_t)cap * g->sq.stride +
					       vec_sq_slack(g->sq.stride))))
			return VEC_E_NOMEM;
		/* The new rows and the slack zeroed: a packed row's last block
		 * is read past its end (sq8.h), into the next row or the
		 * slack, whose bytes meet zero query bytes but must be
		 * defined. */
		memset((uint8_t *)p + (size_t)g->cap * g->sq.stride, 0,
		       (size_t)(cap - g->cap) * g->sq.stride +
		       vec_sq_slack(g->sq.stride));
		g->own_codes = p;
		if (g->metric == VEC_METRIC_L2) {
			if (!(p = realloc(g->own_qnorm, (size_t)cap * 4)))
				return VEC_E_NOMEM;
			g->own_qnorm = p;
		}
		g->cap = cap;
	}
	if (blocks > g->ublk_cap) {
		uint64_t cap = g->ublk_cap + g->ublk_cap / 2;
		void *p;
		cap = cap < blocks ? blocks : cap;
		if (cap * rowu(g) * 4 > SIZE_MAX / 2)
			return VEC_E_NOMEM;
		if (!(p = realloc(g->own_ublk, (size_t)cap * rowu(g) * 4)))
			return VEC_E_NOMEM;
		g->own_ublk = p;
		g->ublk_cap = cap;
	}
	return VEC_OK;
}

/*
 * Room for `need` nodes and `blocks` upper blocks in the owned arrays.  The
 * view is repointed whatever happened: an array realloc moved before a later
 * one failed must not leave the view on freed memory.
 */
static int reserve(struct vec_hnsw *g, uint64_t need, uint64_t blocks)
{
	int rc = grow_arrays(g, need, blocks);
	if (g->owned)
		view_owned(g);
	return rc;
}

/* The compact level 0 of the view into the owned fixed rows (room for
 * count reserved); the view forgets it (view_owned points it at them). */
static void expand_l0(struct vec_hnsw *g)
{
	g->l0 = NULL; /* degree0 and links0 read the compact arrays */
	for (uint64_t i = 0; i < g->count; i++) {
		uint32_t *row = g->own_l0 + i * row0(g);
		row[0] = (uint32_t)links0(g, i, row + 1);
	}
	g->l0base = NULL;
	g->l0rel = NULL;
	g->l0ids = NULL;
}

/* Copy a mapped graph into owned memory before its first change. */
static int make_owned(struct vec_hnsw *g)
{
	uint64_t n = g->count, nb;
	float *qp;

	if (g->owned)
		return VEC_OK;
	nb = g->uoff[n];
	qp = malloc(2 * g->dim * sizeof *qp);
	if (!qp)
		return VEC_E_NOMEM;
	if (reserve(g, n ? n : 1, nb ? nb : 1)) {
		free(qp);
		return VEC_E_NOMEM;
	}
	if (g->l0)
		memcpy(g->own_l0, g->l0, (size_t)n * row0(g) * 4);
	else
		expand_l0(g);
	memcpy(g->own_uoff, g->uoff, (size_t)(n + 1) * 4);
	memcpy(g->own_ublk, g->ublk, (size_t)nb * rowu(g) * 4);
	if (g->codes)
		memcpy(g->own_codes, g->codes, (size_t)n * g->sq.stride);
	if (g->own_qnorm && g->qnorm)
		memcpy(g->own_qnorm, g->qnorm, (size_t)n * 4);
	memcpy(qp, g->sq.lo, g->dim * sizeof *qp);
	memcpy(qp + g->dim, g->sq.scale, g->dim * sizeof *qp);
	free(g->own_qparam);
	g->own_qparam = qp;
	g->owned = 1;
	view_owned(g);
	return VEC_OK;
}

/* The owned quantiser (the view may still point into a file). */
static struct vec_sq8 own_quantiser(const struct vec_hnsw *g)
{
	struct vec_sq8 q = g->sq;

	q.lo = g->own_qparam;
	q.scale = g->own_qparam + g->dim;
	return q;
}

/* Fit the owned quantiser to rows [0, n) of x. */
static void train_quantiser(struct vec_hnsw *g, const float *x, uint64_t n)
{
	if (g->sq.bits == 4)
		vec_sq4_train(g->own_qparam, g->own_qparam + g->dim, x, n, g->dim);
	else
		vec_sq8_train(g->own_qparam, g->own_qparam + g->dim, x, n, g->dim);
}

/* Codes of rows [from, to) (owned arrays have room). */
static void encode_rows(struct vec_hnsw *g, const float *x, uint64_t from,
			uint64_t to)
{
	struct vec_sq8 q = own_quantiser(g);

	vec_sq8_encode(&q, x + from * g->dim, (size_t)(to - from),
		       g->own_codes + from * g->sq.stride,
		       g->own_qnorm ? g->own_qnorm + from : NULL);
}

int vec_hnsw_insert(struct vec_hnsw *g, const struct vec_vectors *v,
		    int threads, struct vec_errbuf *eb)
{
	uint64_t n0 = g->count, n1 = v->count, blocks;
	struct build b;
	struct insert_ctx ic;
	size_t nthreads = 0, ntasks;
	int retrain, rc = VEC_OK;
	_Atomic unsigned char *locks = NULL;

	if (v->dim != g->dim || v->metric != g->metric)
		return vec_err(eb, VEC_E_USAGE, "vectors do not match the graph");
	if (n1 < n0)
		return vec_err(eb, VEC_E_USAGE, "fewer vectors than graph nodes");
	if (n1 >= NONE)
		return vec_err(eb, VEC_E_USAGE, "too many vectors for a graph (%llu)",
			       (unsigned long long)n1);
	if (n1 == n0)
		return VEC_OK;
	/* Everything that can fail comes first: until the commit below the
	 * graph means what it meant (extra room is invisible). */
	if (make_owned(g))
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	if (reserve(g, n1, 0))
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	if (n0 == 0)
		g->own_uoff[0] = 0;
	blocks = g->own_uoff[n0];
	for (uint64_t i = n0; i < n1; i++) {
		blocks += draw_level(g->seed, i, g->M);
		g->own_uoff[i + 1] = (uint32_t)blocks; /* beyond count: unused yet */
	}
	if (blocks > UINT32_MAX || reserve(g, n1, blocks))
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	ntasks = (size_t)(n1 - (n0 ? n0 : 1));
	if (ntasks) {
		nthreads = threads <= 0 ? (size_t)vec_ncpu() : (size_t)threads;
		if (nthreads > ntasks)
			nthreads = ntasks;
	}
	b.g = g;
	b.scr = calloc(nthreads ? nthreads : 1, sizeof *b.scr);
	if (!b.scr)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	if (nthreads > 1 && !(locks = calloc((size_t)n1, 1))) {
		free(b.scr);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	for (size_t t = 0; t < nthreads; t++) {
		if (searcher_init(&b.scr[t], g, v->x, n1, g->efc)) {
			while (t-- > 0)
				searcher_free(&b.scr[t]);
			free(b.scr);
			free(locks);
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		}
		b.scr[t].locks = locks;
	}

	/* Commit: nothing below fails. */
	drop_serialised(g);
	retrain = n0 == 0;
	if (!retrain) {
		struct vec_sq8 q = own_quantiser(g);
		retrain = !vec_sq8_fits(&q, v->x + n0 * g->dim, (size_t)(n1 - n0));
	}
	if (retrain) {
		train_quantiser(g, v->x, n1);
		encode_rows(g, v->x, 0, n1);
	} else {
		encode_rows(g, v->x, n0, n1);
	}
	memset(g->own_l0 + n0 * row0(g), 0, (size_t)(n1 - n0) * row0(g) * 4);
	if (blocks > g->own_uoff[n0])
		memset(g->own_ublk + (size_t)g->own_uoff[n0] * rowu(g), 0,
		       (size_t)(blocks - g->own_uoff[n0]) * rowu(g) * 4);
	/* Codes of new rows exist now; the view covers them for traversal
	 * while count still says n0 (searchers use their own limit). */
	g->codes = g->own_codes;
	if (n0 == 0) {
		g->entry = 0;
		g->max_level = node_level(g, 0);
	}
	if (ntasks) {
		pthread_mutex_init(&b.top, NULL);
		ic.b = &b;
		ic.first = (uint32_t)(n0 ? n0 : 1);
		/* A failure to start threads still runs every task. */
		(void)vec_pool_run((int)nthreads, ntasks, insert_task, &ic);
		pthread_mutex_destroy(&b.top);
	}
	g->count = n1;
	view_owned(g);
	for (size_t t = 0; t < nthreads; t++)
		searcher_free(&b.scr[t]);
	free(b.scr);
	free(locks);
	return rc;
}

/* ---- search ---- */

size_t vec_hnsw_default_ef(const struct vec_hnsw *g, size_t k)
{
	(void)g;
	return k > EF_DEFAULT ? k : EF_DEFAULT;
}

/*
 * How many of the pool's best (by the codes) are re-scored on the full
 * vectors.  The codes' order is good enough that the true k best lie in
 * the first 2k: on glove-100, fashion-mnist and mnist, re-scoring 2k or
 * the whole pool gives identical recall at every ef, and k alone loses up
 * to 0.01.  Reading fewer full rows matters for long vectors (3 KiB each
 * at 784 dimensions).
 */
static size_t rerank_count(size_t k)
{
	return k + (k > 16 ? k : 16);
}

struct search_ctx {
	const struct vec_hnsw *g;
	const float *queries;
	size_t nq, k, ef;
	uint64_t *ids;
	float *scores;
	struct searcher *scr;
};

/* Best k of the pool (n entries) re-scored on the full vectors, ties by
 * id, written as query qi's answer. */
static void answer(const struct search_ctx *c, struct searcher *s, size_t qi,
		   size_t n)
{
	const struct vec_hnsw *g = c->g;
	const float *x = c->queries + qi * g->dim;
	uint64_t *ids = c->ids + qi * c->k;
	float *scores = c->scores + qi * c->k;
	size_t kept = 0;
	struct ent *best;

	/* Exact scores in place, then a partial insertion sort of k. */
	if (n > rerank_count(c->k))
		n = rerank_count(c->k);
	for (size_t j = 0; j < n; j++) {
		if (j + 2 < n)
			prefetch_rows(vec_row(s, s->pool[j + 2].id), g->dim * 4);
		s->pool[j].d = fdist(s, x, vec_row(s, s->pool[j].id));
	}
	best = s->pool;
	for (size_t j = 0; j < n; j++) {
		struct ent e = best[j];
		size_t at;
		if (kept == c->k && ent_cmp(&e, &best[kept - 1]) >= 0)
			continue;
		at = kept < c->k ? kept++ : kept - 1;
		/* best[0..kept) is sorted; entries past j are not yet read,
		 * and at <= j, so writing there only overwrites read ones. */
		while (at > 0 && ent_cmp(&e, &best[at - 1]) < 0) {
			best[at] = best[at - 1];
			at--;
		}
		best[at] = e;
	}
	for (size_t j = 0; j < c->k; j++) {
		if (j < kept) {
			float sc = best[j].d;
			ids[j] = best[j].id;
			scores[j] = g->metric == VEC_METRIC_L2 ? sqrtf(sc > 0 ? sc : 0) : -sc;
		} else {
			ids[j] = UINT64_MAX;
			scores[j] = g->metric == VEC_METRIC_L2 ? INFINITY : -INFINITY;
		}
	}
}

/*
 * Queries [group x QGROUP, ...) at once on one thread: each descends the
 * upper levels alone, then their level-0 searches take turns a node at a
 * time, so that the rows one query's expansion prefetched arrive while
 * the others work (a search alone waits for them: the graph's rows are
 * scattered over far more memory than the caches hold).  Each query's
 * steps are the ones it would take alone, so are its answers.
 */
static void search_group(void *ctx, size_t group, int worker)
{
	struct search_ctx *c = ctx;
	const struct vec_hnsw *g = c->g;
	struct searcher *scr = c->scr + (size_t)worker * QGROUP;
	size_t q0 = group * QGROUP, nq = c->nq - q0 < QGROUP ? c->nq - q0 : QGROUP;
	size_t live[QGROUP], nlive = 0;
	int beaming[QGROUP];

	for (size_t j = 0; j < nq; j++) {
		struct searcher *s = &scr[j];
		uint32_t ep = g->entry;
		float d;

		query_prepare(s, c->queries + (q0 + j) * g->dim);
		eval(s, &ep, 1, &d);
		greedy_start(s, ep, d, g->max_level, 0);
		beaming[j] = 0;
		live[nlive++] = j;
	}
	/* Each round: score what the last one gathered, then gather anew. */
	while (nlive) {
		size_t kept = 0;
		for (size_t t = 0; t < nlive; t++) {
			struct searcher *s = &scr[live[t]];
			if (!s->bm && !beaming[live[t]])
				continue; /* first round: nothing gathered yet */
			if (beaming[live[t]]) {
				beam_update(s);
				if (s->bcur < s->bn)
					prefetch_list0(g, s->pool[s->bcur].id);
			} else {
				greedy_update(s);
			}
		}
		for (size_t t = 0; t < nlive; t++) {
			size_t j = live[t];
			struct searcher *s = &scr[j];
			if (!beaming[j]) {
				if (greedy_expand(s)) {
					live[kept++] = j;
					continue;
				}
				beam_start(s, 0, s->gcur, s->gd, c->ef);
				beaming[j] = 1;
			}
			if (beam_expand(s))
				live[kept++] = j;
			else
				answer(c, s, q0 + j, s->bn);
		}
		nlive = kept;
	}
}

int vec_hnsw_search(const struct vec_hnsw *g, const struct vec_vectors *v,
		    const float *queries, size_t nq, size_t k, size_t ef,
		    int threads, uint64_t *ids, float *scores,
		    struct vec_errbuf *eb)
{
	struct search_ctx c;
	size_t nthreads, ngroups, nscr;
	int rc;

	if (k == 0)
		return vec_err(eb, VEC_E_USAGE, "k must be at least 1");
	if (v->dim != g->dim || v->count < g->count)
		return vec_err(eb, VEC_E_USAGE, "vectors do not match the graph");
	if (nq == 0)
		return VEC_OK;
	if (g->count == 0) {
		for (size_t i = 0; i < nq * k; i++) {
			ids[i] = UINT64_MAX;
			scores[i] = g->metric == VEC_METRIC_L2 ? INFINITY : -INFINITY;
		}
		return VEC_OK;
	}
	if (ef == 0)
		ef = vec_hnsw_default_ef(g, k);
	if (ef < k)
		ef = k;
	if (ef > g->count)
		ef = (size_t)g->count;
	ngroups = (nq + QGROUP - 1) / QGROUP;
	nthreads = threads <= 0 ? (size_t)vec_ncpu() : (size_t)threads;
	if (nthreads > ngroups)
		nthreads = ngroups;
	nscr = nthreads * QGROUP;
	c.g = g;
	c.queries = queries;
	c.nq = nq;
	c.k = k;
	c.ef = ef;
	c.ids = ids;
	c.scores = scores;
	c.scr = calloc(nscr, sizeof *c.scr);
	if (!c.scr)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	for (size_t t = 0; t < nscr; t++)
		if (searcher_init(&c.scr[t], g, v->x, g->count, ef)) {
			while (t-- > 0)
				searcher_free(&c.scr[t]);
			free(c.scr);
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		}
	rc = vec_pool_run((int)nthreads, ngroups, search_group, &c);
	for (size_t t = 0; t < nscr; t++)
		searcher_free(&c.scr[t]);
	free(c.scr);
	(void)rc; /* the work is done even when threads could not start */
	return VEC_OK;
}

/* ---- sections ---- */

/* Bytes of HSQ8 for cnt rows of stride bytes: the slack after packed
 * rows (sq8.h) too; none for no rows. */
static uint64_t codes_bytes(uint64_t cnt, size_t stride)
{
	return cnt ? cnt * stride + vec_sq_slack(stride) : 0;
}

/* Bytes of an HNSL section: bases, offsets, the id bits (to a multiple
 * of 4 bytes), then 8 spare bytes. */
static uint64_t hnsl_bytes(uint64_t cnt, uint64_t links, unsigned bits)
{
	return ((cnt >> L0_EPOCH) + 1) * 8 + (cnt + 1) * 4 +
	       (links * bits + 31) / 32 * 4 + 8;
}

/* Node i's degree in fixed rows, clamped (a file's rows are only checked
 * by --verify). */
static inline uint32_t deg_fixed(const struct vec_hnsw *g, uint64_t i)
{
	uint32_t d = g->l0[i * row0(g)];
	return d < g->M0 ? d : g->M0;
}

/* The fixed-row level 0 (g->l0) made compact in g->ser_l, *len bytes;
 * NULL: no memory. */
static const uint8_t *compact_l0(struct vec_hnsw *g, uint64_t *len)
{
	uint64_t cnt = g->count, links = 0, nep = (cnt >> L0_EPOCH) + 1, at = 0;
	unsigned w = link_bits(cnt);
	uint8_t *b, *ids;
	uint64_t *base;
	uint32_t *rel;

	for (uint64_t i = 0; i < cnt; i++)
		links += deg_fixed(g, i);
	*len = hnsl_bytes(cnt, links, w);
	if (*len > SIZE_MAX || !(b = calloc(1, (size_t)*len)))
		return NULL;
	base = (uint64_t *)(void *)b;
	rel = (uint32_t *)(void *)(b + nep * 8);
	ids = b + nep * 8 + (cnt + 1) * 4;
	for (uint64_t i = 0; i <= cnt; i++) {
		if ((i & ((1u << L0_EPOCH) - 1)) == 0)
			base[i >> L0_EPOCH] = at;
		rel[i] = (uint32_t)(at - base[i >> L0_EPOCH]);
		if (i == cnt)
			break;
		const uint32_t *row = g->l0 + i * row0(g);
		for (uint32_t j = 0; j < deg_fixed(g, i); j++, at++) {
			/* Masked: a bad id of a file's fixed rows (--verify
			 * finds those) cannot spill into its neighbours. */
			uint64_t bit = at * w, u, id = row[1 + j] & (((uint64_t)1 << w) - 1);
			memcpy(&u, ids + (bit >> 3), 8);
			u |= id << (bit & 7);
			memcpy(ids + (bit >> 3), &u, 8);
		}
	}
	g->ser_l = b;
	return b;
}

int vec_hnsw_sections(struct vec_hnsw *g, struct vec_file_section *secs,
		      size_t *n, struct vec_errbuf *eb)
{
	uint64_t cnt = g->count, nb = g->uoff ? g->uoff[cnt] : 0;
	size_t ulen = (size_t)(cnt + 1) * 4 + (size_t)nb * rowu(g) * 4;
	size_t nlen = (2 * g->dim + (g->qnorm ? (size_t)cnt : 0)) * 4;
	uint8_t *p = g->hnsp;

	/* A mapped compact level 0 is written as it is. */
	const uint8_t *l0 = (const uint8_t *)g->l0base;
	uint64_t l0len = l0 ? hnsl_bytes(cnt, l0_start(g, cnt), g->l0bits) : 0;

	drop_serialised(g);
	g->ser_u = malloc(ulen);
	g->ser_n = malloc(nlen);
	if (!g->ser_u || !g->ser_n || (!l0 && !(l0 = compact_l0(g, &l0len)))) {
		drop_serialised(g);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	memset(p, 0, HNSP_BYTES);
	vec_put_le32(p + 0, HNSP_VERSION);
	vec_put_le32(p + 4, g->M);
	vec_put_le32(p + 8, g->M0);
	vec_put_le32(p + 12, g->efc);
	vec_put_le64(p + 16, g->seed);
	vec_put_le64(p + 24, cnt);
	vec_put_le32(p + 32, g->entry);
	vec_put_le32(p + 36, g->max_level);
	vec_put_le32(p + 40, (uint32_t)g->dim);
	vec_put_le32(p + 44, (uint32_t)g->metric);
	vec_put_le32(p + 48, (uint32_t)g->sq.stride);
	p[52] = (uint8_t)g->sq.bits;
	p[53] = (uint8_t)link_bits(cnt);

	if (cnt) {
		memcpy(g->ser_u, g->uoff, (size_t)(cnt + 1) * 4);
		if (nb)
			memcpy(g->ser_u + (cnt + 1) * 4, g->ublk, (size_t)nb * rowu(g) * 4);
	} else {
		vec_put_le32(g->ser_u, 0);
	}
	memcpy(g->ser_n, g->sq.lo, g->dim * 4);
	memcpy(g->ser_n + g->dim * 4, g->sq.scale, g->dim * 4);
	if (g->qnorm && cnt)
		memcpy(g->ser_n + 2 * g->dim * 4, g->qnorm, (size_t)cnt * 4);

	memset(secs, 0, 5 * sizeof *secs);
	secs[0].id = VEC_SEC_HNSP;
	secs[0].flags = VEC_SEC_REQUIRED;
	secs[0].data = g->hnsp;
	secs[0].length = HNSP_BYTES;
	secs[1].id = VEC_SEC_HNSL;
	secs[1].flags = VEC_SEC_REQUIRED;
	secs[1].data = l0;
	secs[1].length = l0len;
	secs[2].id = VEC_SEC_HNSU;
	secs[2].flags = VEC_SEC_REQUIRED;
	secs[2].data = g->ser_u;
	secs[2].length = ulen;
	secs[3].id = VEC_SEC_HSQ8;
	secs[3].data = cnt ? g->codes : g->hnsp;
	secs[3].length = codes_bytes(cnt, g->sq.stride);
	secs[4].id = VEC_SEC_HSQN;
	secs[4].data = g->ser_n;
	secs[4].length = nlen;
	*n = 5;
	return VEC_OK;
}

/*
 * An HNSL section for cnt nodes (O(count)): 8-byte aligned, its size that
 * of its link count, each epoch's offsets starting at 0, and every degree
 * within M0, so that a node's links are read inside the section.
 */
static int check_hnsl(const struct vec_file_section *s, uint64_t cnt,
		      uint32_t M0, unsigned w)
{
	uint64_t nep = (cnt >> L0_EPOCH) + 1, head = nep * 8 + (cnt + 1) * 4, prev = 0;
	const uint64_t *base = (const uint64_t *)(const void *)s->data;
	const uint32_t *rel;

	if (((uintptr_t)s->data & 7) || s->length < head + 4)
		return -1;
	rel = (const uint32_t *)(const void *)(s->data + nep * 8);
	for (uint64_t i = 0; i <= cnt; i++) {
		uint64_t a;
		if ((i & ((1u << L0_EPOCH) - 1)) == 0 && rel[i] != 0)
			return -1;
		a = base[i >> L0_EPOCH] + rel[i];
		if (a < base[i >> L0_EPOCH] || (i && (a < prev || a - prev > M0)))
			return -1;
		prev = a;
	}
	if (base[0] != 0 || prev > (s->length - head) * 8 / w)
		return -1;
	return s->length == hnsl_bytes(cnt, prev, w) ? 0 : -1;
}

/* Is p aligned for in-place u32/f32 reads? */
static int aligned4(const void *p)
{
	return ((uintptr_t)p & 3) == 0;
}

int vec_hnsw_open(struct vec_hnsw **out, const struct vec_file *f,
		  const struct vec_vectors *v, struct vec_errbuf *eb)
{
	const struct vec_file_section *sp, *s0, *su, *sq, *sn;
	const char *name = f->name ? f->name : "index";
	struct vec_hnsw *g;
	const uint8_t *p;
	uint64_t cnt, want, nb;
	uint32_t M, M0, ver, entry, maxl, dim, metric, stride, bits, w;
	const uint32_t *off;

	*out = NULL;
	if (!vec_host_is_le())
		return vec_err(eb, VEC_E_VERSION,
			       "%s: this build cannot map little-endian indexes on a big-endian host",
			       name);
	sp = vec_file_find(f, VEC_SEC_HNSP);
	su = vec_file_find(f, VEC_SEC_HNSU);
	if (!sp || !su)
		return VEC_CORRUPT(eb, "%s: missing section '%s'", name,
				   !sp ? "HNSP" : "HNSU");
	if (sp->length != HNSP_BYTES)
		return VEC_CORRUPT(eb, "%s: section 'HNSP' is %llu bytes, expected %d",
				   name, (unsigned long long)sp->length, HNSP_BYTES);
	p = sp->data;
	ver = vec_get_le32(p);
	if (ver < 1 || ver > HNSP_VERSION)
		return vec_err(eb, VEC_E_VERSION, "%s: graph version %u is not supported",
			       name, ver);
	s0 = vec_file_find(f, ver < 3 ? VEC_SEC_HNS0 : VEC_SEC_HNSL);
	if (!s0)
		return VEC_CORRUPT(eb, "%s: missing section '%s'", name,
				   ver < 3 ? "HNS0" : "HNSL");
	bits = ver == 1 ? 8 : p[52];
	if (bits != 4 && bits != 8)
		return VEC_CORRUPT(eb, "%s: section 'HNSP': bad code bits %u", name, bits);
	for (int i = ver == 1 ? 52 : ver == 2 ? 53 : 54; i < HNSP_BYTES; i++)
		if (p[i])
			return VEC_CORRUPT(eb, "%s: section 'HNSP': reserved byte %d is not zero",
					   name, i);
	M = vec_get_le32(p + 4);
	M0 = vec_get_le32(p + 8);
	cnt = vec_get_le64(p + 24);
	w = ver < 3 ? 32 : p[53];
	if (ver >= 3 && w != link_bits(cnt))
		return VEC_CORRUPT(eb, "%s: section 'HNSP': bad link bits %u", name, w);
	entry = vec_get_le32(p + 32);
	maxl = vec_get_le32(p + 36);
	dim = vec_get_le32(p + 40);
	metric = vec_get_le32(p + 44);
	stride = vec_get_le32(p + 48);
	if (M < 2 || M > M_LIMIT / 2 || M0 < M || M0 > M_LIMIT)
		return VEC_CORRUPT(eb, "%s: section 'HNSP': bad M %u / M0 %u", name, M, M0);
	if (dim != v->dim || (int)metric != v->metric)
		return VEC_CORRUPT(eb, "%s: section 'HNSP': dimension or metric differ from the index",
				   name);
	if (cnt > v->count || cnt >= NONE)
		return VEC_CORRUPT(eb, "%s: section 'HNSP': %llu nodes for %llu vectors",
				   name, (unsigned long long)cnt,
				   (unsigned long long)v->count);
	if (vec_get_le32(p + 12) < M || vec_get_le32(p + 12) > 1u << 20)
		return VEC_CORRUPT(eb, "%s: section 'HNSP': bad ef_construction", name);
	if (cnt ? entry >= cnt || maxl > MAX_LEVEL : entry != NONE || maxl != 0)
		return VEC_CORRUPT(eb, "%s: section 'HNSP': bad entry point", name);
	/* Rows padded to 64 bytes (every version), or packed (3). */
	if (stride != (bits == 4 ? vec_sq4_stride(dim) : vec_sq8_stride(dim)) &&
	    (ver < 3 || stride != (bits == 4 ? vec_sq4_packed(dim) : dim)))
		return VEC_CORRUPT(eb, "%s: section 'HNSP': bad code stride %u", name, stride);
	if (ver < 3 && (vec_mul_overflows(cnt, ((uint64_t)M0 + 1) * 4, &want) ||
			s0->length != want))
		return VEC_CORRUPT(eb, "%s: section 'HNS0' is %llu bytes, expected %llu",
				   name, (unsigned long long)s0->length,
				   (unsigned long long)want);
	if (ver >= 3 && check_hnsl(s0, cnt, M0, w))
		return VEC_CORRUPT(eb, "%s: section 'HNSL': bad offsets or size", name);
	if (su->length < (cnt + 1) * 4 || !aligned4(su->data) || !aligned4(s0->data))
		return VEC_CORRUPT(eb, "%s: section 'HNSU' is too short", name);
	off = (const uint32_t *)(const void *)su->data;
	/* O(count): offsets start at 0 and rise by at most MAX_LEVEL. */
	if (off[0] != 0)
		return VEC_CORRUPT(eb, "%s: section 'HNSU': bad offsets", name);
	for (uint64_t i = 0; i < cnt; i++)
		if (off[i + 1] < off[i] || off[i + 1] - off[i] > MAX_LEVEL)
			return VEC_CORRUPT(eb, "%s: section 'HNSU': bad level of node %llu",
					   name, (unsigned long long)i);
	nb = off[cnt];
	if ((su->length - (cnt + 1) * 4) / 4 / (M + 1) != nb ||
	    (su->length - (cnt + 1) * 4) % (4 * ((uint64_t)M + 1)) != 0)
		return VEC_CORRUPT(eb, "%s: section 'HNSU' is %llu bytes, expected %llu",
				   name, (unsigned long long)su->length,
				   (unsigned long long)((cnt + 1) * 4 + nb * (M + 1) * 4));
	if (cnt && off[entry + 1] - off[entry] != maxl)
		return VEC_CORRUPT(eb, "%s: section 'HNSP': entry point is not on the top level",
				   name);

	g = calloc(1, sizeof *g);
	if (!g)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	g->M = M;
	g->M0 = M0;
	g->efc = vec_get_le32(p + 12);
	g->seed = vec_get_le64(p + 16);
	g->dim = dim;
	g->metric = (int)metric;
	g->count = cnt;
	g->entry = entry;
	g->max_level = maxl;
	g->sq.dim = dim;
	g->sq.stride = stride;
	g->sq.bits = bits;
	if (ver < 3) {
		g->l0 = (const uint32_t *)(const void *)s0->data;
	} else {
		uint64_t nep = (cnt >> L0_EPOCH) + 1;
		g->l0base = (const uint64_t *)(const void *)s0->data;
		g->l0rel = (const uint32_t *)(const void *)(s0->data + nep * 8);
		g->l0ids = s0->data + nep * 8 + (cnt + 1) * 4;
	}
	g->l0bits = w;
	g->uoff = off;
	g->ublk = off + cnt + 1;

	sq = vec_file_find(f, VEC_SEC_HSQ8);
	sn = vec_file_find(f, VEC_SEC_HSQN);
	if (sq && sn) {
		uint64_t nlen = (2 * (uint64_t)dim + (metric == VEC_METRIC_L2 ? cnt : 0)) * 4;
		const float *qp = (const float *)(const void *)sn->data;
		if (sq->length != codes_bytes(cnt, stride) ||
		    sn->length != nlen || !aligned4(qp)) {
			vec_hnsw_free(g);
			return VEC_CORRUPT(eb, "%s: sections 'HSQ8'/'HSQN' have the wrong size",
					   name);
		}
		for (size_t d = 0; d < 2 * (size_t)dim; d++)
			if (!isfinite(qp[d]) || (d >= dim && qp[d] < 0)) {
				vec_hnsw_free(g);
				return VEC_CORRUPT(eb, "%s: section 'HSQN': bad quantiser", name);
			}
		g->codes = cnt ? sq->data : NULL;
		g->sq.lo = qp;
		g->sq.scale = qp + dim;
		g->qnorm = metric == VEC_METRIC_L2 ? qp + 2 * dim : NULL;
	} else {
		/* No codes stored: rebuild them (O(count x dim)). */
		int rc;
		g->owned = 1;
		g->own_qparam = calloc(2 * (size_t)dim, sizeof(float));
		rc = !g->own_qparam || reserve(g, cnt ? cnt : 1, nb ? nb : 1);
		if (rc) {
			vec_hnsw_free(g);
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		}
		if (g->l0base)
			expand_l0(g);
		else
			memcpy(g->own_l0, s0->data, (size_t)s0->length);
		memcpy(g->own_uoff, off, (size_t)(cnt + 1) * 4);
		memcpy(g->own_ublk, off + cnt + 1, (size_t)nb * rowu(g) * 4);
		if (cnt)
			train_quantiser(g, v->x, cnt);
		encode_rows(g, v->x, 0, cnt);
		view_owned(g);
	}
	*out = g;
	return VEC_OK;
}

/* One list (degree, then ids) of node i at level L. */
static int check_list(const struct vec_hnsw *g, uint64_t i, unsigned L,
		      const uint32_t *p, uint32_t max, struct vec_errbuf *eb)
{
	if (p[0] > max)
		return VEC_CORRUPT(eb, "graph: node %llu level %u: degree %u, at most %u",
				   (unsigned long long)i, L, p[0], max);
	for (uint32_t j = 0; j < p[0]; j++) {
		uint32_t t = p[1 + j];
		if (t >= g->count)
			return VEC_CORRUPT(eb, "graph: node %llu level %u: link to %u, only %llu nodes",
					   (unsigned long long)i, L, t,
					   (unsigned long long)g->count);
		if (L && node_level(g, t) < L)
			return VEC_CORRUPT(eb, "graph: node %llu level %u: link to %u, which has no level %u",
					   (unsigned long long)i, L, t, L);
	}
	return VEC_OK;
}

int vec_hnsw_check(const struct vec_hnsw *g, struct vec_errbuf *eb)
{
	uint32_t *buf = malloc(((size_t)g->M0 + 1) * sizeof *buf);
	int rc = VEC_OK;

	if (!buf)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	for (uint64_t i = 0; i < g->count && rc == VEC_OK; i++) {
		unsigned lev = node_level(g, (uint32_t)i);
		for (unsigned L = 0; L <= lev && rc == VEC_OK; L++) {
			const uint32_t *p = buf;
			if (L || g->l0)
				p = list_at(g, (uint32_t)i, L);
			else
				buf[0] = (uint32_t)links0(g, i, buf + 1);
			rc = check_list(g, i, L, p, L ? g->M : g->M0, eb);
		}
	}
	free(buf);
	return rc;
}

void vec_hnsw_stats(const struct vec_hnsw *g, struct vec_hnsw_stats *s)
{
	uint64_t sum = 0;

	memset(s, 0, sizeof *s);
	s->M = g->M;
	s->M0 = g->M0;
	s->ef_construction = g->efc;
	s->seed = g->seed;
	s->entry_point = g->entry == NONE ? UINT64_MAX : g->entry;
	s->levels = g->count ? g->max_level + 1 : 0;
	for (uint64_t i = 0; i < g->count; i++) {
		unsigned lev = node_level(g, (uint32_t)i);
		uint32_t d = degree0(g, i);
		for (unsigned L = 0; L <= lev && L < 32; L++)
			s->nodes_per_level[L]++;
		sum += d;
		if (d > s->max_degree0)
			s->max_degree0 = d;
	}
	s->avg_degree0 = g->count ? (double)sum / (double)g->count : 0;
	/* As the file holds it: level 0 compact (HNSL), then HNSU. */
	s->graph_bytes = hnsl_bytes(g->count, sum, link_bits(g->count)) +
			 (g->count + 1) * 4 +
			 (g->count ? (uint64_t)g->uoff[g->count] : 0) * rowu(g) * 4;
	s->code_bits = g->sq.bits;
	s->extra_bytes = codes_bytes(g->count, g->sq.stride) +
			 (2 * g->dim + (g->metric == VEC_METRIC_L2 ? g->count : 0)) * 4;
}
