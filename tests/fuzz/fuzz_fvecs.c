/* fuzz_fvecs.c - the binary record readers: fvecs, bvecs, ivecs.  The first
 * byte picks the format (and whether it is given or sniffed); the rest is
 * the stream. */
#include "fuzz.h"

FUZZ_TARGET(fvecs)
{
	static const int fmt[] = { VEC_FMT_FVECS, VEC_FMT_BVECS, VEC_FMT_IVECS,
				   VEC_FMT_AUTO };
	struct vec_reader_opts o = VEC_READER_OPTS_INIT;

	if (size < 1)
		return 0;
	o.format = fmt[data[0] & 3];
	fuzz_read_stream(data + 1, size - 1, &o);
	return 0;
}
