/*
 * test_io.c - the vector stream readers and writers: every format, gzip,
 * sniffing, the error messages, and reading from a pipe without waiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "unit.h"
#include "vec.h"

/* Everything one reader produced, until the end or the first failure. */
struct rd {
	int open_rc, rc;       /* open and final read status */
	size_t dim, n;
	float *v;
	char *keys[64];
	int fmt, has_keys, gz;
	uint64_t count;
	char msg[256];
};

static void rd_free(struct rd *d)
{
	size_t i;

	free(d->v);
	for (i = 0; i < 64; i++)
		free(d->keys[i]);
	memset(d, 0, sizeof *d);
}

/* A path inside the scratch directory. */
static const char *tpath(const char *name)
{
	static char buf[8][4300];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof buf[i], "%s/%s", unit_tmpdir, name);
	return buf[i];
}

static const char *put_file(const char *name, const void *data, size_t len)
{
	const char *p = tpath(name);
	FILE *f = fopen(p, "wb");

	if (!f || fwrite(data, 1, len, f) != len) {
		fprintf(stderr, "test_io: cannot write %s\n", p);
		exit(1);
	}
	fclose(f);
	return p;
}

static const char *put_str(const char *name, const char *s)
{
	return put_file(name, s, strlen(s));
}

/*
 * Open and read everything, `batch` vectors per call (0: 4), checking
 * that the reader stays at end of input once there.
 */
static void read_all_opts(const char *path, const struct vec_reader_opts *o,
			  size_t batch, struct rd *d)
{
	struct vec_reader *r;
	struct vec_errbuf eb = { 0 };
	size_t got, cap = 0;
	float *buf;
	char *k[16];

	memset(d, 0, sizeof *d);
	if (!batch)
		batch = 4;
	d->open_rc = d->rc = vec_reader_open(&r, path, o, &eb);
	if (d->rc) {
		EXPECT(r == NULL);
		snprintf(d->msg, sizeof d->msg, "%s", eb.msg);
		return;
	}
	d->dim = vec_reader_dim(r);
	d->fmt = vec_reader_format(r);
	d->has_keys = vec_reader_has_keys(r);
	d->gz = vec_reader_gzip(r);
	buf = malloc(batch * d->dim * sizeof *buf);
	for (;;) {
		size_t i;

		memset(k, 0x55, sizeof k);
		d->rc = vec_reader_read(r, buf, batch, &got, k, &eb);
		if (d->rc) {
			EXPECT(got == 0);
			snprintf(d->msg, sizeof d->msg, "%s", eb.msg);
			break;
		}
		if (got == 0) {
			/* Stays at end of input. */
			EXPECT(vec_reader_read(r, buf, batch, &got, k, &eb) == 0);
			EXPECT(got == 0);
			EXPECT(vec_reader_read(r, buf, 1, &got, NULL, &eb) == 0);
			EXPECT(got == 0);
			break;
		}
		EXPECT(got <= batch);
		if (d->n + got > cap) {
			cap = (d->n + got) * 2;
			d->v = realloc(d->v, cap * d->dim * sizeof *d->v);
		}
		memcpy(d->v + d->n * d->dim, buf, got * d->dim * sizeof *buf);
		for (i = 0; i < got; i++) {
			if (!d->has_keys)
				EXPECT(k[i] == NULL);
			if (d->n + i < 64)
				d->keys[d->n + i] = k[i];
			else
				free(k[i]);
		}
		d->n += got;
	}
	d->count = vec_reader_count(r);
	free(buf);
	vec_reader_close(r);
}

static void read_all(const char *path, int format, struct rd *d)
{
	struct vec_reader_opts o = VEC_READER_OPTS_INIT;

	o.format = format;
	read_all_opts(path, &o, 0, d);
}

/* gzip (one member) of data, malloc'd. */
static unsigned char *gzip_buf(const void *data, size_t len, size_t *out_len)
{
	z_stream zs;
	size_t cap = compressBound((uLong)len) + 64;
	unsigned char *out = malloc(cap);

	memset(&zs, 0, sizeof zs);
	if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		exit(1);
	zs.next_in = (unsigned char *)(uintptr_t)data;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		exit(1);
	*out_len = zs.total_out;
	deflateEnd(&zs);
	return out;
}

/* Little-endian records, built by hand. */
struct bytes {
	unsigned char *p;
	size_t n, cap;
};

static void b_put(struct bytes *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void b_u32(struct bytes *b, uint32_t v)
{
	unsigned char x[4] = { (unsigned char)v, (unsigned char)(v >> 8),
			       (unsigned char)(v >> 16), (unsigned char)(v >> 24) };
	b_put(b, x, 4);
}

static void b_f32(struct bytes *b, float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	b_u32(b, u);
}

static void b_u16(struct bytes *b, uint16_t v)
{
	unsigned char x[2] = { (unsigned char)v, (unsigned char)(v >> 8) };
	b_put(b, x, 2);
}

/* A deterministic pseudo-random float in [-100, 100). */
static float rnd(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)(*s >> 8) / (float)(1u << 24) * 200.0f - 100.0f;
}

/* n vectors of dim d as fvecs bytes (vec_write_fvecs into memory). */
static struct bytes make_fvecs(size_t n, size_t d, uint32_t seed, float **vals)
{
	struct bytes b = { 0 };
	float *v = malloc(n * d * sizeof *v);
	char *mem = NULL;
	size_t len = 0, i, j;
	FILE *f = open_memstream(&mem, &len);

	for (i = 0; i < n; i++) {
		for (j = 0; j < d; j++)
			v[i * d + j] = rnd(&seed);
		EXPECT(vec_write_fvecs(f, v + i * d, d) == 0);
	}
	fclose(f);
	b_put(&b, mem, len);
	free(mem);
	if (vals)
		*vals = v;
	else
		free(v);
	return b;
}

static int same(const float *a, const float *b, size_t n)
{
	return memcmp(a, b, n * sizeof *a) == 0;
}

#define EXPECT_MSG_IS(d, s) \
	EXPECT_MSG(!strcmp((d)->msg, (s)), "message '%s', wanted '%s'", (d)->msg, (s))
#define EXPECT_MSG_HAS(d, s) \
	EXPECT_MSG(strstr((d)->msg, (s)) != NULL, "message '%s' lacks '%s'", (d)->msg, (s))

/* ---- names ---- */

static void test_format_names(void)
{
	int f;

	for (f = VEC_FMT_AUTO; f <= VEC_FMT_NPY; f++)
		EXPECT(vec_format_parse(vec_format_name(f)) == f);
	EXPECT(vec_format_parse("fvecs") == VEC_FMT_FVECS);
	EXPECT(vec_format_parse("tsv") == VEC_FMT_TSV);
	EXPECT(vec_format_parse("parquet") == -1);
	EXPECT(vec_format_parse(NULL) == -1);
	EXPECT(!strcmp(vec_format_name(99), "?"));
	EXPECT(!strcmp(vec_format_name(-1), "?"));
}

/* ---- *vecs ---- */

static void test_fvecs_roundtrip(void)
{
	float *v;
	struct bytes b = make_fvecs(11, 5, 1, &v);
	const char *p = put_file("a.fvecs", b.p, b.n);
	struct rd d;

	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0);
	EXPECT(d.fmt == VEC_FMT_FVECS);
	EXPECT(d.dim == 5);
	EXPECT(d.n == 11);
	EXPECT(d.count == 11);
	EXPECT(!d.gz && !d.has_keys);
	EXPECT(d.n == 11 && same(d.v, v, 55));
	rd_free(&d);

	/* One vector per call, and a batch larger than the input. */
	{
		struct vec_reader_opts o = VEC_READER_OPTS_INIT;

		read_all_opts(p, &o, 1, &d);
		EXPECT(d.rc == 0 && d.n == 11 && same(d.v, v, 55));
		rd_free(&d);
		read_all_opts(p, &o, 100, &d);
		EXPECT(d.rc == 0 && d.n == 11 && same(d.v, v, 55));
		rd_free(&d);
	}
	free(b.p);
	free(v);
}

static void test_fvecs_count_and_batches(void)
{
	struct bytes b = make_fvecs(3, 2, 2, NULL);
	const char *p = put_file("c.fvecs", b.p, b.n);
	struct vec_reader *r;
	struct vec_errbuf eb;
	float out[4];
	size_t got;

	EXPECT(vec_reader_open(&r, p, NULL, &eb) == 0);
	EXPECT(vec_reader_count(r) == 0);
	EXPECT(vec_reader_read(r, out, 2, &got, NULL, &eb) == 0 && got == 2);
	EXPECT(vec_reader_count(r) == 2);
	EXPECT(vec_reader_read(r, out, 2, &got, NULL, &eb) == 0 && got == 1);
	EXPECT(vec_reader_count(r) == 3);
	EXPECT(vec_reader_read(r, out, 2, &got, NULL, &eb) == 0 && got == 0);
	EXPECT(vec_reader_read(r, out, 2, &got, NULL, &eb) == 0 && got == 0);
	EXPECT(vec_reader_count(r) == 3);
	EXPECT(vec_reader_read(r, out, 0, &got, NULL, &eb) == VEC_E_USAGE);
	vec_reader_close(r);
	free(b.p);
}

static void test_ivecs_roundtrip(void)
{
	int32_t v[6] = { 1, -2, 3, 400000, 0, -7 };
	char *mem = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&mem, &len);
	const char *p;
	struct rd d;

	EXPECT(vec_write_ivecs(f, v, 3) == 0);
	EXPECT(vec_write_ivecs(f, v + 3, 3) == 0);
	fclose(f);
	EXPECT(len == 32);
	p = put_file("a.ivecs", mem, len);
	read_all(p, VEC_FMT_IVECS, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_IVECS && d.dim == 3 && d.n == 2);
	if (d.n == 2) {
		EXPECT(d.v[0] == 1.0f && d.v[1] == -2.0f && d.v[2] == 3.0f);
		EXPECT(d.v[3] == 400000.0f && d.v[4] == 0.0f && d.v[5] == -7.0f);
	}
	rd_free(&d);
	free(mem);
}

static void test_bvecs(void)
{
	struct bytes b = { 0 };
	unsigned char x[3] = { 0, 128, 255 }, y[3] = { 7, 8, 9 };
	const char *p;
	struct rd d;

	b_u32(&b, 3);
	b_put(&b, x, 3);
	b_u32(&b, 3);
	b_put(&b, y, 3);
	/* 14 bytes: a multiple of 4+3 but not of 4+12, so bvecs by length. */
	p = put_file("a.bvecs", b.p, b.n);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_BVECS && d.dim == 3 && d.n == 2);
	if (d.n == 2) {
		EXPECT(d.v[0] == 0 && d.v[1] == 128 && d.v[2] == 255);
		EXPECT(d.v[3] == 7 && d.v[4] == 8 && d.v[5] == 9);
	}
	rd_free(&d);
	read_all(p, VEC_FMT_BVECS, &d);
	EXPECT(d.rc == 0 && d.n == 2);
	rd_free(&d);
	free(b.p);
}

static void test_vecs_errors(void)
{
	struct bytes b = { 0 };
	struct rd d;
	const char *p;

	/* dimension change */
	b_u32(&b, 2); b_f32(&b, 1); b_f32(&b, 2);
	b_u32(&b, 3); b_f32(&b, 1); b_f32(&b, 2); b_f32(&b, 3);
	p = put_file("dim.fvecs", b.p, b.n);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == VEC_E_FORMAT && d.n == 1);
	EXPECT_MSG_HAS(&d, "/dim.fvecs: vector 2: dimension 3, expected 2");
	rd_free(&d);

	/* bad dimensions: 0 (by -f), negative, too big */
	b.n = 0;
	b_u32(&b, 0);
	p = put_file("zero.fvecs", b.p, b.n);
	read_all(p, VEC_FMT_FVECS, &d);
	EXPECT(d.open_rc == VEC_E_FORMAT);
	EXPECT_MSG_HAS(&d, "zero.fvecs: vector 1: bad dimension 0 (must be 1..65536)");
	rd_free(&d);

	b.n = 0;
	b_u32(&b, 1); b_f32(&b, 5);
	b_u32(&b, 0xffffffffu); b_f32(&b, 5);
	p = put_file("neg.fvecs", b.p, b.n);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == VEC_E_FORMAT && d.n == 1);
	EXPECT_MSG_HAS(&d, "neg.fvecs: vector 2: bad dimension -1 (must be 1..65536)");
	rd_free(&d);

	b.n = 0;
	b_u32(&b, 65537);
	p = put_file("big.fvecs", b.p, b.n);
	read_all(p, VEC_FMT_FVECS, &d);
	EXPECT(d.open_rc == VEC_E_FORMAT);
	EXPECT_MSG_HAS(&d, "big.fvecs: vector 1: bad dimension 65537 (must be 1..65536)");
	rd_free(&d);

	/* truncated: 4 + 6 bytes of a 4 + 16 record */
	b.n = 0;
	b_u32(&b, 4); b_f32(&b, 1); b_u16(&b, 0);
	p = put_file("trunc.fvecs", b.p, b.n);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.open_rc == VEC_E_FORMAT);
	EXPECT_MSG_HAS(&d, "trunc.fvecs: vector 1: truncated record (got 10 of 20 bytes)");
	rd_free(&d);

	/* truncated in the dimension field of the second record */
	b.n = 0;
	b_u32(&b, 1); b_f32(&b, 1); b_u16(&b, 1);
	p = put_file("trunc2.fvecs", b.p, b.n);
	read_all(p, VEC_FMT_FVECS, &d);
	EXPECT(d.rc == VEC_E_FORMAT && d.n == 1);
	EXPECT_MSG_HAS(&d, "trunc2.fvecs: vector 2: truncated record (got 2 of 8 bytes)");
	rd_free(&d);

	/* NaN and infinity */
	b.n = 0;
	b_u32(&b, 3); b_f32(&b, 1); b_f32(&b, 2); b_f32(&b, 3);
	b_u32(&b, 3); b_f32(&b, 1); b_f32(&b, 2); b_f32(&b, NAN);
	p = put_file("nan.fvecs", b.p, b.n);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == VEC_E_FORMAT && d.n == 1);
	EXPECT_MSG_HAS(&d, "nan.fvecs: vector 2: component 3 is NaN");
	rd_free(&d);

	b.n = 0;
	b_u32(&b, 2); b_f32(&b, -INFINITY); b_f32(&b, 2);
	p = put_file("inf.fvecs", b.p, b.n);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.open_rc == VEC_E_FORMAT);
	EXPECT_MSG_HAS(&d, "inf.fvecs: vector 1: component 1 is infinite");
	rd_free(&d);

	/* empty */
	p = put_file("empty.fvecs", "", 0);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.open_rc == VEC_E_FORMAT);
	EXPECT_MSG_HAS(&d, "empty.fvecs: empty input (no vectors)");
	rd_free(&d);
	read_all(p, VEC_FMT_FVECS, &d);
	EXPECT_MSG_HAS(&d, "empty.fvecs: empty input (no vectors)");
	rd_free(&d);
	free(b.p);
}

/* The largest dimension, a record bigger than the reader's buffer. */
static void test_dim_max(void)
{
	float *v;
	struct bytes b = make_fvecs(2, VEC_DIM_MAX, 3, &v);
	const char *p = put_file("max.fvecs", b.p, b.n);
	struct rd d;
	size_t gl;
	unsigned char *gz;

	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.dim == VEC_DIM_MAX && d.n == 2);
	EXPECT(d.n == 2 && same(d.v, v, 2 * (size_t)VEC_DIM_MAX));
	rd_free(&d);
	gz = gzip_buf(b.p, b.n, &gl);
	p = put_file("max.fvecs.gz", gz, gl);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.gz && d.dim == VEC_DIM_MAX && d.n == 2);
	EXPECT(d.n == 2 && same(d.v, v, 2 * (size_t)VEC_DIM_MAX));
	rd_free(&d);
	free(gz);
	free(b.p);
	free(v);
}

/* ---- gzip ---- */

static void test_gzip_fvecs(void)
{
	float *v;
	struct bytes b = make_fvecs(300, 8, 4, &v);
	size_t gl;
	unsigned char *gz = gzip_buf(b.p, b.n, &gl);
	const char *p = put_file("a.fvecs.gz", gz, gl);
	struct rd d;

	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.gz && d.fmt == VEC_FMT_FVECS && d.dim == 8);
	EXPECT(d.n == 300 && same(d.v, v, 300 * 8));
	rd_free(&d);
	/* -f fvecs still unwraps gzip */
	read_all(p, VEC_FMT_FVECS, &d);
	EXPECT(d.rc == 0 && d.gz && d.n == 300 && same(d.v, v, 300 * 8));
	rd_free(&d);
	free(gz);
	free(b.p);
	free(v);
}

static void test_gzip_members(void)
{
	float *v;
	struct bytes b = make_fvecs(10, 4, 5, &v), cat = { 0 };
	size_t l1, l2, l3, cut = 3 * (4 + 16);
	unsigned char *g1 = gzip_buf(b.p, cut, &l1);
	unsigned char *g2 = gzip_buf(b.p + cut, b.n - cut, &l2);
	unsigned char *g3 = gzip_buf("", 0, &l3);
	struct rd d;
	const char *p;

	b_put(&cat, g1, l1);
	b_put(&cat, g3, l3); /* an empty member in between */
	b_put(&cat, g2, l2);
	p = put_file("cat.fvecs.gz", cat.p, cat.n);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.gz && d.n == 10 && same(d.v, v, 40));
	rd_free(&d);
	free(g1);
	free(g2);
	free(g3);
	free(cat.p);
	free(b.p);
	free(v);
}

static void test_gzip_csv(void)
{
	const char *csv = "id,x,y\nfirst,1.5,2\nsecond,-3,4e2\n";
	size_t gl;
	unsigned char *gz = gzip_buf(csv, strlen(csv), &gl);
	const char *p = put_file("a.csv.gz", gz, gl);
	struct rd d;

	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.gz && d.fmt == VEC_FMT_CSV && d.has_keys);
	EXPECT(d.dim == 2 && d.n == 2);
	if (d.n == 2) {
		EXPECT(d.v[0] == 1.5f && d.v[1] == 2 && d.v[2] == -3 &&
		       d.v[3] == 400);
		EXPECT(!strcmp(d.keys[0], "first") && !strcmp(d.keys[1], "second"));
	}
	rd_free(&d);
	free(gz);
}

static void test_gzip_truncated(void)
{
	struct bytes b = make_fvecs(500, 16, 6, NULL);
	size_t gl;
	unsigned char *gz = gzip_buf(b.p, b.n, &gl);
	const char *p;
	struct rd d;

	p = put_file("half.fvecs.gz", gz, gl / 2);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == VEC_E_FORMAT);
	EXPECT(d.n < 500);
	EXPECT_MSG_HAS(&d, "half.fvecs.gz: unexpected end of gzip data");
	rd_free(&d);
	/* only the 8-byte trailer missing */
	p = put_file("notrail.fvecs.gz", gz, gl - 8);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == VEC_E_FORMAT && d.n == 500);
	EXPECT_MSG_HAS(&d, "notrail.fvecs.gz: unexpected end of gzip data");
	rd_free(&d);
	free(gz);
	free(b.p);
}

static void test_gzip_corrupt(void)
{
	const char *csv_line = "1.25,2.5,3.75,-4\n";
	struct bytes b = { 0 };
	size_t gl, i;
	unsigned char *gz;
	const char *p;
	struct rd d;

	for (i = 0; i < 2000; i++)
		b_put(&b, csv_line, strlen(csv_line));
	gz = gzip_buf(b.p, b.n, &gl);
	/* the stored CRC-32 */
	gz[gl - 6] ^= 0xff;
	p = put_file("crc.csv.gz", gz, gl);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == VEC_E_FORMAT && d.n == 2000);
	EXPECT_MSG_HAS(&d, "crc.csv.gz: corrupt gzip data (incorrect data check)");
	rd_free(&d);
	gz[gl - 6] ^= 0xff;
	/* bytes in the middle of the deflate data: zlib may decode garbage
	 * before it notices (the CRC at the latest), so the failure is either
	 * the gzip one or a record error, but never a silent success */
	for (i = gl / 2; i < gl / 2 + 4; i++)
		gz[i] ^= 0x5a;
	p = put_file("mid.csv.gz", gz, gl);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.open_rc == 0 && d.rc == VEC_E_FORMAT);
	rd_free(&d);
	free(gz);

	/* a damaged second member header, in the middle of the file */
	{
		struct bytes cat = { 0 };
		size_t l1, l2;
		unsigned char *g1 = gzip_buf(b.p, b.n / 2, &l1);
		unsigned char *g2 = gzip_buf(b.p + b.n / 2, b.n - b.n / 2, &l2);

		g2[1] ^= 0xff;
		b_put(&cat, g1, l1);
		b_put(&cat, g2, l2);
		p = put_file("mem.csv.gz", cat.p, cat.n);
		read_all(p, VEC_FMT_AUTO, &d);
		EXPECT(d.rc == VEC_E_FORMAT && d.n == 1000);
		EXPECT_MSG_HAS(&d, "mem.csv.gz: corrupt gzip data (incorrect header check)");
		rd_free(&d);
		free(g1);
		free(g2);
		free(cat.p);
	}
	free(b.p);
}

static void test_csv_header_keys(void)
{
	const char *p = put_str("iris.csv",
				"species,a,b\nsetosa,1,2\nversicolor,3.5,-4\n");
	struct rd d;

	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_CSV && d.has_keys && d.dim == 2);
	EXPECT(d.n == 2 && d.count == 2);
	if (d.n == 2) {
		EXPECT(d.v[0] == 1 && d.v[1] == 2 && d.v[2] == 3.5f &&
		       d.v[3] == -4);
		EXPECT(!strcmp(d.keys[0], "setosa"));
		EXPECT(!strcmp(d.keys[1], "versicolor"));
	}
	rd_free(&d);

	/* keys without header; keys=0 forced makes them errors */
	p = put_str("k.csv", "a, 1 ,2\nb,3, 4 \n");
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.has_keys && d.dim == 2 && d.n == 2);
	EXPECT(d.n == 2 && d.v[0] == 1 && d.v[3] == 4);
	EXPECT(d.n == 2 && !strcmp(d.keys[1], "b"));
	rd_free(&d);
	{
		struct vec_reader_opts o = VEC_READER_OPTS_INIT;

		o.keys = 0;
		read_all_opts(p, &o, 0, &d);
		EXPECT(d.open_rc == VEC_E_FORMAT);
		EXPECT_MSG_HAS(&d, "k.csv:1: field 1: not a number 'a'");
		rd_free(&d);
	}

	/* header line whose first field is numeric ("5,a,b") before keys */
	p = put_str("h5.csv", "5,a,b\nx,1,2\n");
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.has_keys && d.dim == 2 && d.n == 1);
	rd_free(&d);
	p = put_str("h5bad.csv", "5,a,b\n1,2,3\n");
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.open_rc == VEC_E_FORMAT);
	EXPECT_MSG_HAS(&d, "h5bad.csv:1: field 2: not a number 'a'");
	rd_free(&d);
}

static void test_csv_plain(void)
{
	const char *p = put_str("p.csv", "1,2,3\n4,5,6.5");
	struct rd d;
	struct vec_reader_opts o = VEC_READER_OPTS_INIT;

	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_CSV && !d.has_keys && d.dim == 3);
	EXPECT(d.n == 2 && d.v[0] == 1 && d.v[5] == 6.5f);
	rd_free(&d);

	/* header forced on: first line skipped */
	o.header = 1;
	read_all_opts(p, &o, 0, &d);
	EXPECT(d.rc == 0 && d.n == 1 && d.v[0] == 4);
	rd_free(&d);

	/* one column */
	p = put_str("one.csv", "1\n-2\n3e-3\n");
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.dim == 1 && d.n == 3);
	EXPECT(d.n == 3 && d.v[1] == -2 && d.v[2] == 3e-3f);
	rd_free(&d);

	/* trailing blank lines are fine */
	p = put_str("trail.csv", "1,2\n3,4\n\n\n");
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.n == 2);
	rd_free(&d);
}

static void test_tsv_crlf(void)
{
	const char *p = put_str("a.tsv", "x\ty\n1\t2\n3\t4\n");
	struct rd d;

	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_TSV && d.dim == 2 && d.n == 2);
	EXPECT(d.n == 2 && d.v[0] == 1 && d.v[3] == 4);
	rd_free(&d);

	p = put_str("crlf.csv", "a,b\r\nk1,1,2\r\nk2,3,4\r\n");
	read_all(p, VEC_FMT_AUTO, &d);
	/* "a,b" has 2 fields, the data 3: header detection by line 1 alone */
	EXPECT(d.rc == 0 && d.has_keys && d.dim == 2 && d.n == 2);
	EXPECT(d.n == 2 && !strcmp(d.keys[1], "k2") && d.v[3] == 4);
	rd_free(&d);

	p = put_str("crlf.tsv", "1\t2\r\n3\t4");
	read_all(p, VEC_FMT_TSV, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_TSV && d.n == 2 && d.v[1] == 2);
	rd_free(&d);
}

static void test_csv_quoted_roundtrip(void)
{
	static const char *keys[] = { "plain", "a,b", "say \"hi\"", "two\nlines",
				      "" };
	float v[5][3];
	char *mem = NULL;
	size_t len = 0, i, j;
	FILE *f = open_memstream(&mem, &len);
	const char *p;
	struct rd d;
	uint32_t s = 9;

	for (i = 0; i < 5; i++) {
		for (j = 0; j < 3; j++)
			v[i][j] = rnd(&s) / 7.0f;
		EXPECT(vec_write_csv(f, keys[i], v[i], 3, ',') == 0);
	}
	/* a row after the multi-line key, with an error, names line 7 */
	fputs("bad,1,2\n", f);
	fclose(f);
	p = put_file("q.csv", mem, len);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.has_keys && d.dim == 3 && d.n == 5);
	for (i = 0; i < d.n && i < 5; i++) {
		EXPECT(!strcmp(d.keys[i], keys[i]));
		EXPECT(same(d.v + 3 * i, v[i], 3));
	}
	EXPECT(d.rc == VEC_E_FORMAT);
	EXPECT_MSG_HAS(&d, "q.csv:7: 2 fields, expected 3");
	rd_free(&d);
	free(mem);

	/* TSV writer, no key, exact float round trip */
	mem = NULL;
	f = open_memstream(&mem, &len);
	EXPECT(vec_write_csv(f, NULL, v[0], 3, '\t') == 0);
	EXPECT(vec_write_csv(f, NULL, v[1], 3, '\t') == 0);
	fclose(f);
	p = put_file("w.tsv", mem, len);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_TSV && !d.has_keys && d.n == 2);
	EXPECT(d.n == 2 && same(d.v, v[0], 6));
	rd_free(&d);
	free(mem);
}

/* Expect a CSV text to fail with a message containing want. */
static void csv_fails(const char *name, const char *text, const char *want)
{
	struct rd d;

	read_all(put_str(name, text), VEC_FMT_AUTO, &d);
	EXPECT_MSG(d.rc == VEC_E_FORMAT, "%s: rc %d", name, d.rc);
	EXPECT_MSG_HAS(&d, want);
	rd_free(&d);
}

static void test_csv_errors(void)
{
	csv_fails("rag.csv", "1,2\n3\n", "rag.csv:2: 1 fields, expected 2");
	csv_fails("rag2.csv", "1,2\n3,4,5\n", "rag2.csv:2: 3 fields, expected 2");
	csv_fails("ragk.csv", "k,1,2\nj,1\n", "ragk.csv:2: 1 fields, expected 2");
	csv_fails("nan.csv", "1,2\n3,x7\n", "nan.csv:2: field 2: not a number 'x7'");
	csv_fails("nan2.csv", "1,nan\n", "nan2.csv:1: field 2: NaN");
	csv_fails("inf.csv", "a,b\n1,2\n-inf,2\n", "inf.csv:3: field 1: infinite value");
	csv_fails("big.csv", "1,1e39\n", "big.csv:1: field 2: infinite value");
	csv_fails("emptyf.csv", "1,,3\n", "emptyf.csv:1: field 2: not a number ''");
	csv_fails("blank.csv", "1,2\n\n3,4\n", "blank.csv:2: empty line");
	csv_fails("blankcr.csv", "1,2\r\n\r\n3,4\r\n", "blankcr.csv:2: empty line");
	csv_fails("hdr.csv", "a,b\n", "hdr.csv: empty input (no vectors)");
	csv_fails("empty.csv", "", "empty.csv: empty input (no vectors)");
	csv_fails("nl.csv", "\n\n", "nl.csv: empty input (no vectors)");
	csv_fails("quote.csv", "\"abc,1\n", "quote.csv:1: unterminated quoted field");
	/* "k,1,x" has no key column (not all the rest is numeric) */
	csv_fails("kv.csv", "k,1,x\n", "kv.csv:1: field 1: not a number 'k'");
	csv_fails("kv2.csv", "k,1,2\nj,1,x\n", "kv2.csv:2: field 3: not a number 'x'");
}

static void test_csv_dim_bounds(void)
{
	struct bytes b = { 0 };
	size_t i;
	struct rd d;

	for (i = 0; i < VEC_DIM_MAX; i++)
		b_put(&b, i ? ",1" : "1", i ? 2 : 1);
	b_put(&b, "\n", 1);
	read_all(put_file("w.csv", b.p, b.n), VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.dim == VEC_DIM_MAX && d.n == 1);
	rd_free(&d);
	b.n--;
	b_put(&b, ",1\n", 3);
	read_all(put_file("w2.csv", b.p, b.n), VEC_FMT_AUTO, &d);
	EXPECT(d.open_rc == VEC_E_FORMAT);
	EXPECT_MSG_HAS(&d, "w2.csv:1: dimension 65537 (must be 1..65536)");
	rd_free(&d);
	free(b.p);
}

/* Text that starts with digits is not mistaken for a *vecs header. */
static void test_sniff(void)
{
	struct rd d;
	int32_t iv[2] = { 5, 6 };
	char *mem = NULL;
	size_t len = 0;
	FILE *f;

	read_all(put_str("iris.csv", "5.1,3.5,1.4,0.2\n4.9,3,1.4,0.2\n"),
		 VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_CSV && d.dim == 4 && d.n == 2);
	rd_free(&d);
	read_all(put_str("sp.tsv", "1 \t 2\n"), VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_TSV && d.dim == 2 && d.v[1] == 2);
	rd_free(&d);
	/* -f csv on tab-separated text: one field, not a number (so line 1
	 * passes for a header) */
	read_all(put_str("sp2.tsv", "1\t2\n3\t4\n"), VEC_FMT_CSV, &d);
	EXPECT(d.open_rc == VEC_E_FORMAT);
	EXPECT_MSG_HAS(&d, "sp2.tsv:2: field 1: not a number '3\t4'");
	rd_free(&d);
	/* ivecs is never guessed: auto reads it as fvecs */
	f = open_memstream(&mem, &len);
	vec_write_ivecs(f, iv, 2);
	fclose(f);
	read_all(put_file("i.ivecs", mem, len), VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_FVECS && d.dim == 2);
	rd_free(&d);
	free(mem);
}

/* ---- npy ---- */

/* An npy file: version major, header dict (padded), then data. */
static const char *put_npy(const char *name, int major, const char *dict,
			   const void *data, size_t len)
{
	struct bytes b = { 0 };
	size_t pre = major == 1 ? 10 : 12, hl = strlen(dict) + 1;
	const char *p;

	while ((pre + hl) % 64)
		hl++;
	b_put(&b, "\x93NUMPY", 6);
	b_put(&b, (unsigned char[]){ (unsigned char)major, 0 }, 2);
	if (major == 1)
		b_u16(&b, (uint16_t)hl);
	else
		b_u32(&b, (uint32_t)hl);
	b_put(&b, dict, strlen(dict));
	while (b.n < pre + hl - 1)
		b_put(&b, " ", 1);
	b_put(&b, "\n", 1);
	b_put(&b, data, len);
	p = put_file(name, b.p, b.n);
	free(b.p);
	return p;
}

static void test_npy_f4(void)
{
	float v[6] = { 1, 2, 3, -4.5f, 5e-3f, 6e7f };
	struct bytes be = { 0 };
	struct rd d;
	const char *p;
	size_t i;

	p = put_npy("a.npy", 1,
		    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
		    v, sizeof v);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.fmt == VEC_FMT_NPY && d.dim == 3 && d.n == 2);
	EXPECT(d.n == 2 && same(d.v, v, 6));
	rd_free(&d);

	/* version 2, keys in another order, gzip'd */
	p = put_npy("b.npy", 2,
		    "{'shape': (3, 2), 'fortran_order': False, 'descr': '<f4'}",
		    v, sizeof v);
	{
		FILE *f = fopen(p, "rb");
		unsigned char raw[512], *gz;
		size_t n = fread(raw, 1, sizeof raw, f), gl;

		fclose(f);
		gz = gzip_buf(raw, n, &gl);
		p = put_file("b.npy.gz", gz, gl);
		free(gz);
	}
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.gz && d.fmt == VEC_FMT_NPY && d.dim == 2 && d.n == 3);
	EXPECT(d.n == 3 && same(d.v, v, 6));
	rd_free(&d);

	/* big-endian, 1-D shape: one vector */
	for (i = 0; i < 6; i++) {
		uint32_t u;

		memcpy(&u, &v[i], 4);
		u = __builtin_bswap32(u);
		b_put(&be, &u, 4);
	}
	p = put_npy("be.npy", 1,
		    "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }",
		    be.p, be.n);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.dim == 6 && d.n == 1 && same(d.v, v, 6));
	rd_free(&d);
	free(be.p);
}

static void test_npy_f2_u1(void)
{
	/* 1, -2, 65504, smallest subnormal 2^-24, 0.5, -0 */
	uint16_t h[6] = { 0x3c00, 0xc000, 0x7bff, 0x0001, 0x3800, 0x8000 };
	unsigned char u[4] = { 0, 1, 200, 255 };
	struct rd d;
	const char *p;

	p = put_npy("h.npy", 1,
		    "{'descr': '<f2', 'fortran_order': False, 'shape': (3, 2), }",
		    h, sizeof h);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.dim == 2 && d.n == 3);
	if (d.n == 3) {
		EXPECT(d.v[0] == 1 && d.v[1] == -2 && d.v[2] == 65504);
		EXPECT(d.v[3] == ldexpf(1, -24) && d.v[4] == 0.5f);
		EXPECT(d.v[5] == 0 && signbit(d.v[5]));
	}
	rd_free(&d);

	h[3] = 0x7c00; /* +inf in row 2 */
	p = put_npy("hinf.npy", 1,
		    "{'descr': '<f2', 'fortran_order': False, 'shape': (3, 2), }",
		    h, sizeof h);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == VEC_E_FORMAT && d.n == 1);
	EXPECT_MSG_HAS(&d, "hinf.npy: vector 2: component 2 is infinite");
	rd_free(&d);
	h[3] = 0x7e00; /* NaN */
	p = put_npy("hnan.npy", 1,
		    "{'descr': '<f2', 'fortran_order': False, 'shape': (3, 2), }",
		    h, sizeof h);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT_MSG_HAS(&d, "hnan.npy: vector 2: component 2 is NaN");
	rd_free(&d);

	p = put_npy("u.npy", 1,
		    "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }",
		    u, sizeof u);
	read_all(p, VEC_FMT_AUTO, &d);
	EXPECT(d.rc == 0 && d.dim == 2 && d.n == 2);
	EXPECT(d.n == 2 && d.v[0] == 0 && d.v[1] == 1 && d.v[2] == 200 &&
	       d.v[3] == 255);
	rd_free(&d);
}

static void npy_fails(const char *name, const char *dict, size_t len,
		      const char *want)
{
	static const unsigned char zeros[64];
	struct rd d;

	read_all(put_npy(name, 1, dict, zeros, len), VEC_FMT_AUTO, &d);
	EXPECT_MSG(d.rc == VEC_E_FORMAT, "%s: rc %d", name, d.rc);
	EXPECT_MSG_HAS(&d, want);
	rd_free(&d);
}

static void test_npy_errors(void)
{
	npy_fails("f8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
		  32, "f8.npy: npy: unsupported dtype '<f8' (supported: <f4");
	npy_fails("fo.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
		  16, "fo.npy: npy: Fortran-order arrays are not supported");
	npy_fails("s3.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }",
		  32, "s3.npy: npy: shape must be 2-D");
	npy_fails("s0.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
		  4, "s0.npy: npy: shape must be 2-D");
	npy_fails("bad.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2}",
		  16, "bad.npy: npy: bad header");
	npy_fails("bad2.npy", "{'descr': '<f4', 'shape': (2, 2), }",
		  16, "bad2.npy: npy: bad header");
	npy_fails("n0.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }",
		  0, "n0.npy: empty input (no vectors)");
	npy_fails("d0.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }",
		  0, "d0.npy: npy: bad dimension 0 (must be 1..65536)");
	npy_fails("tr.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
		  20, "tr.npy: vector 3: truncated record (got 4 of 8 bytes)");
}

/* ---- opening ---- */

static void test_open_errors(void)
{
	struct rd d;
	struct vec_reader_opts o = VEC_READER_OPTS_INIT;
	char want[4400];

	read_all(tpath("missing.fvecs"), VEC_FMT_AUTO, &d);
	EXPECT(d.open_rc == VEC_E_IO);
	snprintf(want, sizeof want, "%s: cannot open: %s",
		 tpath("missing.fvecs"), strerror(ENOENT));
	EXPECT_MSG_IS(&d, want);
	rd_free(&d);

	read_all(unit_tmpdir, VEC_FMT_AUTO, &d);
	EXPECT(d.open_rc == VEC_E_IO);
	snprintf(want, sizeof want, "%s: is a directory", unit_tmpdir);
	EXPECT_MSG_IS(&d, want);
	rd_free(&d);

	o.name = "queries";
	read_all_opts(put_str("named.csv", "1,2\n3\n"), &o, 0, &d);
	EXPECT_MSG_IS(&d, "queries:2: 1 fields, expected 2");
	rd_free(&d);

	o.format = 42;
	read_all_opts(put_str("named.csv", "1,2\n"), &o, 0, &d);
	EXPECT(d.open_rc == VEC_E_USAGE);
	rd_free(&d);
}

/* Standard input, named "stdin". */
static void test_stdin(void)
{
	const char *p = put_str("in.csv", "1,2\n3,x\n");
	int fd = open(p, O_RDONLY), saved = dup(0);
	struct rd d;

	EXPECT(fd >= 0 && saved >= 0);
	dup2(fd, 0);
	close(fd);
	read_all("-", VEC_FMT_AUTO, &d);
	dup2(saved, 0);
	close(saved);
	EXPECT(d.n == 1 && d.rc == VEC_E_FORMAT);
	EXPECT_MSG_IS(&d, "stdin:2: field 2: not a number 'x'");
	rd_free(&d);
}

/* Good records before a bad one in the same call are returned first. */
static void test_error_after_good(void)
{
	const char *p = put_str("late.csv", "1,2\n3,4\n5\n");
	struct vec_reader *r;
	struct vec_errbuf eb;
	float out[20];
	size_t got;

	EXPECT(vec_reader_open(&r, p, NULL, &eb) == 0);
	EXPECT(vec_reader_read(r, out, 10, &got, NULL, &eb) == 0 && got == 2);
	EXPECT(vec_reader_read(r, out, 10, &got, NULL, &eb) == VEC_E_FORMAT);
	EXPECT(got == 0 && strstr(eb.msg, "late.csv:3: 1 fields, expected 2"));
	memset(&eb, 0, sizeof eb);
	EXPECT(vec_reader_read(r, out, 10, &got, NULL, &eb) == VEC_E_FORMAT);
	EXPECT(eb.code == VEC_E_FORMAT && strstr(eb.msg, "late.csv:3:"));
	EXPECT(vec_reader_count(r) == 2);
	vec_reader_close(r);
}

/* ---- pipes ---- */

struct pipe_job {
	const char *path;
	int fmt;
	size_t dim, got;
	float v[8];
	int rc;
	struct vec_reader *r;
};

/* Open and read once: must return with the one vector written so far. */
static void *pipe_reader(void *arg)
{
	struct pipe_job *j = arg;
	struct vec_errbuf eb;

	j->rc = vec_reader_open(&j->r, j->path, NULL, &eb);
	if (j->rc)
		return NULL;
	j->dim = vec_reader_dim(j->r);
	j->fmt = vec_reader_format(j->r);
	j->rc = vec_reader_read(j->r, j->v, 8 / j->dim, &j->got, NULL, &eb);
	return NULL;
}

/* Read once more on an open reader. */
static void *pipe_reader_again(void *arg)
{
	struct pipe_job *j = arg;
	struct vec_errbuf eb;

	j->rc = vec_reader_read(j->r, j->v, 8 / j->dim, &j->got, NULL, &eb);
	return NULL;
}

/* Run fn in a thread; if it hangs, close the writer so that it ends. */
static int run_guarded(void *(*fn)(void *), struct pipe_job *j, int *wfd)
{
	pthread_t t;
	struct timespec ts;
	int hung = 0;

	pthread_create(&t, NULL, fn, j);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	if (pthread_timedjoin_np(t, NULL, &ts) != 0) {
		hung = 1;
		close(*wfd);
		*wfd = -1;
		pthread_join(t, NULL);
	}
	return !hung;
}

/* One record written into a pipe, writer kept open: no waiting for more. */
static void pipe_case(const void *first, size_t n1, const void *second,
		      size_t n2, int fmt, size_t dim, float v0)
{
	int fds[2];
	char path[64];
	struct pipe_job j;

	memset(&j, 0, sizeof j);
	EXPECT(pipe(fds) == 0);
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	j.path = path;
	EXPECT(write(fds[1], first, n1) == (ssize_t)n1);
	EXPECT_MSG(run_guarded(pipe_reader, &j, &fds[1]), "open/read waited");
	EXPECT(j.rc == 0 && j.fmt == fmt && j.dim == dim && j.got == 1);
	EXPECT(j.v[0] == v0);
	if (j.r && fds[1] >= 0) {
		EXPECT(write(fds[1], second, n2) == (ssize_t)n2);
		EXPECT_MSG(run_guarded(pipe_reader_again, &j, &fds[1]),
			   "second read waited");
		EXPECT(j.rc == 0 && j.got == 1);
		close(fds[1]);
		fds[1] = -1;
		EXPECT(run_guarded(pipe_reader_again, &j, &fds[1]));
		EXPECT(j.rc == 0 && j.got == 0);
	}
	if (fds[1] >= 0)
		close(fds[1]);
	vec_reader_close(j.r);
	close(fds[0]);
}

static void test_pipe_fvecs(void)
{
	struct bytes b = { 0 };

	b_u32(&b, 3); b_f32(&b, 7); b_f32(&b, 8); b_f32(&b, 9);
	pipe_case(b.p, b.n, b.p, b.n, VEC_FMT_FVECS, 3, 7);
	free(b.p);
}

static void test_pipe_csv(void)
{
	pipe_case("1.5,2\n", 6, "3,4\n", 4, VEC_FMT_CSV, 2, 1.5f);
	pipe_case("4\n", 2, "5\n", 2, VEC_FMT_CSV, 1, 4);
}

/* gzip flushed after each record (Z_SYNC_FLUSH) also flows through. */
static void test_pipe_gzip(void)
{
	z_stream zs;
	unsigned char out1[256], out2[256];
	size_t n1, n2;
	const char *l1 = "6,7\n", *l2 = "8,9\n";

	memset(&zs, 0, sizeof zs);
	EXPECT(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
			    Z_DEFAULT_STRATEGY) == Z_OK);
	zs.next_in = (unsigned char *)(uintptr_t)l1;
	zs.avail_in = 4;
	zs.next_out = out1;
	zs.avail_out = sizeof out1;
	EXPECT(deflate(&zs, Z_SYNC_FLUSH) == Z_OK);
	n1 = sizeof out1 - zs.avail_out;
	zs.next_in = (unsigned char *)(uintptr_t)l2;
	zs.avail_in = 4;
	zs.next_out = out2;
	zs.avail_out = sizeof out2;
	EXPECT(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	n2 = sizeof out2 - zs.avail_out;
	deflateEnd(&zs);
	pipe_case(out1, n1, out2, n2, VEC_FMT_CSV, 2, 6);
}

/* A writer dribbling one byte at a time: records split across reads. */
struct dribble {
	int fd;
	const unsigned char *p;
	size_t n;
};

static void *dribbler(void *arg)
{
	struct dribble *dr = arg;
	size_t i;

	for (i = 0; i < dr->n; i++)
		if (write(dr->fd, dr->p + i, 1) != 1)
			break;
	close(dr->fd);
	return NULL;
}

static void dribble_case(const void *data, size_t len, size_t nvec,
			 size_t dim, const float *want)
{
	int fds[2];
	char path[64];
	pthread_t t;
	struct dribble dr;
	struct rd d;

	EXPECT(pipe(fds) == 0);
	dr.fd = fds[1];
	dr.p = data;
	dr.n = len;
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	pthread_create(&t, NULL, dribbler, &dr);
	read_all(path, VEC_FMT_AUTO, &d);
	pthread_join(t, NULL);
	close(fds[0]);
	EXPECT(d.rc == 0 && d.dim == dim && d.n == nvec);
	EXPECT(d.n == nvec && same(d.v, want, nvec * dim));
	rd_free(&d);
}

static void test_pipe_dribble(void)
{
	float *v;
	struct bytes b = make_fvecs(20, 3, 11, &v);
	size_t gl;
	unsigned char *gz = gzip_buf(b.p, b.n, &gl);
	const char *csv = "k,a,b\nx,1,2\n\"y,\"\"z\",3,4\r\n";
	float cv[4] = { 1, 2, 3, 4 };

	dribble_case(b.p, b.n, 20, 3, v);
	dribble_case(gz, gl, 20, 3, v);
	dribble_case(csv, strlen(csv), 2, 2, cv);
	free(gz);
	free(b.p);
	free(v);
}

/* ---- writers ---- */

static void test_writers(void)
{
	float v[3] = { 0.1f, -1e-30f, 3.4028235e38f };
	int32_t iv[2] = { -1, 65536 };
	char *mem = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&mem, &len);
	const unsigned char want[] = { 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
				       0, 0, 1, 0 };

	EXPECT(vec_write_ivecs(f, iv, 2) == 0);
	fflush(f);
	EXPECT(len == 12 && !memcmp(mem, want, 12));
	fclose(f);
	free(mem);

	mem = NULL;
	f = open_memstream(&mem, &len);
	EXPECT(vec_write_csv(f, "k\"1", v, 3, ',') == 0);
	EXPECT(vec_write_csv(f, "k\t2", v, 1, ',') == 0);
	EXPECT(vec_write_csv(f, "k\t2", v, 1, '\t') == 0);
	EXPECT(vec_write_csv(f, NULL, v, 1, ';') == VEC_E_USAGE);
	fclose(f);
	EXPECT_MSG(!strcmp(mem, "\"k\"\"1\",0.100000001,-1e-30,3.40282347e+38\n"
				"k\t2,0.100000001\n"
				"\"k\t2\"\t0.100000001\n"),
		   "got '%s'", mem);
	free(mem);

	/* a write error is reported */
	f = fopen("/dev/full", "w");
	if (f) {
		int rc = 0, i;

		setvbuf(f, NULL, _IONBF, 0);
		for (i = 0; i < 4 && !rc; i++)
			rc = vec_write_fvecs(f, v, 3);
		EXPECT(rc == VEC_E_IO);
		fclose(f);
	}
}

void suite_io(void)
{
	RUN(test_format_names);
	RUN(test_fvecs_roundtrip);
	RUN(test_fvecs_count_and_batches);
	RUN(test_ivecs_roundtrip);
	RUN(test_bvecs);
	RUN(test_vecs_errors);
	RUN(test_dim_max);
	RUN(test_gzip_fvecs);
	RUN(test_gzip_members);
	RUN(test_gzip_csv);
	RUN(test_gzip_truncated);
	RUN(test_gzip_corrupt);
	RUN(test_csv_header_keys);
	RUN(test_csv_plain);
	RUN(test_tsv_crlf);
	RUN(test_csv_quoted_roundtrip);
	RUN(test_csv_errors);
	RUN(test_csv_dim_bounds);
	RUN(test_sniff);
	RUN(test_npy_f4);
	RUN(test_npy_f2_u1);
	RUN(test_npy_errors);
	RUN(test_open_errors);
	RUN(test_stdin);
	RUN(test_error_after_good);
	RUN(test_pipe_fvecs);
	RUN(test_pipe_csv);
	RUN(test_pipe_gzip);
	RUN(test_pipe_dribble);
	RUN(test_writers);
}
