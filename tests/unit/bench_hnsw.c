/*
 * bench_hnsw.c - build and search benchmark of the HNSW graph on real data.
 *
 * Not part of the unit runner: the whole file is empty unless compiled with
 * -DVEC_BENCH_MAIN, e.g.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -DVEC_BENCH_MAIN -Ilib \
 *      tests/unit/bench_hnsw.c lib/libvec.a -lz -lm -pthread -o bench_hnsw
 *   ./bench_hnsw base.fvecs query.fvecs gt_dist.fvecs [-m l2|ip|cos]
 *                [-t BUILD_THREADS] [-M M] [-c EFC] [-e EF,EF,...] [-1]
 *                [-g GRAPH] [-r REPEAT]
 *
 * Prints the build time, the bytes of the graph's sections, then for each
 * ef the tie-aware recall@10 (a result counts when its true distance is at
 * most the true 10th's, from gt_dist.fvecs: squared l2 or 1 - cos) and the
 * queries per second on one thread (its CPU time; the best of REPEAT
 * runs, default 3).  -1 searches one query per call (the
 * streaming case); otherwise all queries go in one call.  -g keeps the
 * graph's sections in the file GRAPH: written after a build, and opened
 * in place instead of building when it exists (search-only runs).
 */
#ifdef VEC_BENCH_MAIN
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hnsw.h"
#include "bench_common.h"

static double clock_s(clockid_t id)
{
	struct timespec t;
	clock_gettime(id, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Wall time (builds); searches run on one thread and are timed by its CPU
 * time, which other load on a shared machine disturbs far less. */
static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static double cpu_now(void)
{
	return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

/* True distance in gt_dist units: squared l2, or 1 - <a, b>. */
static double true_dist(const float *a, const float *b, size_t d, int metric)
{
	double s = 0;
	for (size_t i = 0; i < d; i++)
		s += metric == VEC_METRIC_L2 ? ((double)a[i] - b[i]) * ((double)a[i] - b[i])
					     : (double)a[i] * b[i];
	return metric == VEC_METRIC_L2 ? s : 1 - s;
}

int main(int argc, char **argv)
{
	size_t n, dim, nq, qdim, ng, gdim, k = 10;
	int metric = VEC_METRIC_L2, threads = 0, one = 0, reps = 3, opt;
	struct vec_hnsw_params p = { VEC_HNSW_DEFAULT_M, VEC_HNSW_DEFAULT_EFC,
				     VEC_HNSW_DEFAULT_SEED, 0 };
	char efs_default[] = "0,10,20,40,60,80,100,150,200,300";
	char *efs = efs_default;
	struct vec_errbuf eb;
	struct vec_hnsw *g;
	struct vec_file_section secs[VEC_HNSW_MAX_SECTIONS];
	size_t nsec;
	struct vec_hnsw_stats st;
	float *base, *q, *gtd;
	uint64_t *ids, bytes = 0;
	float *scores;
	double t0;

	const char *gpath = NULL;
	uint8_t *gbuf = NULL;
	struct vec_file vf;

	while ((opt = getopt(argc, argv, "m:t:M:c:e:1g:r:")) != -1) {
		switch (opt) {
		case 'm': metric = vec_metric_parse(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'M': p.M = (uint32_t)atoi(optarg); break;
		case 'c': p.ef_construction = (uint32_t)atoi(optarg); break;
		case 'e': efs = optarg; break;
		case '1': one = 1; break;
		case 'g': gpath = optarg; break;
		case 'r': reps = atoi(optarg); break;
		default: return 2;
		}
	}
	if (argc - optind != 3 || metric < 0) {
		fprintf(stderr, "usage: bench_hnsw base.fvecs query.fvecs gt_dist.fvecs [-m l2|ip|cos] [-t T] [-M M] [-c EFC] [-e EF,...] [-1]\n");
		return 2;
	}
	base = load_fvecs(argv[optind], &n, &dim);
	q = load_fvecs(argv[optind + 1], &nq, &qdim);
	gtd = load_fvecs(argv[optind + 2], &ng, &gdim);
	if (qdim != dim || ng < nq || gdim < k) {
		fprintf(stderr, "mismatched inputs\n");
		return 1;
	}
	if (metric == VEC_METRIC_COS) {
		for (size_t i = 0; i < n; i++)
			vec_normalize(base + i * dim, dim);
		for (size_t i = 0; i < nq; i++)
			vec_normalize(q + i * dim, dim);
	}
	struct vec_vectors v = { base, NULL, dim, metric, n };
	FILE *gf = gpath ? fopen(gpath, "rb") : NULL;
	if (gf) {
		long len;
		fseek(gf, 0, SEEK_END);
		len = ftell(gf);
		fseek(gf, 0, SEEK_SET);
		gbuf = malloc((size_t)len);
		if (!gbuf || fread(gbuf, 1, (size_t)len, gf) != (size_t)len) {
			fprintf(stderr, "%s: read error\n", gpath);
			return 1;
		}
		fclose(gf);
		t0 = now();
		if (vec_file_parse(&vf, gpath, gbuf, (size_t)len, &eb) ||
		    vec_hnsw_open(&g, &vf, &v, &eb)) {
			fprintf(stderr, "%s\n", eb.msg);
			return 1;
		}
		printf("opened %s in %.3f ms\n", gpath, (now() - t0) * 1e3);
	} else {
		if (vec_hnsw_create(&g, &p, dim, metric, &eb)) {
			fprintf(stderr, "%s\n", eb.msg);
			return 1;
		}
		t0 = now();
		if (vec_hnsw_insert(g, &v, threads, &eb)) {
			fprintf(stderr, "%s\n", eb.msg);
			return 1;
		}
		printf("build %.2f s (%d threads), kernels %s\n", now() - t0,
		       threads > 0 ? threads : vec_ncpu(), vec_kernels()->name);
	}
	vec_hnsw_sections(g, secs, &nsec, &eb);
	if (gpath && !gbuf &&
	    vec_file_write(gpath, VEC_TYPE_HNSW, (uint32_t)metric, (uint32_t)dim,
			   n, secs, nsec, &eb))
		fprintf(stderr, "%s\n", eb.msg);
	for (size_t i = 0; i < nsec; i++)
		bytes += secs[i].length;
	vec_hnsw_stats(g, &st);
	printf("graph %llu bytes + codes %llu bytes (sections %llu; vectors %llu), levels %u, avg degree0 %.1f\n",
	       (unsigned long long)st.graph_bytes, (unsigned long long)st.extra_bytes,
	       (unsigned long long)bytes, (unsigned long long)n * dim * 4, st.levels,
	       st.avg_degree0);
	ids = malloc(nq * k * sizeof *ids);
	scores = malloc(nq * k * sizeof *scores);
	for (char *s = strtok(efs, ","); s; s = strtok(NULL, ",")) {
		size_t ef = (size_t)atoi(s), hit = 0;
		double best = 1e30;
		for (int rep = 0; rep < reps; rep++) {
			double t1 = cpu_now();
			if (one) {
				for (size_t i = 0; i < nq; i++)
					vec_hnsw_search(g, &v, q + i * dim, 1, k, ef, 1,
							ids + i * k, scores + i * k, &eb);
			} else {
				vec_hnsw_search(g, &v, q, nq, k, ef, 1, ids, scores, &eb);
			/* (threads = 1: the search runs on this thread) */
			}
			t1 = cpu_now() - t1;
			best = t1 < best ? t1 : best;
		}
		for (size_t i = 0; i < nq; i++) {
			double th = gtd[i * gdim + k - 1];
			for (size_t j = 0; j < k; j++) {
				uint64_t id = ids[i * k + j];
				if (id == UINT64_MAX)
					continue;
				if (true_dist(q + i * dim, base + id * dim, dim, metric) <=
				    th * (1 + 1e-5) + 1e-6)
					hit++;
			}
		}
		printf("ef %4zu recall %.4f qps %.0f\n", ef ? ef : vec_hnsw_default_ef(g, k),
		       (double)hit / (double)(nq * k), (double)nq / best);
		fflush(stdout);
	}
	vec_hnsw_free(g);
	free(base);
	free(q);
	free(gtd);
	free(ids);
	free(scores);
	free(gbuf);
	return 0;
}
#endif
