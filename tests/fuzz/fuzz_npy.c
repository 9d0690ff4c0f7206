/* fuzz_npy.c - the NumPy .npy reader (header dictionary, dtype, shape,
 * data), the format given or sniffed by the first byte's low bit. */
#include "fuzz.h"

FUZZ_TARGET(npy)
{
	struct vec_reader_opts o = VEC_READER_OPTS_INIT;

	if (size < 1)
		return 0;
	o.format = (data[0] & 1) ? VEC_FMT_AUTO : VEC_FMT_NPY;
	fuzz_read_stream(data + 1, size - 1, &o);
	return 0;
}
