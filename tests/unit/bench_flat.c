/*
 * bench_flat.c - microbenchmark of vec_flat_search on real data.
 *
 * Not part of the unit runner: the whole file is empty unless compiled with
 * -DVEC_BENCH_MAIN (the Makefile links every .c file of tests/unit into the
 * runner), e.g.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -DVEC_BENCH_MAIN -Ilib \
 *      tests/unit/bench_flat.c lib/libvec.a -lz -lm -pthread -o bench_flat
 *   ./bench_flat base.fvecs query.fvecs [-n NQ] [-k K] [-t THREADS]
 *                [-m l2|ip|cos] [-1] [-r REPEAT]
 *
 * Batched mode searches NQ queries in one call; -1 searches them one call
 * per query (the streaming case).  VEC_FLAT_BF16=0 in the environment
 * turns the bf16 prefilter off (the fp32 kernels alone), VEC_SIMD=avx2 the
 * AVX-512 kernels.  Prints queries/s, GFLOP/s (2 n dim
 * flops per query-row pair) and, for -1, the base bytes scanned per second.
 */
#ifdef VEC_BENCH_MAIN
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vec.h"
#include "bench_common.h"

/* Wall-clock seconds, monotonic. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Load, search `repeat` times, report the best run. */
int main(int argc, char **argv)
{
	size_t n, dim, nqf, qdim, nq = 1000, k = 10;
	int threads = 1, metric = VEC_METRIC_L2, single = 0, repeat = 3, c;
	float *base, *q, *norms = NULL, *sc;
	uint64_t *ids;
	double best = 1e30;

	while ((c = getopt(argc, argv, "n:k:t:m:1r:")) != -1) {
		switch (c) {
		case 'n': nq = strtoul(optarg, NULL, 10); break;
		case 'k': k = strtoul(optarg, NULL, 10); break;
		case 't': threads = atoi(optarg); break;
		case 'm': metric = vec_metric_parse(optarg); break;
		case '1': single = 1; break;
		case 'r': repeat = atoi(optarg); break;
		default: return 2;
		}
	}
	if (argc - optind != 2 || metric < 0 || k == 0) {
		fprintf(stderr, "usage: bench_flat base.fvecs query.fvecs "
				"[-n NQ] [-k K] [-t THREADS] [-m l2|ip|cos] [-1] [-r N]\n");
		return 2;
	}
	base = load_fvecs(argv[optind], &n, &dim);
	q = load_fvecs(argv[optind + 1], &nqf, &qdim);
	if (qdim != dim) {
		fprintf(stderr, "dimension mismatch\n");
		return 1;
	}
	if (nq > nqf) {
		/* repeat the queries to reach nq */
		q = realloc(q, nq * dim * sizeof *q);
		for (size_t i = nqf; i < nq; i++)
			memcpy(q + i * dim, q + (i % nqf) * dim, dim * sizeof *q);
	}
	if (metric == VEC_METRIC_COS) {
		for (size_t i = 0; i < n; i++)
			vec_normalize(base + i * dim, dim);
		for (size_t i = 0; i < nq; i++)
			vec_normalize(q + i * dim, dim);
	}
	if (metric == VEC_METRIC_L2) {
		norms = malloc(n * sizeof *norms);
		for (size_t i = 0; i < n; i++)
			norms[i] = vec_dot(base + i * dim, base + i * dim, dim);
	}
	ids = malloc(nq * k * sizeof *ids);
	sc = malloc(nq * k * sizeof *sc);
	for (int r = 0; r < repeat; r++) {
		double t0 = now(), t;
		if (single) {
			for (size_t i = 0; i < nq; i++)
				vec_flat_search(base, norms, n, dim, metric,
						q + i * dim, 1, k, threads,
						ids + i * k, sc + i * k);
		} else {
			vec_flat_search(base, norms, n, dim, metric, q, nq, k,
					threads, ids, sc);
		}
		t = now() - t0;
		if (t < best)
			best = t;
	}
	printf("%s n=%zu dim=%zu nq=%zu k=%zu threads=%d %s simd=%s: "
	       "%.1f ms, %.0f queries/s, %.1f GFLOP/s",
	       vec_metric_name(metric), n, dim, nq, k, threads,
	       single ? "one-by-one" : "batched", vec_kernels()->name,
	       best * 1e3, nq / best, 2.0 * n * dim * nq / best * 1e-9);
	if (single)
		printf(", %.1f GB/s scanned", 4.0 * n * dim * nq / best * 1e-9);
	printf("\nfirst query: id %llu score %g\n", (unsigned long long)ids[0],
	       sc[0]);
	free(base);
	free(q);
	free(norms);
	free(ids);
	free(sc);
	return 0;
}
#endif
