/*
 * pool.c - run a batch of independent tasks on a few threads.
 *
 * No long-lived pool: threads are started per call and joined before it
 * returns.  A search or build step lasts milliseconds to minutes, so the
 * ~20 us of thread start-up is noise, and nothing outlives the call (no
 * global state, nothing to shut down, fork-safe).  Tasks are handed out one
 * at a time through an atomic counter, so uneven tasks still balance.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

struct pool {
	void (*fn)(void *ctx, size_t task, int worker);
	void *ctx;
	size_t ntasks;
	atomic_size_t next;
};

struct worker {
	struct pool *pool;
	int id;
	pthread_t thread;
};

/* Take tasks until none is left: the body of every worker. */
static void drain(struct pool *p, int worker)
{
	for (;;) {
		size_t t = atomic_fetch_add_explicit(&p->next, 1,
						     memory_order_relaxed);
		if (t >= p->ntasks)
			break;
		p->fn(p->ctx, t, worker);
	}
}

/* pthread entry point. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;

	drain(w->pool, w->id);
	return NULL;
}

/*
 * Worker ids are 0 (the calling thread) .. nthreads - 1, where nthreads is
 * min(threads or vec_ncpu(), ntasks): callers size per-worker scratch by
 * the same rule.
 */
int vec_pool_run(int threads, size_t ntasks,
		 void (*fn)(void *ctx, size_t task, int worker), void *ctx)
{
	struct pool p = { fn, ctx, ntasks, 0 };
	struct worker *w;
	int started = 0, rc = VEC_OK;

	if (threads <= 0)
		threads = vec_ncpu();
	if ((size_t)threads > ntasks)
		threads = (int)ntasks;
	if (threads <= 1) {
		drain(&p, 0);
		return VEC_OK;
	}
	w = calloc((size_t)threads - 1, sizeof *w);
	if (!w) {
		drain(&p, 0);
		return VEC_E_NOMEM;
	}
	for (int i = 0; i < threads - 1; i++) {
		int e;
		w[i].pool = &p;
		w[i].id = i + 1;
		e = pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
		if (e) {
			rc = e == EAGAIN || e == ENOMEM ? VEC_E_NOMEM
							: VEC_E_IO;
			break;
		}
		started++;
	}
	drain(&p, 0);
	for (int i = 0; i < started; i++)
		pthread_join(w[i].thread, NULL);
	free(w);
	return rc;
}
