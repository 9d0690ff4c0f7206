/*
 * topk.c - the bounded heap that keeps the k best (smallest-score) results.
 *
 * A max-heap on (score, id): the root is the worst entry kept, so a new
 * candidate is compared with one value and, if better, replaces the root.
 * Ordering ties by id makes every result independent of the order in which
 * candidates arrive (threads, blocking), which the tests rely on.
 */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

/* Is (sa, ia) worse than (sb, ib)?  Larger score, then larger id. */
static inline int worse(float sa, uint64_t ia, float sb, uint64_t ib)
{
	return sa > sb || (sa == sb && ia > ib);
}

/* Room for k entries up front: pushes never allocate. */
int vec_topk_init(struct vec_topk *h, size_t k)
{
	h->k = k;
	h->n = 0;
	h->score = NULL;
	h->id = NULL;
	if (k == 0)
		return VEC_OK;
	if (k > SIZE_MAX / sizeof *h->id)
		return VEC_E_NOMEM;
	h->score = malloc(k * sizeof *h->score);
	h->id = malloc(k * sizeof *h->id);
	if (!h->score || !h->id) {
		vec_topk_free(h);
		return VEC_E_NOMEM;
	}
	return VEC_OK;
}

/* Release the arrays; the struct may be initialised again. */
void vec_topk_free(struct vec_topk *h)
{
	free(h->score);
	free(h->id);
	h->score = NULL;
	h->id = NULL;
	h->k = h->n = 0;
}

/* Empty the heap but keep its arrays, for the next query. */
void vec_topk_reset(struct vec_topk *h)
{
	h->n = 0;
}

/* Move the entry at i towards the leaves until the heap order holds. */
static void sift_down(float *s, uint64_t *id, size_t n, size_t i)
{
	float sv = s[i];
	uint64_t iv = id[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && worse(s[c + 1], id[c + 1], s[c], id[c]))
			c++;
		if (!worse(s[c], id[c], sv, iv))
			break;
		s[i] = s[c];
		id[i] = id[c];
		i = c;
	}
	s[i] = sv;
	id[i] = iv;
}

/*
 * NaN scores are never kept: they compare false with everything, and one in
 * the heap would make the ordering meaningless.
 */
void vec_topk_push(struct vec_topk *h, uint64_t id, float score)
{
	if (isnan(score) || h->k == 0)
		return;
	if (h->n < h->k) {
		size_t i = h->n++;
		while (i > 0) {
			size_t p = (i - 1) / 2;
			if (!worse(score, id, h->score[p], h->id[p]))
				break;
			h->score[i] = h->score[p];
			h->id[i] = h->id[p];
			i = p;
		}
		h->score[i] = score;
		h->id[i] = id;
		return;
	}
	if (!worse(h->score[0], h->id[0], score, id))
		return;
	h->score[0] = score;
	h->id[0] = id;
	sift_down(h->score, h->id, h->n, 0);
}

/* The bar a candidate must beat: the fast reject of the search kernels. */
float vec_topk_worst(const struct vec_topk *h)
{
	if (h->k == 0)
		return -INFINITY; /* nothing can ever be kept */
	return h->n < h->k ? INFINITY : h->score[0];
}

/*
 * Heap sort in place (repeatedly move the worst to the end), then copy out:
 * O(k log k) and no allocation.
 */
size_t vec_topk_extract(struct vec_topk *h, uint64_t *ids, float *scores)
{
	size_t n = h->n;

	for (size_t end = n; end > 1; end--) {
		float s = h->score[0];
		uint64_t i = h->id[0];
		h->score[0] = h->score[end - 1];
		h->id[0] = h->id[end - 1];
		h->score[end - 1] = s;
		h->id[end - 1] = i;
		sift_down(h->score, h->id, end - 1, 0);
	}
	for (size_t i = 0; i < n; i++) {
		ids[i] = h->id[i];
		scores[i] = h->score[i];
	}
	for (size_t i = n; i < h->k; i++) {
		ids[i] = UINT64_MAX;
		scores[i] = INFINITY;
	}
	h->n = 0;
	return n;
}
