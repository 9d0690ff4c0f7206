/*
 * bench_common.h - shared by the standalone benchmarks (bench_*.c): load a
 * whole vector file through the library's own readers (any format the
 * commands read, gzip included).  Benchmarks may exit on error; the
 * library may not.
 */
#ifndef VEC_BENCH_COMMON_H
#define VEC_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include "vec.h"

static float *load_fvecs(const char *path, size_t *n, size_t *dim)
{
	struct vec_reader_opts ro = VEC_READER_OPTS_INIT;
	struct vec_errbuf eb = { 0 };
	struct vec_reader *r;
	float *v = NULL;
	size_t cap = 0, cnt = 0, got;

	if (vec_reader_open(&r, path, &ro, &eb)) {
		fprintf(stderr, "%s\n", eb.msg);
		exit(1);
	}
	*dim = vec_reader_dim(r);
	for (;;) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 1024;
			v = realloc(v, cap * *dim * sizeof *v);
			if (!v) {
				fprintf(stderr, "out of memory\n");
				exit(1);
			}
		}
		if (vec_reader_read(r, v + cnt * *dim, cap - cnt, &got, NULL, &eb)) {
			fprintf(stderr, "%s\n", eb.msg);
			exit(1);
		}
		if (!got)
			break;
		cnt += got;
	}
	vec_reader_close(r);
	*n = cnt;
	return v;
}

#endif
