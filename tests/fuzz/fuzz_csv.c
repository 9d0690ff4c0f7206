/* fuzz_csv.c - the text readers: CSV and TSV, header and key column given
 * or detected.  The first byte picks the options; the rest is the text. */
#include "fuzz.h"

FUZZ_TARGET(csv)
{
	struct vec_reader_opts o = VEC_READER_OPTS_INIT;

	if (size < 1)
		return 0;
	o.format = (data[0] & 1) ? VEC_FMT_TSV : VEC_FMT_CSV;
	if (data[0] & 2)
		o.format = VEC_FMT_AUTO;
	o.header = (int)((data[0] >> 2) % 3) - 1;
	o.keys = (int)((data[0] >> 4) % 3) - 1;
	fuzz_read_stream(data + 1, size - 1, &o);
	return 0;
}
