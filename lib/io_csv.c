/*
 * io_csv.c - CSV and TSV: one vector a line, an optional header line and an
 * optional leading key column.
 *
 * Lines end in LF or CRLF; the last newline is optional.  A field is a
 * number as strtof() reads it, with spaces around it allowed; NaN and
 * infinities are refused.  A field that starts with '"' is quoted: it ends
 * at the next lone '"', and "" inside stands for one quote, so keys may
 * hold separators, quotes and newlines (as vec_write_csv() writes them).
 * Blank lines are refused, except at the very end of the input.
 *
 * Detection, when asked for (-1):
 *  - header: line 1 is a header if none of its fields is a number, or if
 *    its fields 2..n are not numbers and line 2 looks like "key,num,num...";
 *  - keys: the first data line has a non-numeric first field and numbers
 *    in all the others (and at least two fields).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

struct io_csv {
	char sep;
	uint64_t line;       /* number of the next line to read (1-based) */
	uint64_t rec_line;   /* line where the current record starts */
	uint64_t blank_line; /* first blank line not yet followed by data */

	/* Record scanner, resumable across reads. */
	size_t scan;         /* bytes of the record already scanned */
	int inq;             /* inside a quoted field */
	int fstart;          /* at the start of a field */
	int quoted;          /* the current field started with a quote */
	uint64_t qnl;        /* newlines inside quotes so far */

	/* The current record, split: NUL-terminated fields in text. */
	char *text;
	size_t text_cap;
	size_t *off;
	size_t nf, off_cap;
	int have;            /* start() left a split record for next() */
};

/* Number parse: 0 a finite number, 1 not a number, 2 NaN, 3 infinite. */
static int parse_num(const char *s, float *v)
{
	char *end;
	float f;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return 1;
	errno = 0;
	f = strtof(s, &end);
	if (end == s)
		return 1;
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end)
		return 1;
	*v = f;
	if (isnan(f))
		return 2;
	if (isinf(f))
		return 3;
	return 0;
}

/* For header and key detection: NaN and inf count as numbers here, so
 * that they are reported as bad values rather than taken for names. */
static int is_num(const char *s)
{
	float f;

	return parse_num(s, &f) != 1;
}

/* Field i of the split record, NUL-terminated. */
static const char *field(const struct io_csv *c, size_t i)
{
	return c->text + c->off[i];
}

/*
 * Find the end of the next record in the buffer, waiting for bytes if
 * block.  On IO_REC, *len is the record's length without its line end and
 * *used the bytes to consume.  Nothing is consumed here.
 */
static int find_record(struct vec_reader *r, int block, size_t *len,
		       size_t *used)
{
	struct io_csv *c = r->csv;
	const unsigned char *p;
	size_t n, i;
	int rc;

	for (;;) {
		p = io_data(r);
		n = io_avail(r);
		for (i = c->scan; i < n; i++) {
			unsigned char ch = p[i];

			if (c->inq) {
				if (ch == '"')
					c->inq = 0;
				else if (ch == '\n')
					c->qnl++;
				continue;
			}
			if (ch == '\n')
				break;
			if (ch == '"' && (c->fstart || c->quoted)) {
				c->inq = 1;
				c->quoted = 1;
				c->fstart = 0;
			} else if (ch == (unsigned char)c->sep) {
				c->fstart = 1;
				c->quoted = 0;
			} else {
				c->fstart = 0;
			}
		}
		c->scan = i;
		if (i < n) {
			*len = i;
			*used = i + 1;
			break;
		}
		if (n > IO_LINE_MAX)
			return vec_err(&r->eb, VEC_E_FORMAT, "%s:%llu: line too long",
				       r->name, (unsigned long long)c->line);
		if (r->src.eof) {
			if (n == 0)
				return IO_EOF;
			if (c->inq)
				return vec_err(&r->eb, VEC_E_FORMAT,
					       "%s:%llu: unterminated quoted field",
					       r->name, (unsigned long long)c->line);
			*len = *used = n;
			break;
		}
		rc = io_fill(r, n + 1, block);
		if (rc)
			return rc;
		if (io_avail(r) == n && !r->src.eof)
			return IO_AGAIN;
	}
	if (*len > IO_LINE_MAX)
		return vec_err(&r->eb, VEC_E_FORMAT, "%s:%llu: line too long",
			       r->name, (unsigned long long)c->line);
	if (*len > 0 && io_data(r)[*len - 1] == '\r')
		(*len)--;
	c->rec_line = c->line;
	c->line += 1 + c->qnl;
	c->scan = 0;
	c->inq = c->quoted = 0;
	c->fstart = 1;
	c->qnl = 0;
	return IO_REC;
}

/* Split p[0..len) into c->text / c->off, unquoting quoted fields. */
static int split(struct vec_reader *r, const unsigned char *p, size_t len)
{
	struct io_csv *c = r->csv;
	size_t i = 0, t = 0;

	if (c->text_cap < len + 1) {
		char *nt = realloc(c->text, len + 1);

		if (!nt)
			return vec_err(&r->eb, VEC_E_NOMEM, "%s: out of memory",
				       r->name);
		c->text = nt;
		c->text_cap = len + 1;
	}
	c->nf = 0;
	for (;;) {
		if (c->nf == c->off_cap) {
			size_t cap = c->off_cap ? c->off_cap * 2 : 64;
			size_t *no;

			if (c->nf > VEC_DIM_MAX + 1)
				return vec_err(&r->eb, VEC_E_FORMAT,
					       "%s:%llu: too many fields (dimension must be 1..%d)",
					       r->name,
					       (unsigned long long)c->rec_line,
					       VEC_DIM_MAX);
			no = realloc(c->off, cap * sizeof *no);
			if (!no)
				return vec_err(&r->eb, VEC_E_NOMEM,
					       "%s: out of memory", r->name);
			c->off = no;
			c->off_cap = cap;
		}
		c->off[c->nf++] = t;
		if (i < len && p[i] == '"') {
			for (i++; i < len; i++) {
				if (p[i] == '"') {
					if (i + 1 < len && p[i + 1] == '"') {
						c->text[t++] = '"';
						i++;
						continue;
					}
					i++;
					break;
				}
				c->text[t++] = (char)p[i];
			}
		}
		while (i < len && p[i] != (unsigned char)c->sep)
			c->text[t++] = (char)p[i++];
		c->text[t++] = 0;
		if (i >= len)
			break;
		i++; /* the separator */
	}
	return 0;
}

/* A record with nothing but spaces (or nothing at all). */
static int blank(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != ' ')
			return 0;
	return 1;
}

/* The next non-blank record, split.  IO_REC, IO_EOF, IO_AGAIN or < 0. */
static int next_fields(struct vec_reader *r, int block)
{
	struct io_csv *c = r->csv;
	size_t len = 0, used = 0;
	int rc;

	for (;;) {
		rc = find_record(r, block, &len, &used);
		if (rc != IO_REC)
			return rc;
		if (blank(io_data(r), len)) {
			if (!c->blank_line)
				c->blank_line = c->rec_line;
			io_consume(r, used);
			continue;
		}
		if (c->blank_line)
			return vec_err(&r->eb, VEC_E_FORMAT, "%s:%llu: empty line",
				       r->name, (unsigned long long)c->blank_line);
		rc = split(r, io_data(r), len);
		if (rc)
			return rc;
		io_consume(r, used);
		return IO_REC;
	}
}

/* One wording for a non-numeric field, wherever it is found. */
static int not_a_number(struct vec_reader *r, uint64_t line, size_t f,
			const char *s)
{
	return vec_err(&r->eb, VEC_E_FORMAT,
		       "%s:%llu: field %zu: not a number '%.40s'", r->name,
		       (unsigned long long)line, f, s);
}

/* The split record -> out (and the key); checks count and values. */
static int convert(struct vec_reader *r, float *out, char **key)
{
	struct io_csv *c = r->csv;
	size_t kf = r->has_keys ? 1 : 0, j;
	unsigned long long l = c->rec_line;

	if (c->nf != r->dim + kf)
		return vec_err(&r->eb, VEC_E_FORMAT, "%s:%llu: %zu fields, expected %zu",
			       r->name, l, c->nf - kf, r->dim);
	for (j = 0; j < r->dim; j++) {
		switch (parse_num(field(c, kf + j), &out[j])) {
		case 1:
			return not_a_number(r, l, kf + j + 1, field(c, kf + j));
		case 2:
			return vec_err(&r->eb, VEC_E_FORMAT, "%s:%llu: field %zu: NaN",
				       r->name, l, kf + j + 1);
		case 3:
			return vec_err(&r->eb, VEC_E_FORMAT,
				       "%s:%llu: field %zu: infinite value", r->name,
				       l, kf + j + 1);
		}
	}
	if (key) {
		*key = NULL;
		if (kf) {
			*key = strdup(field(c, 0));
			if (!*key)
				return vec_err(&r->eb, VEC_E_NOMEM,
					       "%s: out of memory", r->name);
		}
	}
	r->parsed++;
	return IO_REC;
}

/* Fields i..nf-1 all (non-)numeric. */
static int all_from(const struct io_csv *c, size_t i, int numeric)
{
	for (; i < c->nf; i++)
		if (is_num(field(c, i)) != numeric)
			return 0;
	return 1;
}

/*
 * Read up to the first data line, deciding on the header and the key
 * column, which fixes the dimension.
 */
static int csv_start(struct vec_reader *r)
{
	struct io_csv *c;
	int rc, header;
	char *f2 = NULL;
	uint64_t l1;

	c = calloc(1, sizeof *c);
	if (!c)
		return vec_err(&r->eb, VEC_E_NOMEM, "%s: out of memory", r->name);
	r->csv = c;
	c->sep = r->format == VEC_FMT_TSV ? '\t' : ',';
	c->line = 1;
	c->fstart = 1;
	rc = next_fields(r, 1);
	if (rc != IO_REC)
		return rc;
	header = r->header;
	if (header < 0) {
		header = 0;
		if (all_from(c, 0, 0)) {
			header = 1;
		} else if (c->nf >= 2 && all_from(c, 1, 0)) {
			/* "5,a,b" is no data line: a header if line 2 has keys. */
			l1 = c->rec_line;
			f2 = strdup(field(c, 1));
			if (!f2)
				return vec_err(&r->eb, VEC_E_NOMEM,
					       "%s: out of memory", r->name);
			rc = next_fields(r, 1);
			if (rc == IO_REC && c->nf >= 2 && !is_num(field(c, 0)) &&
			    all_from(c, 1, 1)) {
				free(f2);
				goto data;
			}
			rc = rc < 0 ? rc : not_a_number(r, l1, 2, f2);
			free(f2);
			return rc;
		}
	}
	if (header) {
		rc = next_fields(r, 1);
		if (rc != IO_REC)
			return rc;
	}
data:
	if (r->keys >= 0)
		r->has_keys = r->keys > 0;
	else
		r->has_keys = c->nf >= 2 && !is_num(field(c, 0)) &&
			      all_from(c, 1, 1);
	if (c->nf - (size_t)r->has_keys < 1)
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s:%llu: no vector fields after the key",
			       r->name, (unsigned long long)c->rec_line);
	r->dim = c->nf - (size_t)r->has_keys;
	if (r->dim > VEC_DIM_MAX)
		return vec_err(&r->eb, VEC_E_FORMAT,
			       "%s:%llu: dimension %zu (must be 1..%d)", r->name,
			       (unsigned long long)c->rec_line, r->dim,
			       VEC_DIM_MAX);
	c->have = 1;
	return IO_REC;
}

/* The record start() already split comes first. */
static int csv_next(struct vec_reader *r, float *out, char **key, int block)
{
	struct io_csv *c = r->csv;
	int rc;

	if (c->have) {
		c->have = 0;
	} else {
		rc = next_fields(r, block);
		if (rc != IO_REC)
			return rc;
	}
	return convert(r, out, key);
}

/* Release the parser state with the reader. */
static void csv_free(struct vec_reader *r)
{
	if (!r->csv)
		return;
	free(r->csv->text);
	free(r->csv->off);
	free(r->csv);
	r->csv = NULL;
}

const struct io_ops io_csv_ops = { csv_start, csv_next, csv_free };
