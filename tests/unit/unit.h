/*
 * unit.h - a tiny test harness for the library's C unit tests.
 *
 * A suite file defines static test functions and one `void suite_NAME(void)`
 * that runs each with RUN(fn).  EXPECT(cond) records a failure (with file
 * and line on stderr) and lets the test go on; a test passes when none of its
 * EXPECTs failed.  The runner (run.c) prints "unit: N passed, N failed".
 */
#ifndef VEC_UNIT_H
#define VEC_UNIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int unit_passed, unit_failed, unit_cur_failed;
extern const char *unit_cur_name;

#define EXPECT(cond)                                                        \
	do {                                                                \
		if (!(cond)) {                                              \
			unit_cur_failed++;                                  \
			fprintf(stderr, "%s:%d: %s: expected %s\n", __FILE__, \
				__LINE__, unit_cur_name, #cond);            \
		}                                                           \
	} while (0)

#define EXPECT_MSG(cond, ...)                                               \
	do {                                                                \
		if (!(cond)) {                                              \
			unit_cur_failed++;                                  \
			fprintf(stderr, "%s:%d: %s: expected %s: ", __FILE__, \
				__LINE__, unit_cur_name, #cond);            \
			fprintf(stderr, __VA_ARGS__);                       \
			fputc('\n', stderr);                                \
		}                                                           \
	} while (0)

#define RUN(fn)                                                             \
	do {                                                                \
		unit_cur_failed = 0;                                        \
		unit_cur_name = #fn;                                        \
		fn();                                                       \
		if (unit_cur_failed) {                                      \
			unit_failed++;                                      \
			printf("not ok - %s\n", #fn);                       \
		} else {                                                    \
			unit_passed++;                                      \
			printf("ok - %s\n", #fn);                           \
		}                                                           \
	} while (0)

/* Suites, one per library concept (defined in test_*.c).  Weak, so that a
 * partial build (one suite file) still links; the runner skips missing ones. */
#define UNIT_SUITE __attribute__((weak))
UNIT_SUITE void suite_error(void);
UNIT_SUITE void suite_distance(void);
UNIT_SUITE void suite_topk(void);
UNIT_SUITE void suite_flat(void);
UNIT_SUITE void suite_io(void);
UNIT_SUITE void suite_file(void);
UNIT_SUITE void suite_index(void);
UNIT_SUITE void suite_hnsw(void);
UNIT_SUITE void suite_kmeans(void);
UNIT_SUITE void suite_ivf(void);
UNIT_SUITE void suite_pq(void);
UNIT_SUITE void suite_sq8(void);
UNIT_SUITE void suite_ivfpq(void);
UNIT_SUITE void suite_ids(void);
UNIT_SUITE void suite_merge(void);

/* The tests' random numbers: xorshift64 on a state each test file seeds,
 * so that a failure reproduces. */
static inline uint64_t unit_xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}
/* Uniform in [-0.5, 0.5). */
static inline float unit_uniform(uint64_t *s)
{
	return (float)((double)(unit_xorshift(s) >> 11) / 9007199254740992.0 - 0.5);
}

/* Recompute every checksum of an index file image in place, so that a
 * deliberate change reaches the checks behind them (run.c). */
void unit_reseal(uint8_t *b, size_t len);

/* Scratch directory for tests that need files (created by the runner). */
extern char unit_tmpdir[];
/* unit_tmpdir/name, in one of 8 rotating buffers. */
char *unit_tmp_path(const char *name);
/* A whole file in malloc'd memory (one byte more, so that an empty file
 * is not a NULL), its size in *len; NULL if it cannot be read. */
uint8_t *unit_slurp(const char *path, size_t *len);

#endif
