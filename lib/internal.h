/*
 * internal.h - shared inside lib/ only; commands include vec.h alone.
 */
#ifndef VEC_INTERNAL_H
#define VEC_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "vec.h"

/*
 * Record a failure in eb (may be NULL) and return code, so that callers
 * write `return vec_err(eb, VEC_E_FORMAT, "%s: vector %llu: ...", ...);`.
 * __LINE__ is kept so that a corruption report points at the check that
 * fired (SQLite's CORRUPT_BKPT habit).
 */
int vec_err_at(struct vec_errbuf *eb, int code, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define vec_err(eb, code, ...) vec_err_at((eb), (code), __LINE__, __VA_ARGS__)
/* Every corruption exit goes through this one macro. */
#define VEC_CORRUPT(eb, ...) vec_err_at((eb), VEC_E_CORRUPT, __LINE__, __VA_ARGS__)

/*
 * Whether a batch of nq queries should map a whole mapped index of `bytes`
 * bytes before it searches (vec_index_search; flat, hnsw, and coded ivf
 * types that re-rank on the kept vectors): when the batch will touch
 * most of its pages anyway, one madvise(MADV_POPULATE_READ) maps them for
 * a fraction of what a page fault each costs.  A query is taken to touch
 * VEC_POPULATE_PAGES pages; larger indexes than VEC_POPULATE_MAX are left
 * to fault in what they read (they may not even be in memory).
 */
#define VEC_POPULATE_PAGES 64
#define VEC_POPULATE_MAX ((uint64_t)1 << 30)
static inline int vec_populate_worth(uint64_t nq, uint64_t bytes)
{
	uint64_t pages = (bytes + 4095) / 4096;

	return bytes <= VEC_POPULATE_MAX && nq >= pages / VEC_POPULATE_PAGES;
}

/* Little-endian access through memcpy: safe at any alignment, any host. */
static inline uint16_t vec_get_le16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | (b[1] << 8));
}
static inline uint32_t vec_get_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
	       ((uint32_t)b[3] << 24);
}
static inline uint64_t vec_get_le64(const void *p)
{
	return (uint64_t)vec_get_le32(p) |
	       ((uint64_t)vec_get_le32((const uint8_t *)p + 4) << 32);
}
static inline void vec_put_le16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}
static inline void vec_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}
static inline void vec_put_le64(void *p, uint64_t v)
{
	vec_put_le32(p, (uint32_t)v);
	vec_put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}
static inline float vec_get_lef32(const void *p)
{
	uint32_t u = vec_get_le32(p);
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* Host byte order test: the index stores floats little-endian and maps them
 * in place, which this build supports on little-endian hosts only. */
static inline int vec_host_is_le(void)
{
	const uint16_t one = 1;
	uint8_t b;
	memcpy(&b, &one, 1);
	return b == 1;
}

/* ---- work pool (pool.c) ---- */

/*
 * Run fn(ctx, task, worker) for task in [0, ntasks) on up to `threads`
 * threads (<= 0: all cores); tasks are handed out dynamically.  Returns 0,
 * or VEC_E_NOMEM / VEC_E_IO if threads could not be started (then the
 * remaining tasks run on the calling thread, so the work is still done).
 */
int vec_pool_run(int threads, size_t ntasks,
		 void (*fn)(void *ctx, size_t task, int worker), void *ctx);

/* ---- ids (ids.c) ---- */

/* A 64-bit mixing bijection (SplitMix64's finaliser). */
uint64_t vec_id_mix(uint64_t id);

/* A set of ids: open addressing, UINT64_MAX marks a free slot (no stored
 * id may be UINT64_MAX).  Zero-initialised is empty. */
struct vec_idset {
	uint64_t *slot;
	uint64_t cap, len;
};
int vec_idset_reserve(struct vec_idset *s, uint64_t n); /* room for n more */
int vec_idset_has(const struct vec_idset *s, uint64_t id);
/* 0 inserted, 1 already there, VEC_E_NOMEM. */
int vec_idset_insert(struct vec_idset *s, uint64_t id);
void vec_idset_free(struct vec_idset *s);

/* ---- checked size arithmetic ---- */
static inline int vec_mul_overflows(uint64_t a, uint64_t b, uint64_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

#endif
