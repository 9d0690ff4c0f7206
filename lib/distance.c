/*
 * distance.c - scalar reference kernels and the run-time SIMD dispatch.
 *
 * The scalar kernels are the reference every SIMD level is tested against
 * and the fallback on any CPU.  The level is chosen once, from the CPU's
 * features, lowered by VEC_SIMD=scalar|avx2|avx512|neon if set, and may be
 * changed later by vec_simd_select() (tests, benchmarks).
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "kernels.h"

/*
 * Squared Euclidean distance, four independent float sums: the order is
 * fixed, so the result is reproducible, and the error is a quarter of a
 * single running sum's on long vectors.
 */
static float l2sq_scalar(const float *a, const float *b, size_t d)
{
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t i = 0;

	for (; i + 4 <= d; i += 4) {
		float t0 = a[i] - b[i], t1 = a[i + 1] - b[i + 1];
		float t2 = a[i + 2] - b[i + 2], t3 = a[i + 3] - b[i + 3];
		s0 += t0 * t0;
		s1 += t1 * t1;
		s2 += t2 * t2;
		s3 += t3 * t3;
	}
	for (; i < d; i++) {
		float t = a[i] - b[i];
		s0 += t * t;
	}
	return (s0 + s1) + (s2 + s3);
}

/* Inner product, summed the same way as l2sq_scalar. */
static float dot_scalar(const float *a, const float *b, size_t d)
{
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t i = 0;

	for (; i + 4 <= d; i += 4) {
		s0 += a[i] * b[i];
		s1 += a[i + 1] * b[i + 1];
		s2 += a[i + 2] * b[i + 2];
		s3 += a[i + 3] * b[i + 3];
	}
	for (; i < d; i++)
		s0 += a[i] * b[i];
	return (s0 + s1) + (s2 + s3);
}

static const struct vec_kernels kernels_scalar = {
	VEC_SIMD_SCALAR, "scalar", l2sq_scalar, dot_scalar,
};

/* CPU features, probed once: cpu_ok[level] says the level can run here. */
static int cpu_ok[VEC_SIMD_NEON + 1];
static _Atomic(const struct vec_kernels *) current;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

/* The table of a level if this build has it, whatever the CPU says. */
static const struct vec_kernels *built_table(int level)
{
	switch (level) {
	case VEC_SIMD_SCALAR:
		return &kernels_scalar;
#ifdef VEC_HAVE_X86
	case VEC_SIMD_AVX2:
		return &vec_kernels_avx2;
	case VEC_SIMD_AVX512:
		return &vec_kernels_avx512;
#endif
#if defined(VEC_HAVE_NEON) && defined(__aarch64__)
	case VEC_SIMD_NEON:
		return &vec_kernels_neon;
#endif
	}
	return NULL;
}

/*
 * The best runnable level not above `level` in enum order: a request this
 * CPU or build cannot honour falls back to the next lower one.
 */
static const struct vec_kernels *best_upto(int level)
{
	for (int l = level; l > VEC_SIMD_SCALAR; l--)
		if (cpu_ok[l] && built_table(l))
			return built_table(l);
	return &kernels_scalar;
}

/* Map a VEC_SIMD value to a level; -1 if it is not one we know. */
static int parse_level(const char *s)
{
	static const char *const names[] = { "scalar", "avx2", "avx512", "neon" };

	for (int l = 0; l <= VEC_SIMD_NEON; l++)
		if (!strcmp(s, names[l]))
			return l;
	return -1;
}

/* Probe the CPU once (pthread_once), then apply VEC_SIMD. */
static void probe(void)
{
	int want = VEC_SIMD_NEON; /* highest in enum order: no cap */
	const char *env;

	cpu_ok[VEC_SIMD_SCALAR] = 1;
#if defined(VEC_HAVE_X86) && (defined(__x86_64__) || defined(__i386__))
	__builtin_cpu_init();
	cpu_ok[VEC_SIMD_AVX2] = __builtin_cpu_supports("avx2") &&
				__builtin_cpu_supports("fma");
	cpu_ok[VEC_SIMD_AVX512] = cpu_ok[VEC_SIMD_AVX2] &&
				  __builtin_cpu_supports("avx512f") &&
				  __builtin_cpu_supports("avx512bw") &&
				  __builtin_cpu_supports("avx512dq") &&
				  __builtin_cpu_supports("avx512vl");
#endif
#if defined(VEC_HAVE_NEON) && defined(__aarch64__)
	cpu_ok[VEC_SIMD_NEON] = 1; /* Advanced SIMD is part of AArch64 */
#endif
	env = getenv("VEC_SIMD");
	if (env && *env && parse_level(env) >= 0)
		want = parse_level(env);
	atomic_store(&current, best_upto(want));
}

/* The kernels in use; the acquire load makes the common case one read. */
const struct vec_kernels *vec_kernels(void)
{
	const struct vec_kernels *k = atomic_load_explicit(&current,
							   memory_order_acquire);

	if (k)
		return k;
	pthread_once(&probe_once, probe);
	return atomic_load(&current);
}

/* A given level's table, for tests and benchmarks; NULL if it cannot run. */
const struct vec_kernels *vec_kernels_for(int level)
{
	if (level < VEC_SIMD_SCALAR || level > VEC_SIMD_NEON)
		return NULL;
	pthread_once(&probe_once, probe);
	return cpu_ok[level] ? built_table(level) : NULL;
}

/* Force a level (falls back to the best lower one this CPU has). */
int vec_simd_select(int level)
{
	if (level < VEC_SIMD_SCALAR || level > VEC_SIMD_NEON)
		return VEC_E_USAGE;
	pthread_once(&probe_once, probe);
	atomic_store(&current, best_upto(level));
	return VEC_OK;
}

/* Convenience wrappers for callers outside the hot loops. */
float vec_l2sq(const float *a, const float *b, size_t d)
{
	return vec_kernels()->l2sq(a, b, d);
}

float vec_dot(const float *a, const float *b, size_t d)
{
	return vec_kernels()->dot(a, b, d);
}

/*
 * Unit length for cosine indexes.  The norm is summed in double (four
 * sums, so that they overlap), and each component divided in double: the
 * stored vectors should be as close to unit length as float allows.
 */
float vec_normalize(float *x, size_t d)
{
	double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s, r;
	size_t i = 0;

	for (; i + 4 <= d; i += 4) {
		s0 += (double)x[i] * x[i];
		s1 += (double)x[i + 1] * x[i + 1];
		s2 += (double)x[i + 2] * x[i + 2];
		s3 += (double)x[i + 3] * x[i + 3];
	}
	for (; i < d; i++)
		s0 += (double)x[i] * x[i];
	s = (s0 + s1) + (s2 + s3);
	if (!(s > 0) || !isfinite(s))
		return 0;
	r = sqrt(s);
	for (i = 0; i + 2 <= d; i += 2) { /* pairs: one divpd */
		double a = x[i] / r, b = x[i + 1] / r;
		x[i] = (float)a;
		x[i + 1] = (float)b;
	}
	for (; i < d; i++)
		x[i] = (float)(x[i] / r);
	return (float)r;
}

/*
 * Cores this process may run on: the affinity mask when it is narrower
 * than the online count (taskset, containers), never less than 1.
 */
int vec_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (n < 1)
		n = 1;
	if (sched_getaffinity(0, sizeof set, &set) == 0) {
		int c = CPU_COUNT(&set);
		if (c >= 1 && c < n)
			n = c;
	}
	return n > 4096 ? 4096 : (int)n;
}
