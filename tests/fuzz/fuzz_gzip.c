/* fuzz_gzip.c - gzip unwrapping under any reader: the input is a gzip
 * stream (one or more members) whose contents are sniffed or read as the
 * format the first byte names. */
#include "fuzz.h"

FUZZ_TARGET(gzip)
{
	static const int fmt[] = { VEC_FMT_AUTO, VEC_FMT_FVECS, VEC_FMT_CSV,
				   VEC_FMT_NPY };
	static const uint8_t magic[2] = { 0x1f, 0x8b };
	struct vec_reader_opts o = VEC_READER_OPTS_INIT;

	if (size < 1)
		return 0;
	o.format = fmt[data[0] & 3];
	/* Mostly keep the gzip magic so the mutations land in the stream. */
	if ((data[0] & 4) == 0 && size >= 3) {
		uint8_t buf[4096];
		size_t n = size - 1 > sizeof buf ? sizeof buf : size - 1;
		if (n == size - 1 && n >= 2) {
			for (size_t i = 0; i < n; i++)
				buf[i] = data[1 + i];
			buf[0] = magic[0];
			buf[1] = magic[1];
			fuzz_read_stream(buf, n, &o);
			return 0;
		}
	}
	fuzz_read_stream(data + 1, size - 1, &o);
	return 0;
}
