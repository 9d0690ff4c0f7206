/* test_distance.c - every kernel level against a double-precision reference. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "unit.h"
#include "vec.h"

static uint64_t rng_state = 0x2545f4914f6cdd1du;
/* xorshift64: a fixed sequence, so that failures reproduce. */
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Uniform in [-1, 1). */
static float frand(void)
{
	return (float)((double)(rng() >> 11) / (double)(1ull << 53) * 2 - 1);
}

static const size_t dims[] = { 1, 3, 7, 16, 17, 100, 128, 784, 960 };

/*
 * l2sq and dot of each level at each dimension, several offsets (so the
 * vectors are not all aligned), against sums in double.  The tolerance is
 * relative to the sum of absolute terms, which bounds float summation
 * error whatever the order.
 */
static void test_kernels_vs_reference(void)
{
	float *a = malloc(1000 * sizeof *a), *b = malloc(1000 * sizeof *b);
	int levels = 0;

	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
		const struct vec_kernels *kr = vec_kernels_for(level);
		if (!kr)
			continue;
		levels++;
		EXPECT(kr->level == level);
		for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
			for (size_t off = 0; off < 3; off++) {
				size_t d = dims[di];
				double l2 = 0, dot = 0, l2abs = 0, dotabs = 0;
				float fl2, fdot;
				for (size_t i = 0; i < d + off; i++) {
					a[i] = frand() * 3;
					b[i] = frand() * 3;
				}
				for (size_t i = off; i < d + off; i++) {
					double t = (double)a[i] - b[i];
					l2 += t * t;
					l2abs += t * t;
					dot += (double)a[i] * b[i];
					dotabs += fabs((double)a[i] * b[i]);
				}
				fl2 = kr->l2sq(a + off, b + off, d);
				fdot = kr->dot(a + off, b + off, d);
				EXPECT_MSG(fabs(fl2 - l2) <= 1e-5 * l2abs + 1e-30,
					   "%s d=%zu l2sq %g vs %g", kr->name, d,
					   fl2, l2);
				EXPECT_MSG(fabs(fdot - dot) <= 1e-5 * dotabs + 1e-30,
					   "%s d=%zu dot %g vs %g", kr->name, d,
					   fdot, dot);
				/* identical vectors: exactly zero */
				EXPECT(kr->l2sq(a + off, a + off, d) == 0);
			}
		}
	}
	EXPECT(levels >= 1);
	EXPECT(vec_kernels_for(VEC_SIMD_SCALAR) != NULL);
	EXPECT(vec_kernels_for(-1) == NULL && vec_kernels_for(99) == NULL);
	free(a);
	free(b);
}

/* Integer-valued data: every level must be exact (no rounding at all). */
static void test_kernels_exact_integers(void)
{
	float a[200], b[200];

	for (int i = 0; i < 200; i++) {
		a[i] = (float)(rng() % 17);
		b[i] = (float)(rng() % 17);
	}
	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
		const struct vec_kernels *kr = vec_kernels_for(level);
		if (!kr)
			continue;
		for (size_t d = 1; d <= 200; d += 13) {
			long l2 = 0, dot = 0;
			for (size_t i = 0; i < d; i++) {
				long t = (long)a[i] - (long)b[i];
				l2 += t * t;
				dot += (long)a[i] * (long)b[i];
			}
			EXPECT(kr->l2sq(a, b, d) == (float)l2);
			EXPECT(kr->dot(a, b, d) == (float)dot);
		}
	}
}

/* vec_simd_select, vec_kernels and the wrappers agree; fallbacks. */
static void test_simd_select(void)
{
	const struct vec_kernels *best = vec_kernels();
	float a[5] = { 1, 2, 3, 4, 5 }, b[5] = { 5, 4, 3, 2, 1 };

	EXPECT(best != NULL && best->name != NULL);
	EXPECT(vec_simd_select(-1) == VEC_E_USAGE);
	EXPECT(vec_simd_select(42) == VEC_E_USAGE);
	EXPECT(vec_kernels() == best);
	for (int level = VEC_SIMD_SCALAR; level <= VEC_SIMD_NEON; level++) {
		const struct vec_kernels *kr = vec_kernels_for(level);
		EXPECT(vec_simd_select(level) == VEC_OK);
		if (kr)
			EXPECT(vec_kernels() == kr);
		else
			EXPECT(vec_kernels()->level < level);
		EXPECT(vec_l2sq(a, b, 5) == 40.0f);
		EXPECT(vec_dot(a, b, 5) == 35.0f);
	}
	vec_simd_select(VEC_SIMD_SCALAR);
	EXPECT(vec_kernels()->level == VEC_SIMD_SCALAR);
	/* back to the best level this CPU has */
	vec_simd_select(VEC_SIMD_NEON);
	vec_simd_select(best->level);
	EXPECT(vec_kernels() == best);
	EXPECT(vec_ncpu() >= 1);
}

/* vec_normalize: unit length, returns the old norm, zero left alone. */
static void test_normalize(void)
{
	float x[3] = { 3, 0, 4 }, z[4] = { 0, 0, 0, 0 };
	float big[960];
	double s = 0;

	EXPECT(fabsf(vec_normalize(x, 3) - 5.0f) < 1e-6f);
	EXPECT(fabsf(x[0] - 0.6f) < 1e-7f && x[1] == 0 &&
	       fabsf(x[2] - 0.8f) < 1e-7f);
	EXPECT(vec_normalize(z, 4) == 0);
	EXPECT(z[0] == 0 && z[3] == 0);
	for (int i = 0; i < 960; i++)
		big[i] = frand() * 1000;
	EXPECT(vec_normalize(big, 960) > 0);
	for (int i = 0; i < 960; i++)
		s += (double)big[i] * big[i];
	EXPECT(fabs(s - 1) < 1e-5);
}

void suite_distance(void)
{
	RUN(test_kernels_vs_reference);
	RUN(test_kernels_exact_integers);
	RUN(test_simd_select);
	RUN(test_normalize);
}
