/*
 * io_fvecs.c - the TEXMEX binary formats: fvecs, bvecs, ivecs.
 *
 * Every record is a little-endian int32 dimension d followed by d
 * components: float32 (fvecs), uint8 (bvecs) or int32 (ivecs), all
 * little-endian.  Every record must repeat the first record's dimension.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

/* The dimension field of record r->parsed + 1: in range, and as before. */
static int check_dim(struct vec_reader *r, int32_t d)
{
	unsigned long long n = (unsigned long long)r->parsed + 1;

	if (d < 1 || d > VEC_DIM_MAX)
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s: vector %llu: bad dimension %ld (must be 1..%d)",
			       r->name, n, (long)d, VEC_DIM_MAX);
	if (r->dim && (size_t)d != r->dim)
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s: vector %llu: dimension %ld, expected %zu",
			       r->name, n, (long)d, r->dim);
	return 0;
}

/* A record cut short by the end of input. */
static int truncated(struct vec_reader *r, size_t have, size_t want)
{
	return vec_err(&r->eb, VEC_E_FORMAT,
		       "%s: vector %llu: truncated record (got %zu of %zu bytes)",
		       r->name, (unsigned long long)r->parsed + 1, have, want);
}

/* Read the first dimension field, without consuming it. */
static int vecs_start(struct vec_reader *r)
{
	int rc;

	r->comp = r->format == VEC_FMT_BVECS ? 1 : 4;
	rc = io_fill(r, 4, 1);
	if (rc)
		return rc;
	if (io_avail(r) == 0)
		return IO_EOF;
	if (io_avail(r) < 4)
		return truncated(r, io_avail(r), 4);
	rc = check_dim(r, (int32_t)vec_get_le32(io_data(r)));
	if (rc)
		return rc;
	r->dim = vec_get_le32(io_data(r));
	return IO_REC;
}

/* One record, converted to float; nothing is consumed unless it is whole. */
static int vecs_next(struct vec_reader *r, float *out, char **key, int block)
{
	const unsigned char *p;
	size_t want = 4 + r->dim * r->comp, j;
	int rc;

	if (key)
		*key = NULL;
	rc = io_fill(r, 4, block);
	if (rc)
		return rc;
	if (io_avail(r) < 4) {
		if (!r->src.eof)
			return IO_AGAIN;
		if (io_avail(r) == 0)
			return IO_EOF;
		return truncated(r, io_avail(r), want);
	}
	rc = check_dim(r, (int32_t)vec_get_le32(io_data(r)));
	if (rc)
		return rc;
	rc = io_fill(r, want, block);
	if (rc)
		return rc;
	if (io_avail(r) < want) {
		if (!r->src.eof)
			return IO_AGAIN;
		return truncated(r, io_avail(r), want);
	}
	p = io_data(r) + 4;
	switch (r->format) {
	case VEC_FMT_BVECS:
		for (j = 0; j < r->dim; j++)
			out[j] = (float)p[j];
		break;
	case VEC_FMT_IVECS:
		for (j = 0; j < r->dim; j++)
			out[j] = (float)(int32_t)vec_get_le32(p + 4 * j);
		break;
	default:
		if (vec_host_is_le())
			memcpy(out, p, r->dim * sizeof *out);
		else
			for (j = 0; j < r->dim; j++)
				out[j] = vec_get_lef32(p + 4 * j);
		rc = io_check_finite(r, out, r->dim);
		if (rc)
			return rc;
	}
	io_consume(r, want);
	r->parsed++;
	return IO_REC;
}

const struct io_ops io_fvecs_ops = { vecs_start, vecs_next, NULL };
const struct io_ops io_bvecs_ops = { vecs_start, vecs_next, NULL };
const struct io_ops io_ivecs_ops = { vecs_start, vecs_next, NULL };
