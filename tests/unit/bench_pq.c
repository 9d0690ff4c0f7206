/*
 * bench_pq.c - micro-benchmark of the product quantiser's scans on random
 * codes (no data files needed).
 *
 * Not part of the unit runner: the whole file is empty unless compiled with
 * -DVEC_BENCH_MAIN, e.g.
 *
 *   make -j2 && cc -O2 -std=c11 -D_GNU_SOURCE -DVEC_BENCH_MAIN -Ilib \
 *      tests/unit/bench_pq.c lib/libvec.a -lz -lm -pthread -o bench_pq
 *   ./bench_pq [-n N,N,...] [-m M,M,...] [-r RUNS] [-s table|scan|all]
 *
 * First (-s table or all), for every SIMD level this CPU runs, the per-query
 * parts in ns per call, median of RUNS runs: vec_pq_table (l2 and ip) and,
 * for 4-bit shapes, vec_pq4_lut, then an ivf list's whole l2 step the old
 * way (q - c, vec_pq_table, vec_pq4_lut: "steps") and in one
 * (vec_pq4_lut_l2), on the shapes of the data sets we use:
 * (m, ksub, dsub) = (50, 16, 2) glove-100 4-bit, (25, 256, 4) glove-100
 * 8-bit, (196, 16, 4) and (98, 256, 8) fashion-mnist.  The codebook is
 * transposed as in an ivf index (pq.cent_t).
 *
 * Then (-s scan or all), for every SIMD level this CPU runs, every list size n (default
 * 500,2000,8000 vectors: what one IVF probe scans) and every m (default
 * 16,32,50,64,128 sub-quantisers):
 *  - the 4-bit fast scan (vec_pq4_scan) in GB/s of code bytes scanned,
 *    n x ceil(m / 2) bytes per call, one table reused (in L1, as in a
 *    probe), the median of RUNS runs (default 7) of ~20 ms each;
 *  - vec_pq4_below over the same sums, 5 % of them below the threshold
 *    (a selective probe), in G sums/s;
 *  - the 8-bit scan (vec_pq_scan8) in M codes/s, with vec_pq_adc (the
 *    reference loop) beside it.
 * One thread.  Keep the machine otherwise quiet.
 */
#ifdef VEC_BENCH_MAIN
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pq.h"

static double now_s(void)
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

static int cmp_u16(const void *a, const void *b)
{
	uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
	return x < y ? -1 : x > y;
}

static size_t parse_list(const char *s, size_t *out, size_t max)
{
	size_t k = 0;
	while (*s && k < max) {
		char *end;
		out[k++] = strtoul(s, &end, 10);
		s = *end == ',' ? end + 1 : end;
		if (end == s && *s)
			break;
	}
	return k;
}

static uint64_t rs = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

#define MAXRUNS 31
static volatile uint32_t sink;

/* Median seconds per call of one of the scans. */
enum what { SCAN4, BELOW, SCAN8, ADC8, TABLE_L2, TABLE_IP, LUT, LUT_STEPS,
	    LUT_L2 };
struct job {
	enum what what;
	const float *q, *c;
	float *tf, *qres;
	const uint8_t *lut, *blocks, *codes;
	const float *t;
	struct vec_pq *pq;
	size_t m, n, nblocks;
	uint16_t *sums;
	uint16_t thr;
	uint32_t *pos;
	float *out;
};

static void once(const struct job *j)
{
	switch (j->what) {
	case SCAN4:
		vec_pq4_scan(j->lut, j->m, j->blocks, j->nblocks, j->sums);
		sink += j->sums[0];
		break;
	case BELOW:
		sink += (uint32_t)vec_pq4_below(j->sums, j->n, j->thr, j->pos);
		break;
	case SCAN8:
		vec_pq_scan8(j->t, j->m, j->codes, j->n, j->out);
		sink += (uint32_t)j->out[0];
		break;
	case ADC8:
		vec_pq_adc(j->pq, j->t, j->codes, j->n, j->out);
		sink += (uint32_t)j->out[0];
		break;
	case TABLE_L2:
	case TABLE_IP:
		vec_pq_table(j->pq, j->q, j->what == TABLE_L2, j->tf);
		sink += (uint32_t)j->tf[0];
		break;
	case LUT: {
		float delta, bias;
		vec_pq4_lut(j->t, j->m, (uint8_t *)j->lut, &delta, &bias);
		sink += j->lut[0];
		break;
	}
	case LUT_STEPS: { /* what vec_pq4_lut_l2 replaces */
		float delta, bias;
		for (size_t d = 0; d < j->pq->dim; d++)
			j->qres[d] = j->q[d] - j->c[d];
		vec_pq_table(j->pq, j->qres, 1, j->tf);
		vec_pq4_lut(j->tf, j->m, (uint8_t *)j->lut, &delta, &bias);
		sink += j->lut[0];
		break;
	}
	case LUT_L2: {
		float delta, bias;
		vec_pq4_lut_l2(j->pq, j->q, j->c, j->qres, j->tf,
			       (uint8_t *)j->lut, &delta, &bias);
		sink += j->lut[0];
		break;
	}
	}
}

static double per_call(const struct job *j, int runs)
{
	double r[MAXRUNS];
	size_t reps = 1;

	/* Calibrate: enough calls for ~20 ms. */
	for (;;) {
		double t0 = now_s();
		for (size_t i = 0; i < reps; i++)
			once(j);
		if (now_s() - t0 > 0.02 || reps > (1u << 26))
			break;
		reps *= 2;
	}
	for (int k = 0; k < runs; k++) {
		double t0 = now_s();
		for (size_t i = 0; i < reps; i++)
			once(j);
		r[k] = (now_s() - t0) / (double)reps;
	}
	qsort(r, (size_t)runs, sizeof *r, cmp_double);
	return r[runs / 2];
}

/* ns per call of the table (l2, ip) and the 4-bit LUT, four shapes. */
static void bench_tables(int runs)
{
	static const size_t shapes[][3] = {
		{ 50, 16, 2 }, { 25, 256, 4 }, { 196, 16, 4 }, { 98, 256, 8 }
	};

	printf("%-7s %4s %4s %4s %10s %10s %10s %10s %10s\n", "level", "m",
	       "ksub", "dsub", "table l2", "table ip", "lut4", "steps", "lut4 l2");
	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
		if (!vec_kernels_for(level))
			continue;
		vec_simd_select(level);
		for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
			size_t m = shapes[s][0], ksub = shapes[s][1], dsub = shapes[s][2];
			size_t dim = m * dsub;
			float *cent = malloc(m * ksub * dsub * sizeof *cent);
			float *cent_t = malloc(m * ksub * dsub * sizeof *cent_t);
			float *q = malloc(dim * sizeof *q), *c = malloc(dim * sizeof *c);
			float *qres = malloc(dim * sizeof *qres);
			float *t = malloc(m * ksub * sizeof *t);
			uint8_t *lut = malloc(vec_pq4_lut_size(m));
			struct vec_pq pq = { dim, m, dsub, ksub == 16 ? 4 : 8, ksub, cent, NULL };
			struct job j = { 0 };
			double l2, ip, lu = 0, st = 0, fu = 0;

			for (size_t i = 0; i < m * ksub * dsub; i++)
				cent[i] = (float)(rnd() % 2000) / 1000.0f - 1.0f;
			for (size_t i = 0; i < dim; i++) {
				q[i] = (float)(rnd() % 2000) / 1000.0f - 1.0f;
				c[i] = (float)(rnd() % 2000) / 4000.0f - 0.25f;
			}
			vec_pq_transpose(&pq, cent_t);
			pq.cent_t = cent_t;
			j.pq = &pq;
			j.q = q;
			j.c = c;
			j.qres = qres;
			j.tf = t;
			j.m = m;
			j.what = TABLE_L2;
			l2 = per_call(&j, runs);
			j.what = TABLE_IP;
			ip = per_call(&j, runs);
			if (ksub == 16) {
				vec_pq_table(&pq, q, 1, t);
				j.t = t;
				j.lut = lut;
				j.what = LUT;
				lu = per_call(&j, runs);
				j.what = LUT_STEPS;
				st = per_call(&j, runs);
				j.what = LUT_L2;
				fu = per_call(&j, runs);
			}
			printf("%-7s %4zu %4zu %4zu %10.0f %10.0f ", vec_kernels()->name,
			       m, ksub, dsub, l2 * 1e9, ip * 1e9);
			if (ksub == 16)
				printf("%10.0f %10.0f %10.0f\n", lu * 1e9, st * 1e9,
				       fu * 1e9);
			else
				printf("%10s %10s %10s\n", "-", "-", "-");
			fflush(stdout);
			free(cent);
			free(cent_t);
			free(c);
			free(qres);
			free(q);
			free(t);
			free(lut);
		}
	}
}

int main(int argc, char **argv)
{
	const char *part = "all";
	size_t ns[16] = { 500, 2000, 8000 }, ms[16] = { 16, 32, 50, 64, 128 };
	size_t nn = 3, nm = 5;
	int runs = 7;

	for (int a = 1; a + 1 < argc; a += 2) {
		if (!strcmp(argv[a], "-n"))
			nn = parse_list(argv[a + 1], ns, 16);
		else if (!strcmp(argv[a], "-m"))
			nm = parse_list(argv[a + 1], ms, 16);
		else if (!strcmp(argv[a], "-r"))
			runs = atoi(argv[a + 1]);
		else if (!strcmp(argv[a], "-s"))
			part = argv[a + 1];
	}
	if (runs < 1 || runs > MAXRUNS)
		runs = 7;
	if (strcmp(part, "scan"))
		bench_tables(runs);
	if (!strcmp(part, "table"))
		return 0;

	printf("%-7s %6s %4s %10s %10s %12s %12s\n", "level", "n", "m",
	       "scan4 GB/s", "below G/s", "scan8 Mc/s", "adc8 Mc/s");
	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
		if (!vec_kernels_for(level))
			continue;
		vec_simd_select(level);
		for (size_t a = 0; a < nn; a++)
			for (size_t b = 0; b < nm; b++) {
				size_t n = ns[a], m = ms[b], cs4 = (m + 1) / 2;
				size_t nblocks = (n + 31) / 32;
				uint8_t *c4 = malloc(n * cs4), *c8 = malloc(n * m);
				uint8_t *blocks = malloc(vec_pq4_packed_size(n, m));
				uint8_t *lut = malloc(vec_pq4_lut_size(m));
				float *t4 = malloc(m * 16 * sizeof *t4);
				float *t8 = malloc(m * 256 * sizeof *t8);
				float *out = malloc(n * sizeof *out), delta, bias;
				uint16_t *sums = malloc(nblocks * 32 * sizeof *sums);
				uint32_t *pos = malloc(n * sizeof *pos);
				struct vec_pq pq = { m, m, 1, 8, 256, NULL, NULL };
				struct job j = {
					.what = SCAN4, .lut = lut, .blocks = blocks,
					.codes = c8, .t = t8, .pq = &pq, .m = m, .n = n,
					.nblocks = nblocks, .sums = sums, .pos = pos,
					.out = out
				};
				double s4, sb, s8, sa;

				for (size_t i = 0; i < n * cs4; i++)
					c4[i] = (uint8_t)rnd();
				if (m & 1)
					for (size_t i = 0; i < n; i++)
						c4[i * cs4 + cs4 - 1] &= 15;
				for (size_t i = 0; i < n * m; i++)
					c8[i] = (uint8_t)rnd();
				for (size_t i = 0; i < m * 16; i++)
					t4[i] = (float)(rnd() % 1000) / 10.0f;
				for (size_t i = 0; i < m * 256; i++)
					t8[i] = (float)(rnd() % 1000) / 10.0f;
				vec_pq4_pack(c4, n, m, blocks);
				vec_pq4_lut(t4, m, lut, &delta, &bias);

				s4 = per_call(&j, runs);
				/* A threshold 5 % of the sums are below. */
				memcpy(out, sums, n * sizeof *sums); /* n u16 fit n floats */
				qsort(out, n, sizeof *sums, cmp_u16);
				j.thr = ((uint16_t *)out)[n / 20];
				j.what = BELOW;
				sb = per_call(&j, runs);
				j.what = SCAN8;
				s8 = per_call(&j, runs);
				j.what = ADC8;
				sa = per_call(&j, runs);
				printf("%-7s %6zu %4zu %10.2f %10.2f %12.1f %12.1f\n",
				       vec_kernels()->name, n, m,
				       (double)(n * cs4) / s4 * 1e-9,
				       (double)n / sb * 1e-9, (double)n / s8 * 1e-6,
				       (double)n / sa * 1e-6);
				fflush(stdout);
				free(c4);
				free(c8);
				free(blocks);
				free(lut);
				free(t4);
				free(t8);
				free(out);
				free(sums);
				free(pos);
			}
	}
	return 0;
}
#endif
