/*
 * io_write.c - writers for the stream formats the readers accept, so that
 * the commands (and tests) produce output the readers take back unchanged.
 */
#include <stdio.h>
#include <string.h>

#include "io_internal.h"

#define CHUNK 256 /* components converted per fwrite */

/* The dimension field shared by fvecs and ivecs. */
static int write_dim(FILE *f, size_t dim)
{
	unsigned char b[4];

	if (dim > INT32_MAX)
		return VEC_E_USAGE;
	vec_put_le32(b, (uint32_t)dim);
	fwrite(b, 1, sizeof b, f);
	return 0;
}

/* 4-byte words out, little-endian whatever the host. */
static void write_words(FILE *f, const void *v, size_t dim)
{
	unsigned char b[CHUNK * 4];
	const unsigned char *src = v;
	size_t i, n;

	while (dim > 0) {
		n = dim < CHUNK ? dim : CHUNK;
		for (i = 0; i < n; i++) {
			uint32_t u;

			memcpy(&u, src + 4 * i, 4);
			vec_put_le32(b + 4 * i, u);
		}
		fwrite(b, 4, n, f);
		src += 4 * n;
		dim -= n;
	}
}

/* One *vecs record: the dimension, then dim 32-bit little-endian words. */
static int write_record(FILE *f, const void *v, size_t dim)
{
	int rc;

	if (!f || (!v && dim))
		return VEC_E_USAGE;
	rc = write_dim(f, dim);
	if (rc)
		return rc;
	write_words(f, v, dim);
	return ferror(f) ? VEC_E_IO : 0;
}

/* One fvecs record: what the reader and other TEXMEX tools take. */
int vec_write_fvecs(FILE *f, const float *v, size_t dim)
{
	return write_record(f, v, dim);
}

/* One ivecs record, e.g. ground-truth neighbour ids. */
int vec_write_ivecs(FILE *f, const int32_t *v, size_t dim)
{
	return write_record(f, v, dim);
}

/*
 * %.9g gives every float32 back exactly through strtof.  A key holding the
 * separator, a quote or a line end is quoted, quotes doubled, so that the
 * CSV reader splits it back the same.
 */
int vec_write_csv(FILE *f, const char *key, const float *v, size_t dim,
		  char sep)
{
	size_t j;
	const char *k;

	if (!f || (!v && dim) || (sep != ',' && sep != '\t'))
		return VEC_E_USAGE;
	if (key) {
		if (strchr(key, sep) || strpbrk(key, "\"\n\r") || *key == ' ' ||
		    !*key) {
			putc('"', f);
			for (k = key; *k; k++) {
				if (*k == '"')
					putc('"', f);
				putc(*k, f);
			}
			putc('"', f);
		} else {
			fputs(key, f);
		}
		if (dim)
			putc(sep, f);
	}
	for (j = 0; j < dim; j++) {
		if (j)
			putc(sep, f);
		fprintf(f, "%.9g", (double)v[j]);
	}
	putc('\n', f);
	return ferror(f) ? VEC_E_IO : 0;
}
