/*
 * fuzz.h - shared by the fuzz targets (tests/fuzz/fuzz_*.c).
 *
 * Each target defines FUZZ_TARGET(name) { ... } over (data, size).  Built
 * with -DVEC_LIBFUZZER it becomes LLVMFuzzerTestOneInput, for clang's
 * libFuzzer (make fuzz); otherwise it is fuzz_<name>(), called by the
 * replay driver (replay.c) over the committed corpus in make test.
 */
#ifndef VEC_FUZZ_H
#define VEC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "vec.h"

#ifdef VEC_LIBFUZZER
#define FUZZ_TARGET(name)                                                   \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);       \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#else
#define FUZZ_TARGET(name)                                                   \
	int fuzz_##name(const uint8_t *data, size_t size);                  \
	int fuzz_##name(const uint8_t *data, size_t size)
#endif

/*
 * Read the whole stream of bytes through a vec_reader with these options,
 * as the commands do: the bytes are put in an anonymous memory file and
 * opened by path, so the reader sees a real descriptor.  Everything read is
 * checked for what the reader promises (dimension in range, finite values).
 */
void fuzz_read_stream(const uint8_t *data, size_t size,
		      const struct vec_reader_opts *opts);

#endif
