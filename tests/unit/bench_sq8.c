/*
 * bench_sq8.c - throughput of the 8-bit quantiser's kernels: how many
 * bytes of codes a second each variant sums against one query.
 *
 * Not part of the unit runner: the whole file is empty unless compiled with
 * -DVEC_BENCH_MAIN, e.g.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -DVEC_BENCH_MAIN -Ilib \
 *      tests/unit/bench_sq8.c lib/libvec.a -lz -lm -pthread -o bench_sq8
 *   ./bench_sq8 [-n ROWS] [-r RUNS] [DIM...]
 *
 * For each dimension (default 100 and 784) it codes ROWS random rows
 * (default 100,000), then times, for every kernel variant this CPU runs,
 * one pass of the scanning kernel over all rows (a list scan), the
 * gathered kernel over all rows in a random order (the graph's access),
 * and vec_sq8_scores (scan plus the l2 estimates; the variant
 * vec_kernels() picks).  Each figure is the median of RUNS passes
 * (default 7), in GB/s of codes read (ROWS x stride bytes a pass).
 */
#ifdef VEC_BENCH_MAIN
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sq8.h"
#include "vec.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static volatile int32_t sink;

int main(int argc, char **argv)
{
	size_t rows = 100000, dims[16] = { 100, 784 }, ndims = 2;
	int runs = 7, c;

	while ((c = getopt(argc, argv, "n:r:")) != -1) {
		if (c == 'n')
			rows = strtoull(optarg, NULL, 10);
		else if (c == 'r')
			runs = atoi(optarg);
		else {
			fprintf(stderr, "usage: bench_sq8 [-n ROWS] [-r RUNS] [DIM...]\n");
			return 2;
		}
	}
	if (optind < argc)
		ndims = 0;
	for (; optind < argc && ndims < 16; optind++)
		dims[ndims++] = strtoull(argv[optind], NULL, 10);
	if (runs < 1 || runs > 99 || !rows) {
		fprintf(stderr, "bench_sq8: bad -n or -r\n");
		return 2;
	}

	printf("%-8s %6s %6s %8s %10s %10s\n", "kernel", "dim", "stride", "rows",
	       "GB/s", "ns/row");
	for (size_t t = 0; t < ndims; t++) {
		size_t dim = dims[t], stride = vec_sq8_stride(dim);
		float *x = malloc(rows * dim * sizeof *x), *lo = malloc(dim * 4);
		float *scale = malloc(dim * 4), *norms = malloc(rows * 4);
		float *out = malloc(rows * 4);
		uint8_t *codes = aligned_alloc(64, rows * stride);
		int8_t *cq = aligned_alloc(64, stride);
		int32_t *dots = malloc(rows * 4);
		uint32_t *ids = malloc(rows * 4);
		struct vec_sq8 q = vec_sq8_view(dim, lo, scale);
		double sec[99], gb = (double)rows * (double)stride * 1e-9;
		float st, qlo;

		if (!x || !lo || !scale || !norms || !out || !codes || !cq ||
		    !dots || !ids) {
			fprintf(stderr, "bench_sq8: out of memory\n");
			return 1;
		}
		for (size_t i = 0; i < rows * dim; i++)
			x[i] = (float)(rng() >> 40) * 0x1p-24f;
		vec_sq8_train(lo, scale, x, rows, dim);
		vec_sq8_encode(&q, x, rows, codes, norms);
		vec_sq8_query(&q, x, cq, &st, &qlo);
		for (size_t i = 0; i < rows; i++)
			ids[i] = (uint32_t)i;
		for (size_t i = rows - 1; i > 0; i--) { /* shuffle */
			size_t j = (size_t)(rng() % (i + 1));
			uint32_t s = ids[i];
			ids[i] = ids[j];
			ids[j] = s;
		}
		for (int l = 0; l < VEC_SQ8_NLEVELS; l++) {
			const struct vec_sq8_kernels *k = vec_sq8_kernels_for(l);
			char name[32];
			if (!k)
				continue;
			for (int g = 0; g < 2; g++) {
				k->scan(codes, stride, cq, rows, dots); /* warm */
				for (int r = 0; r < runs; r++) {
					double t0 = now();
					if (g)
						k->gather(codes, stride, cq, ids, rows, dots);
					else
						k->scan(codes, stride, cq, rows, dots);
					sec[r] = now() - t0;
					sink = dots[rows - 1];
				}
				snprintf(name, sizeof name, "%s%s", g ? "g-" : "", k->name);
				printf("%-8s %6zu %6zu %8zu %10.2f %10.2f\n", name, dim,
				       stride, rows, gb / median(sec, runs),
				       median(sec, runs) * 1e9 / (double)rows);
			}
		}
		for (int r = 0; r < runs; r++) {
			double t0 = now();
			vec_sq8_scores(&q, codes, rows, norms, cq, st, qlo, out);
			sec[r] = now() - t0;
		}
		printf("%-8s %6zu %6zu %8zu %10.2f %10.2f   (%s)\n", "scores", dim,
		       stride, rows, gb / median(sec, runs),
		       median(sec, runs) * 1e9 / (double)rows,
		       vec_sq8_kernels()->name);
		free(x);
		free(lo);
		free(scale);
		free(norms);
		free(out);
		free(codes);
		free(cq);
		free(dots);
		free(ids);
	}
	return 0;
}
#endif
