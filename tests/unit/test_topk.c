/* test_topk.c - the bounded heap against a full sort. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "unit.h"
#include "vec.h"

struct pair {
	float s;
	uint64_t id;
};

/* Reference order: score, then id. */
static int pair_cmp(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;

	if (x->s != y->s)
		return x->s < y->s ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
/* xorshift64: a fixed sequence, so that failures reproduce. */
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * Random streams (with few distinct scores, so ties are common, and ids
 * arriving in random order) against qsort of the whole stream.
 */
static void test_topk_random(void)
{
	static const size_t ks[] = { 1, 2, 3, 10, 64, 100 };
	static const size_t ns[] = { 0, 1, 5, 99, 100, 101, 1000 };

	for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
		for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
			for (int distinct = 0; distinct < 2; distinct++) {
				size_t k = ks[ki], n = ns[ni];
				struct vec_topk h;
				struct pair *all = malloc((n + 1) * sizeof *all);
				uint64_t *ids = malloc(k * sizeof *ids);
				float *sc = malloc(k * sizeof *sc);
				size_t got, want = n < k ? n : k;

				EXPECT(vec_topk_init(&h, k) == VEC_OK);
				for (size_t i = 0; i < n; i++) {
					all[i].id = (rng() % 1000000) * 1000 + i;
					all[i].s = distinct ? (float)(rng() % 100000) / 7
							    : (float)(rng() % 5);
					vec_topk_push(&h, all[i].id, all[i].s);
				}
				qsort(all, n, sizeof *all, pair_cmp);
				got = vec_topk_extract(&h, ids, sc);
				EXPECT(got == want);
				for (size_t i = 0; i < want; i++)
					EXPECT_MSG(ids[i] == all[i].id && sc[i] == all[i].s,
						   "k=%zu n=%zu rank %zu", k, n, i);
				for (size_t i = want; i < k; i++)
					EXPECT(ids[i] == UINT64_MAX && sc[i] == INFINITY);
				EXPECT(h.n == 0);
				vec_topk_free(&h);
				free(all);
				free(ids);
				free(sc);
			}
		}
	}
}

/* Equal scores: the smaller id wins, whatever the arrival order. */
static void test_topk_ties(void)
{
	struct vec_topk h;
	uint64_t ids[3];
	float sc[3];

	EXPECT(vec_topk_init(&h, 3) == VEC_OK);
	for (uint64_t id = 10; id-- > 0;)
		vec_topk_push(&h, id, 1.0f);
	EXPECT(vec_topk_extract(&h, ids, sc) == 3);
	EXPECT(ids[0] == 0 && ids[1] == 1 && ids[2] == 2);
	for (uint64_t id = 0; id < 10; id++)
		vec_topk_push(&h, 9 - id, id == 5 ? 0.5f : 1.0f);
	EXPECT(vec_topk_extract(&h, ids, sc) == 3);
	EXPECT(ids[0] == 4 && sc[0] == 0.5f && ids[1] == 0 && ids[2] == 1);
	vec_topk_free(&h);
}

/* worst() is +inf until full, then the root; NaN is never kept; reset. */
static void test_topk_worst(void)
{
	struct vec_topk h;
	uint64_t ids[2];
	float sc[2];

	EXPECT(vec_topk_init(&h, 2) == VEC_OK);
	EXPECT(vec_topk_worst(&h) == INFINITY);
	vec_topk_push(&h, 1, 5.0f);
	EXPECT(vec_topk_worst(&h) == INFINITY);
	vec_topk_push(&h, 2, NAN);
	EXPECT(h.n == 1);
	vec_topk_push(&h, 3, 7.0f);
	EXPECT(vec_topk_worst(&h) == 7.0f);
	vec_topk_push(&h, 4, 6.0f);
	EXPECT(vec_topk_worst(&h) == 6.0f);
	vec_topk_push(&h, 5, 9.0f);
	EXPECT(vec_topk_worst(&h) == 6.0f);
	vec_topk_reset(&h);
	EXPECT(h.n == 0 && vec_topk_worst(&h) == INFINITY);
	vec_topk_push(&h, 8, -1.0f);
	EXPECT(vec_topk_extract(&h, ids, sc) == 1);
	EXPECT(ids[0] == 8 && sc[0] == -1.0f);
	EXPECT(ids[1] == UINT64_MAX && sc[1] == INFINITY);
	vec_topk_free(&h);

	/* k = 0 keeps nothing. */
	EXPECT(vec_topk_init(&h, 0) == VEC_OK);
	vec_topk_push(&h, 1, 1.0f);
	EXPECT(h.n == 0 && vec_topk_extract(&h, ids, sc) == 0);
	vec_topk_free(&h);
}

void suite_topk(void)
{
	RUN(test_topk_random);
	RUN(test_topk_ties);
	RUN(test_topk_worst);
}
