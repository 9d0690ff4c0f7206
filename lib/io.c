/*
 * io.c - vector stream readers: the byte source, gzip unwrapping, format
 * sniffing and the reader object that dispatches to one format parser.
 *
 * Bytes come from read(2) into our own buffer, never through stdio or
 * gzread: both wait until a whole buffer is full, and vec-query must answer
 * queries that arrive one at a time on a pipe.  io_fill() reads only while
 * the record being completed still lacks bytes, and a batch read stops
 * early (poll(2) with no timeout) rather than wait for a second record.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"

#define IO_BUF_MIN (64u << 10) /* initial buffer, and the usual read size */
#define IO_READ_MIN 4096u      /* never read(2) into less room than this */

static const char *const format_names[] = {
	[VEC_FMT_AUTO] = "auto", [VEC_FMT_FVECS] = "fvecs",
	[VEC_FMT_BVECS] = "bvecs", [VEC_FMT_IVECS] = "ivecs",
	[VEC_FMT_CSV] = "csv", [VEC_FMT_TSV] = "tsv", [VEC_FMT_NPY] = "npy",
};
#define N_FORMATS (sizeof format_names / sizeof format_names[0])

/* -f NAME on the command line -> enum vec_format. */
int vec_format_parse(const char *name)
{
	size_t i;

	if (!name)
		return -1;
	for (i = 0; i < N_FORMATS; i++)
		if (!strcmp(name, format_names[i]))
			return (int)i;
	return -1;
}

/* The name vec_format_parse() accepts, for messages and vec-stat. */
const char *vec_format_name(int format)
{
	if (format < 0 || (size_t)format >= N_FORMATS)
		return "?";
	return format_names[format];
}

/* ---- byte source ------------------------------------------------------- */

/*
 * Make room for at least want more bytes after buf[len]: first by moving
 * the unread bytes to the front, then by growing.  Pointers into buf are
 * stale afterwards.
 */
static int src_room(struct vec_reader *r, size_t want)
{
	struct io_src *s = &r->src;
	size_t cap;
	unsigned char *nb;

	if (s->cap - s->len >= want)
		return 0;
	if (s->pos > 0) {
		memmove(s->buf, s->buf + s->pos, s->len - s->pos);
		s->len -= s->pos;
		s->pos = 0;
		if (s->cap - s->len >= want)
			return 0;
	}
	cap = s->cap ? s->cap : IO_BUF_MIN;
	while (cap - s->len < want) {
		if (cap > SIZE_MAX / 2)
			return vec_err(&r->eb, VEC_E_NOMEM, "%s: out of memory",
				       r->name);
		cap *= 2;
	}
	nb = realloc(s->buf, cap);
	if (!nb)
		return vec_err(&r->eb, VEC_E_NOMEM, "%s: out of memory", r->name);
	s->buf = nb;
	s->cap = cap;
	return 0;
}

/*
 * One read(2) into p.  Returns the byte count (0 at end of file), or -1
 * for "would have to wait" when block == 0, or a negative vec_err below -1.
 * Regular files never wait, so only pipes, sockets and terminals are
 * polled.
 */
static ssize_t src_read(struct vec_reader *r, void *p, size_t n, int block)
{
	struct io_src *s = &r->src;
	struct pollfd pfd;
	ssize_t got;
	int pr;

	if (!block && !s->regular) {
		pfd.fd = s->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		do
			pr = poll(&pfd, 1, 0);
		while (pr < 0 && errno == EINTR);
		if (pr == 0)
			return -1;
	}
	for (;;) {
		got = read(s->fd, p, n);
		if (got >= 0)
			return got;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			/* A descriptor someone made non-blocking. */
			if (!block)
				return -1;
			pfd.fd = s->fd;
			pfd.events = POLLIN;
			pfd.revents = 0;
			if (poll(&pfd, 1, -1) >= 0 || errno == EINTR)
				continue;
		}
		return vec_err(&r->eb, VEC_E_IO, "%s: read error: %s", r->name,
			       strerror(errno));
	}
}

/*
 * Advance the gzip decoder by one step: inflate what compressed bytes are
 * buffered, or read more.  1: progress, 0: would wait, < 0: error.
 */
static int gz_step(struct vec_reader *r, int block)
{
	struct io_src *s = &r->src;
	size_t before;
	ssize_t got;
	int zr, rc;
	size_t had;

	if (s->gz_err)
		return s->gz_err;
	if (s->zs.avail_in == 0 && !s->gz_pending) {
		if (s->raw_eof) {
			if (!s->gz_between)
				return vec_err(&r->eb, VEC_E_FORMAT,
					       "%s: unexpected end of gzip data",
					       r->name);
			s->eof = 1;
			return 1;
		}
		got = src_read(r, s->raw, s->raw_cap, block);
		if (got == -1)
			return 0;
		if (got < 0)
			return (int)got;
		if (got == 0)
			s->raw_eof = 1;
		s->zs.next_in = s->raw;
		s->zs.avail_in = (uInt)got;
		return 1;
	}
	if (s->gz_between) {
		/* Another member follows: concatenated gzip (RFC 1952 2.2). */
		if (inflateReset(&s->zs) != Z_OK)
			return vec_err(&r->eb, VEC_E_FORMAT,
				       "%s: corrupt gzip data (reset failed)",
				       r->name);
		s->gz_between = 0;
	}
	rc = src_room(r, IO_READ_MIN);
	if (rc)
		return rc;
	before = s->zs.avail_in;
	had = s->len;
	s->zs.next_out = s->buf + s->len;
	s->zs.avail_out = (uInt)(s->cap - s->len > UINT32_MAX ?
					 UINT32_MAX : s->cap - s->len);
	zr = inflate(&s->zs, Z_NO_FLUSH);
	s->len = (size_t)(s->zs.next_out - s->buf);
	/* A full output buffer may leave decoded bytes inside zlib. */
	s->gz_pending = zr == Z_OK && s->zs.avail_out == 0;
	switch (zr) {
	case Z_STREAM_END:
		s->gz_between = 1;
		return 1;
	case Z_OK:
		return 1;
	case Z_BUF_ERROR:
		if (s->zs.avail_in != before || s->zs.avail_in == 0)
			return 1;
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s: corrupt gzip data (no progress)", r->name);
	case Z_MEM_ERROR:
		return vec_err(&r->eb, VEC_E_NOMEM, "%s: out of memory", r->name);
	default:
		rc = vec_err(&r->eb, VEC_E_FORMAT, "%s: corrupt gzip data (%s)",
			     r->name, s->zs.msg ? s->zs.msg : "bad stream");
		if (s->len == had)
			return rc;
		/* Hand out what was decoded before the damage first. */
		s->gz_err = rc;
		return 1;
	}
}

/* One step of the plain source: a single read(2).  As gz_step(). */
static int plain_step(struct vec_reader *r, size_t want, int block)
{
	struct io_src *s = &r->src;
	ssize_t got;
	int rc;

	rc = src_room(r, want > IO_READ_MIN ? want : IO_READ_MIN);
	if (rc)
		return rc;
	got = src_read(r, s->buf + s->len, s->cap - s->len, block);
	if (got == -1)
		return 0;
	if (got < 0)
		return (int)got;
	if (got == 0)
		s->eof = 1;
	s->len += (size_t)got;
	return 1;
}

/* The one way parsers get bytes; see io_internal.h for the contract. */
int io_fill(struct vec_reader *r, size_t need, int block)
{
	struct io_src *s = &r->src;
	int rc;

	while (s->len - s->pos < need && !s->eof) {
		if (s->gz) {
			rc = src_room(r, need - (s->len - s->pos));
			if (!rc)
				rc = gz_step(r, block);
		} else {
			rc = plain_step(r, need - (s->len - s->pos), block);
		}
		if (rc <= 0)
			return rc;
	}
	return 0;
}

/* The bytes read so far become the compressed input of a gzip decoder. */
static int gz_start(struct vec_reader *r)
{
	struct io_src *s = &r->src;
	size_t n = s->len - s->pos;

	s->raw_cap = IO_BUF_MIN;
	s->raw = malloc(s->raw_cap > n ? s->raw_cap : n);
	if (!s->raw)
		return vec_err(&r->eb, VEC_E_NOMEM, "%s: out of memory", r->name);
	if (n > s->raw_cap)
		s->raw_cap = n;
	memcpy(s->raw, s->buf + s->pos, n);
	s->pos = s->len = 0;
	s->raw_eof = s->eof;
	s->eof = 0;
	memset(&s->zs, 0, sizeof s->zs);
	if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
		return vec_err(&r->eb, VEC_E_NOMEM, "%s: out of memory", r->name);
	s->gz = 1;
	s->zs.next_in = s->raw;
	s->zs.avail_in = (uInt)n;
	return 0;
}

/* ---- format sniffing ---------------------------------------------------- */

/*
 * True when the n buffered bytes already show a text line: a newline after
 * at least one printable character and nothing else.  A *vecs header has
 * NUL bytes in its first four, so this lets a one-line text query on a pipe
 * be recognised without waiting for a fourth byte.
 */
static int looks_like_text_line(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\n')
			return i > 0;
		if (p[i] != '\t' && p[i] != '\r' && (p[i] < 0x20 || p[i] > 0x7e))
			return 0;
	}
	return 0;
}

/*
 * Decide the format of the (unwrapped) stream from its first bytes.
 *
 * The rule, in order:
 *  1. "\x93NUMPY" -> npy.
 *  2. The first 4 bytes, as a little-endian int32 d, in 1..65536 -> a
 *     *vecs file.  Text cannot look like this: bytes 3 and 4 would be NUL
 *     (or \001), and "5.1," reads as 0x2c312e35.  Which *vecs cannot be
 *     told from content alone, so the answer is fvecs unless the input is a
 *     plain regular file whose length is a multiple of 4+d but not of
 *     4+4d: then bvecs.  ivecs is never guessed; ask for it with -f.
 *  3. Other first 4 bytes holding a control byte (not tab, CR, LF) or
 *     0xfe/0xff, which text does not have -> fvecs too, so that the bad
 *     dimension of vector 1 is what the message names.
 *  4. Otherwise text: TSV if the first line holds a tab and no comma, else
 *     CSV (a line with neither is a single field).
 */
static int sniff(struct vec_reader *r, int *format)
{
	struct io_src *s = &r->src;
	const unsigned char *p;
	size_t n, scanned = 0;
	int rc;
	int32_t d;

	rc = io_fill(r, 1, 1);
	if (rc)
		return rc;
	if (io_avail(r) == 0)
		return IO_EOF;
	if (io_data(r)[0] == 0x93) {
		rc = io_fill(r, 6, 1);
		if (rc)
			return rc;
		if (io_avail(r) >= 6 && !memcmp(io_data(r), "\x93NUMPY", 6)) {
			*format = VEC_FMT_NPY;
			return IO_REC;
		}
	}
	while (io_avail(r) < 4 && !s->eof &&
	       !looks_like_text_line(io_data(r), io_avail(r))) {
		rc = io_fill(r, io_avail(r) + 1, 1);
		if (rc)
			return rc;
	}
	p = io_data(r);
	n = io_avail(r);
	if (n >= 4) {
		d = (int32_t)vec_get_le32(p);
		if (d >= 1 && d <= VEC_DIM_MAX) {
			int64_t fw = 4 + 4 * (int64_t)d, bw = 4 + (int64_t)d;

			*format = VEC_FMT_FVECS;
			if (!s->gz && s->size > 0 && s->size % fw != 0 &&
			    s->size % bw == 0)
				*format = VEC_FMT_BVECS;
			return IO_REC;
		}
		/* Not a valid *vecs header, but not text either (a NUL or
		 * control byte, or 0xfe/0xff which UTF-8 never uses): read
		 * it as fvecs, so that the message names the bad dimension
		 * of vector 1 instead of calling binary data a CSV header. */
		for (int i = 0; i < 4; i++)
			if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' &&
			     p[i] != '\r') || p[i] == 0x7f || p[i] >= 0xfe) {
				*format = VEC_FMT_FVECS;
				return IO_REC;
			}
	}
	/* Text: look at the whole first line (or what there is of it). */
	for (;;) {
		p = io_data(r);
		n = io_avail(r);
		if (memchr(p + scanned, '\n', n - scanned) || s->eof ||
		    n >= IO_LINE_MAX)
			break;
		scanned = n;
		rc = io_fill(r, n + 1, 1);
		if (rc)
			return rc;
	}
	p = io_data(r);
	n = io_avail(r);
	{
		const unsigned char *nl = memchr(p, '\n', n);
		size_t ll = nl ? (size_t)(nl - p) : n;

		if (!memchr(p, ',', ll) && memchr(p, '\t', ll))
			*format = VEC_FMT_TSV;
		else
			*format = VEC_FMT_CSV;
	}
	return IO_REC;
}

/* ---- the reader ---------------------------------------------------------- */

int io_check_finite(struct vec_reader *r, const float *v, size_t dim)
{
	uint32_t bits, bad = 0;
	size_t j;

	/* All exponent bits set is NaN or infinity: one pass that the
	 * compiler vectorises; the slow one below only to name it. */
	for (j = 0; j < dim; j++) {
		memcpy(&bits, v + j, sizeof bits);
		bad |= (bits & 0x7f800000u) == 0x7f800000u;
	}
	if (!bad)
		return 0;
	for (j = 0; j < dim; j++) {
		if (isnan(v[j]))
			return vec_err(&r->eb, VEC_E_FORMAT,
				       "%s: vector %llu: component %zu is NaN",
				       r->name, (unsigned long long)r->parsed + 1,
				       j + 1);
		if (isinf(v[j]))
			return vec_err(&r->eb, VEC_E_FORMAT,
				       "%s: vector %llu: component %zu is infinite",
				       r->name, (unsigned long long)r->parsed + 1,
				       j + 1);
	}
	return 0;
}

/* Free everything; closes the descriptor unless it is stdin. */
void vec_reader_close(struct vec_reader *r)
{
	if (!r)
		return;
	if (r->ops && r->ops->free)
		r->ops->free(r);
	if (r->src.gz)
		inflateEnd(&r->src.zs);
	if (r->src.close_fd && r->src.fd >= 0)
		close(r->src.fd);
	free(r->src.raw);
	free(r->src.buf);
	free(r->pend);
	free(r->pend_key);
	free(r->name);
	free(r);
}

/* Open the descriptor: path, or stdin for "-" / NULL. */
static int open_fd(struct vec_reader *r, const char *path)
{
	struct io_src *s = &r->src;
	struct stat st;
	off_t at;

	if (!path || !strcmp(path, "-")) {
		s->fd = 0;
	} else {
		do
			s->fd = open(path, O_RDONLY | O_CLOEXEC);
		while (s->fd < 0 && errno == EINTR);
		if (s->fd < 0)
			return vec_err(&r->eb, VEC_E_IO, "%s: cannot open: %s",
				       r->name, strerror(errno));
		s->close_fd = 1;
	}
	if (fstat(s->fd, &st) < 0)
		return vec_err(&r->eb, VEC_E_IO, "%s: cannot open: %s", r->name,
			       strerror(errno));
	if (S_ISDIR(st.st_mode))
		return vec_err(&r->eb, VEC_E_IO, "%s: is a directory", r->name);
	s->size = -1;
	if (S_ISREG(st.st_mode)) {
		s->regular = 1;
		at = lseek(s->fd, 0, SEEK_CUR);
		s->size = (int64_t)st.st_size - (at > 0 ? (int64_t)at : 0);
	}
	return 0;
}

/* The parser of a (known) format. */
static const struct io_ops *ops_for(int format)
{
	switch (format) {
	case VEC_FMT_FVECS: return &io_fvecs_ops;
	case VEC_FMT_BVECS: return &io_bvecs_ops;
	case VEC_FMT_IVECS: return &io_ivecs_ops;
	case VEC_FMT_CSV:
	case VEC_FMT_TSV: return &io_csv_ops;
	case VEC_FMT_NPY: return &io_npy_ops;
	}
	return NULL;
}

/* Everything of vec_reader_open() after the allocation; errors in r->eb. */
static int reader_start(struct vec_reader *r, const char *path, int format)
{
	int rc;

	rc = open_fd(r, path);
	if (rc)
		return rc;
	rc = io_fill(r, 2, 1);
	if (rc)
		return rc;
	if (io_avail(r) >= 2 && io_data(r)[0] == 0x1f && io_data(r)[1] == 0x8b) {
		rc = gz_start(r);
		if (rc)
			return rc;
	}
	if (format == VEC_FMT_AUTO) {
		rc = sniff(r, &format);
		if (rc < 0)
			return rc;
		if (rc == IO_EOF)
			goto empty;
	}
	r->format = format;
	r->ops = ops_for(format);
	rc = r->ops->start(r);
	if (rc < 0)
		return rc;
	if (rc == IO_EOF)
		goto empty;
	r->pend = malloc(r->dim * sizeof *r->pend);
	if (!r->pend)
		return vec_err(&r->eb, VEC_E_NOMEM, "%s: out of memory", r->name);
	rc = r->ops->next(r, r->pend, r->has_keys ? &r->pend_key : NULL, 1);
	if (rc < 0)
		return rc;
	if (rc == IO_EOF)
		goto empty;
	r->has_pend = 1;
	return 0;
empty:
	return vec_err(&r->eb, VEC_E_FORMAT, "%s: empty input (no vectors)",
		       r->name);
}

/* Public entry: messages built in r->eb are copied to the caller's eb. */
int vec_reader_open(struct vec_reader **out, const char *path,
		    const struct vec_reader_opts *opts, struct vec_errbuf *eb)
{
	static const struct vec_reader_opts defaults = VEC_READER_OPTS_INIT;
	struct vec_reader *r;
	const char *name;
	int rc;

	if (!out)
		return vec_err(eb, VEC_E_USAGE, "vec_reader_open: no result pointer");
	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (opts->format < 0 || (size_t)opts->format >= N_FORMATS)
		return vec_err(eb, VEC_E_USAGE, "unknown input format %d",
			       opts->format);
	r = calloc(1, sizeof *r);
	if (!r)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	r->src.fd = -1;
	r->header = opts->header;
	r->keys = opts->keys;
	name = opts->name ? opts->name :
	       (!path || !strcmp(path, "-")) ? "stdin" : path;
	r->name = strdup(name);
	if (!r->name) {
		free(r);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	rc = reader_start(r, path, opts->format);
	if (rc) {
		if (eb)
			*eb = r->eb;
		vec_reader_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Accessors: what open() learnt about the stream. */
size_t vec_reader_dim(const struct vec_reader *r)
{
	return r ? r->dim : 0;
}

int vec_reader_format(const struct vec_reader *r)
{
	return r ? r->format : VEC_FMT_AUTO;
}

int vec_reader_has_keys(const struct vec_reader *r)
{
	return r ? r->has_keys : 0;
}

int vec_reader_gzip(const struct vec_reader *r)
{
	return r ? r->src.gz : 0;
}

uint64_t vec_reader_count(const struct vec_reader *r)
{
	return r ? r->count : 0;
}

/*
 * The first vector of a call may wait for input; the following ones are
 * taken only if they are complete without waiting, so that a pipe feeding
 * one query at a time gets each answered at once.  A bad record after good
 * ones in the same call is kept for the next call, so the good ones are
 * not lost; after a failure every call fails the same way.
 */
int vec_reader_read(struct vec_reader *r, float *out, size_t max,
		    size_t *got, char **keys, struct vec_errbuf *eb)
{
	size_t n = 0;
	int rc;

	if (got)
		*got = 0;
	if (!r || !out || !got || max == 0)
		return vec_err(eb, VEC_E_USAGE, "vec_reader_read: bad arguments");
	while (n < max && !r->err) {
		float *v = out + n * r->dim;
		char *k = NULL;

		if (r->has_pend) {
			memcpy(v, r->pend, r->dim * sizeof *v);
			k = r->pend_key;
			r->pend_key = NULL;
			r->has_pend = 0;
			rc = IO_REC;
		} else if (r->done) {
			break;
		} else {
			rc = r->ops->next(r, v, r->has_keys && keys ? &k : NULL,
					  n == 0);
		}
		if (rc < 0) {
			r->err = rc;
			break;
		}
		if (rc == IO_EOF) {
			r->done = 1;
			break;
		}
		if (rc == IO_AGAIN)
			break;
		if (keys)
			keys[n] = k;
		else
			free(k);
		n++;
	}
	r->count += n;
	*got = n;
	if (r->err && n == 0) {
		if (eb)
			*eb = r->eb;
		return r->err;
	}
	return 0;
}
