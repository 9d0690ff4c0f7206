/*
 * io_npy.c - NumPy .npy arrays: a 2-D array (n, d) is n vectors of d
 * components; a 1-D array (d,) is one vector.
 *
 * The file is "\x93NUMPY", a major and minor version byte, the header
 * length (little-endian u16 in version 1, u32 in versions 2 and 3), then a
 * Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }
 * padded with spaces and a newline, then the raw data in C order.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

#define NPY_HEADER_MAX (1u << 20)

enum { NPY_F4 = 1, NPY_F2, NPY_U1 };

static const struct {
	const char *descr;
	int kind, swap;
} npy_types[] = {
	{ "<f4", NPY_F4, 0 }, { ">f4", NPY_F4, 1 }, { "<f2", NPY_F2, 0 },
	{ ">f2", NPY_F2, 1 }, { "|u1", NPY_U1, 0 }, { "<u1", NPY_U1, 0 },
};

/* A cursor over the header text. */
struct hp {
	const char *p, *end;
};

/* Python allows spaces (and NumPy pads with them) between tokens. */
static void hp_ws(struct hp *h)
{
	while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' ||
				 *h->p == '\n' || *h->p == '\r'))
		h->p++;
}

/* Expect the character c after optional spaces. */
static int hp_char(struct hp *h, char c)
{
	hp_ws(h);
	if (h->p < h->end && *h->p == c) {
		h->p++;
		return 1;
	}
	return 0;
}

/* A quoted string (no escapes: NumPy never writes any here) into out. */
static int hp_str(struct hp *h, char *out, size_t cap)
{
	char q;
	size_t n = 0;

	hp_ws(h);
	if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
		return 0;
	q = *h->p++;
	while (h->p < h->end && *h->p != q) {
		if (n + 1 >= cap)
			return 0;
		out[n++] = *h->p++;
	}
	if (h->p >= h->end)
		return 0;
	h->p++;
	out[n] = 0;
	return 1;
}

/* True or False. */
static int hp_bool(struct hp *h, int *v)
{
	hp_ws(h);
	if (h->end - h->p >= 4 && !memcmp(h->p, "True", 4)) {
		h->p += 4;
		*v = 1;
		return 1;
	}
	if (h->end - h->p >= 5 && !memcmp(h->p, "False", 5)) {
		h->p += 5;
		*v = 0;
		return 1;
	}
	return 0;
}

/* A tuple of non-negative integers: (), (7,), (3, 4), (3, 4, ). */
static int hp_shape(struct hp *h, uint64_t *dims, int *ndim)
{
	int n = 0;

	if (!hp_char(h, '('))
		return 0;
	for (;;) {
		uint64_t v = 0;
		int digits = 0;

		if (hp_char(h, ')'))
			break;
		hp_ws(h);
		while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
			if (v > (UINT64_MAX - 9) / 10)
				return 0;
			v = v * 10 + (uint64_t)(*h->p++ - '0');
			digits++;
		}
		if (!digits)
			return 0;
		if (h->p < h->end && *h->p == 'L') /* Python 2 long */
			h->p++;
		if (n < 8)
			dims[n] = v;
		n++;
		if (hp_char(h, ')'))
			break;
		if (!hp_char(h, ','))
			return 0;
	}
	*ndim = n;
	return 1;
}

/* Any malformed dict gets the same short message. */
static int bad_header(struct vec_reader *r)
{
	return vec_err(&r->eb, VEC_E_FORMAT, "%s: npy: bad header", r->name);
}

/* Parse the dict; fills r->npy_*, r->dim.  IO_REC, IO_EOF (no rows) or < 0. */
static int parse_header(struct vec_reader *r, const char *text, size_t len)
{
	struct hp h = { text, text + len };
	char key[32], descr[32] = "";
	int have_descr = 0, have_fortran = 0, have_shape = 0;
	int fortran = 0, ndim = 0;
	uint64_t dims[8], n, d;
	size_t i;

	if (!hp_char(&h, '{'))
		return bad_header(r);
	while (!hp_char(&h, '}')) {
		if (!hp_str(&h, key, sizeof key) || !hp_char(&h, ':'))
			return bad_header(r);
		if (!strcmp(key, "descr") && !have_descr) {
			if (!hp_str(&h, descr, sizeof descr))
				return bad_header(r);
			have_descr = 1;
		} else if (!strcmp(key, "fortran_order") && !have_fortran) {
			if (!hp_bool(&h, &fortran))
				return bad_header(r);
			have_fortran = 1;
		} else if (!strcmp(key, "shape") && !have_shape) {
			if (!hp_shape(&h, dims, &ndim))
				return bad_header(r);
			have_shape = 1;
		} else {
			return bad_header(r);
		}
		if (!hp_char(&h, ',')) {
			if (!hp_char(&h, '}'))
				return bad_header(r);
			break;
		}
	}
	if (!have_descr || !have_fortran || !have_shape)
		return bad_header(r);

	for (i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
		if (!strcmp(descr, npy_types[i].descr))
			break;
	if (i == sizeof npy_types / sizeof npy_types[0])
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s: npy: unsupported dtype '%s' (supported: <f4, >f4, <f2, >f2, |u1)",
			       r->name, descr);
	r->npy_kind = npy_types[i].kind;
	r->npy_swap = npy_types[i].swap;
	if (fortran)
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s: npy: Fortran-order arrays are not supported",
			       r->name);
	if (ndim == 1) {
		n = 1;
		d = dims[0];
	} else if (ndim == 2) {
		n = dims[0];
		d = dims[1];
	} else {
		return vec_err(&r->eb, VEC_E_FORMAT, "%s: npy: shape must be 2-D",
			       r->name);
	}
	if (n == 0)
		return IO_EOF;
	if (d < 1 || d > VEC_DIM_MAX)
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s: npy: bad dimension %llu (must be 1..%d)",
			       r->name, (unsigned long long)d, VEC_DIM_MAX);
	r->dim = (size_t)d;
	r->npy_left = n;
	return IO_REC;
}

/* Read and consume the magic, version and header. */
static int npy_start(struct vec_reader *r)
{
	size_t pre, hlen;
	char *text;
	int rc, major;

	rc = io_fill(r, 12, 1);
	if (rc)
		return rc;
	if (io_avail(r) == 0)
		return IO_EOF;
	if (io_avail(r) < 10 || memcmp(io_data(r), "\x93NUMPY", 6))
		return bad_header(r);
	major = io_data(r)[6];
	if (major == 1) {
		pre = 10;
		hlen = vec_get_le16(io_data(r) + 8);
	} else if (major == 2 || major == 3) {
		if (io_avail(r) < 12)
			return bad_header(r);
		pre = 12;
		hlen = vec_get_le32(io_data(r) + 8);
	} else {
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s: npy: unsupported version %d.%d", r->name,
			       major, io_data(r)[7]);
	}
	if (hlen > NPY_HEADER_MAX)
		return bad_header(r);
	rc = io_fill(r, pre + hlen, 1);
	if (rc)
		return rc;
	if (io_avail(r) < pre + hlen)
		return bad_header(r);
	text = malloc(hlen + 1);
	if (!text)
		return vec_err(&r->eb, VEC_E_NOMEM, "%s: out of memory", r->name);
	memcpy(text, io_data(r) + pre, hlen);
	text[hlen] = 0;
	io_consume(r, pre + hlen);
	rc = parse_header(r, text, hlen);
	free(text);
	return rc;
}

/* IEEE 754 half -> float, by bits (subnormals are normalised). */
static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	int e;
	float f;

	if (exp == 0x1f) {
		bits = sign | 0x7f800000u | (man << 13);
	} else if (exp == 0) {
		if (man == 0) {
			bits = sign;
		} else {
			e = 1;
			while (!(man & 0x400)) {
				man <<= 1;
				e--;
			}
			man &= 0x3ff;
			bits = sign | ((uint32_t)(e - 15 + 127) << 23) | (man << 13);
		}
	} else {
		bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
	}
	memcpy(&f, &bits, sizeof f);
	return f;
}

/* One row, converted; the declared row count ends the stream, trailing
 * bytes are ignored. */
static int npy_next(struct vec_reader *r, float *out, char **key, int block)
{
	static const size_t width[] = { [NPY_F4] = 4, [NPY_F2] = 2, [NPY_U1] = 1 };
	const unsigned char *p;
	size_t want = r->dim * width[r->npy_kind], j;
	int rc;

	if (key)
		*key = NULL;
	if (r->npy_left == 0)
		return IO_EOF;
	rc = io_fill(r, want, block);
	if (rc)
		return rc;
	if (io_avail(r) < want) {
		if (!r->src.eof)
			return IO_AGAIN;
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s: vector %llu: truncated record (got %zu of %zu bytes)",
			       r->name, (unsigned long long)r->parsed + 1,
			       io_avail(r), want);
	}
	p = io_data(r);
	for (j = 0; j < r->dim; j++) {
		uint32_t u;

		switch (r->npy_kind) {
		case NPY_F4:
			u = vec_get_le32(p + 4 * j);
			if (r->npy_swap)
				u = __builtin_bswap32(u);
			memcpy(&out[j], &u, sizeof u);
			break;
		case NPY_F2:
			u = vec_get_le16(p + 2 * j);
			if (r->npy_swap)
				u = __builtin_bswap16((uint16_t)u);
			out[j] = half_to_float((uint16_t)u);
			break;
		default:
			out[j] = (float)p[j];
		}
	}
	rc = io_check_finite(r, out, r->dim);
	if (rc)
		return rc;
	io_consume(r, want);
	r->parsed++;
	r->npy_left--;
	return IO_REC;
}

const struct io_ops io_npy_ops = { npy_start, npy_next, NULL };
