/* fuzz_stream.c - feed bytes to a vec_reader (see fuzz.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

void fuzz_read_stream(const uint8_t *data, size_t size,
		      const struct vec_reader_opts *opts)
{
	struct vec_errbuf eb;
	struct vec_reader *r = NULL;
	char path[64];
	size_t off = 0;
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	if (vec_reader_open(&r, path, opts, &eb) == VEC_OK) {
		size_t dim = vec_reader_dim(r), got;
		enum { CHUNK = 5 };
		float *v;
		char *keys[CHUNK];

		if (dim == 0 || dim > VEC_DIM_MAX)
			abort();
		v = malloc(CHUNK * dim * sizeof *v);
		if (!v)
			abort();
		for (;;) {
			if (vec_reader_read(r, v, CHUNK, &got, keys, &eb) != VEC_OK)
				break;
			if (got == 0 || got > CHUNK)
				break;
			for (size_t i = 0; i < got * dim; i++)
				if (!isfinite(v[i]))
					abort(); /* the reader promises finite values */
			for (size_t i = 0; i < got; i++)
				free(keys[i]);
		}
		free(v);
		vec_reader_close(r);
	} else if (eb.msg[0] == '\0') {
		abort(); /* every refusal says why */
	}
	close(fd);
}
