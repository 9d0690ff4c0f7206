/*
 * io_internal.h - private to the vector stream readers (io*.c).
 *
 * A reader is a byte source (io.c: a file descriptor, optionally unwrapped
 * from gzip) plus a format parser (io_fvecs.c, io_csv.c, io_npy.c) reached
 * through a small table of functions.
 *
 * Invariants:
 *  - src.buf[src.pos .. src.len) holds decoded bytes not yet consumed; a
 *    parser may look at them through io_data()/io_avail(), but the pointer is
 *    stale after the next io_fill(), which may move or grow the buffer.
 *  - io_fill() reads only while fewer than `need` bytes are buffered, so a
 *    reader never waits for bytes beyond the record it is completing.
 *  - Every message is written into r->eb; the public calls copy it out.
 */
#ifndef VEC_IO_INTERNAL_H
#define VEC_IO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "internal.h"

/* What a parser's next() reports, besides a negative enum vec_err. */
#define IO_EOF 0   /* no more records */
#define IO_REC 1   /* one record was stored */
#define IO_AGAIN 2 /* not blocking: the record is not complete yet */

/* Longest CSV/TSV record accepted. */
#define IO_LINE_MAX (16u << 20)

struct io_src {
	int fd;
	int close_fd;       /* we opened it (not stdin) */
	int regular;        /* a regular file: a read never waits */
	int64_t size;       /* bytes left in a regular file at open, else -1 */
	int eof;            /* nothing will follow buf[len] */
	unsigned char *buf; /* decoded bytes */
	size_t pos, len, cap;

	/* gzip unwrapping (gz != 0: zs is initialised) */
	int gz;
	int gz_between;     /* a member ended; another may follow */
	int gz_pending;     /* zlib may hold output not yet delivered */
	int raw_eof;        /* read(2) reported end of file */
	int gz_err;         /* failure to report once the bytes before it are used */
	z_stream zs;
	unsigned char *raw; /* compressed input, zs.next_in points into it */
	size_t raw_cap;
};

struct vec_reader;

/* One format: start() learns the dimension, next() parses one record. */
struct io_ops {
	int (*start)(struct vec_reader *r);
	/* Store one record into out (dim floats) and, if key != NULL, its
	 * malloc'd key.  block == 0: return IO_AGAIN rather than wait. */
	int (*next)(struct vec_reader *r, float *out, char **key, int block);
	void (*free)(struct vec_reader *r);
};

struct io_csv; /* io_csv.c */

struct vec_reader {
	struct io_src src;
	char *name;             /* for messages */
	int format;             /* enum vec_format, as detected */
	int header, keys;       /* CSV/TSV options (-1 detect) */
	size_t dim;
	int has_keys;
	uint64_t count;         /* records handed to the caller */
	uint64_t parsed;        /* records parsed so far */
	const struct io_ops *ops;

	float *pend;            /* the first record, read by open */
	char *pend_key;
	int has_pend;

	int done;               /* end of input was reached */
	int err;                /* sticky failure, 0 if none */
	struct vec_errbuf eb;   /* where messages are built */

	/* *vecs */
	size_t comp;            /* bytes per component: 1 or 4 */

	/* npy */
	int npy_kind;           /* NPY_F4, ... (io_npy.c) */
	int npy_swap;           /* big-endian data */
	uint64_t npy_left;      /* rows not yet read */

	struct io_csv *csv;
};

extern const struct io_ops io_fvecs_ops, io_bvecs_ops, io_ivecs_ops;
extern const struct io_ops io_csv_ops, io_npy_ops;

/* Buffer at least need decoded bytes, or fewer at end of input (src.eof)
 * or, when block == 0, when more would have to be waited for.  0 or < 0. */
int io_fill(struct vec_reader *r, size_t need, int block);

/* Bytes buffered and not consumed. */
static inline size_t io_avail(const struct vec_reader *r)
{
	return r->src.len - r->src.pos;
}

/* The first unconsumed byte; stale after io_fill(). */
static inline const unsigned char *io_data(const struct vec_reader *r)
{
	return r->src.buf + r->src.pos;
}

/* Drop n bytes once a record is parsed (rewinding an empty buffer). */
static inline void io_consume(struct vec_reader *r, size_t n)
{
	r->src.pos += n;
	if (r->src.pos == r->src.len)
		r->src.pos = r->src.len = 0;
}

/* Reject NaN and infinities with the record named: 0 or VEC_E_FORMAT. */
int io_check_finite(struct vec_reader *r, const float *v, size_t dim);

#endif
