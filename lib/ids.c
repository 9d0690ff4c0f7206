/*
 * ids.c - global vector ids: the set that keeps them distinct, the shard a
 * vector belongs to, and the reader of id streams (--ids FILE).
 *
 * An index that stores ids (section IDS, man/vec-index.5) answers with them
 * instead of the vectors' positions, so that shards of one collection,
 * searched apart, answer with ids that mean the same thing everywhere.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"

/* ---- shards -------------------------------------------------------------- */

/*
 * The shard of an id: the id through the SplitMix64 finaliser (a bijection
 * of 64-bit integers that mixes every input bit into every output bit),
 * then modulo the shard count.  Written down in vec-build(1), so that any
 * other program can split a collection the same way.
 */
uint64_t vec_id_mix(uint64_t id)
{
	uint64_t z = id + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint32_t vec_shard_of(uint64_t id, uint32_t nshards)
{
	if (nshards <= 1)
		return 0;
	return (uint32_t)(vec_id_mix(id) % nshards);
}

/* ---- the set of ids of an index ------------------------------------------ */

/*
 * Open addressing with linear probing over a power-of-two table, at most
 * half full.  UINT64_MAX, which no stored id may be, marks a free slot.
 */
static int idset_grow(struct vec_idset *s, uint64_t want)
{
	uint64_t cap = s->cap ? s->cap : 1024, *t;

	while (cap < 2 * want)
		cap *= 2;
	if (cap == s->cap)
		return VEC_OK;
	if (cap > SIZE_MAX / sizeof *t)
		return VEC_E_NOMEM;
	t = malloc((size_t)cap * sizeof *t);
	if (!t)
		return VEC_E_NOMEM;
	memset(t, 0xff, (size_t)cap * sizeof *t);
	for (uint64_t i = 0; i < s->cap; i++) {
		uint64_t v = s->slot[i], h;
		if (v == UINT64_MAX)
			continue;
		for (h = vec_id_mix(v) & (cap - 1); t[h] != UINT64_MAX; h = (h + 1) & (cap - 1))
			;
		t[h] = v;
	}
	free(s->slot);
	s->slot = t;
	s->cap = cap;
	return VEC_OK;
}

int vec_idset_reserve(struct vec_idset *s, uint64_t n)
{
	return idset_grow(s, s->len + n);
}

int vec_idset_has(const struct vec_idset *s, uint64_t id)
{
	if (!s->cap)
		return 0;
	for (uint64_t h = vec_id_mix(id) & (s->cap - 1); s->slot[h] != UINT64_MAX;
	     h = (h + 1) & (s->cap - 1))
		if (s->slot[h] == id)
			return 1;
	return 0;
}

int vec_idset_insert(struct vec_idset *s, uint64_t id)
{
	uint64_t h;

	if (2 * (s->len + 1) > s->cap && idset_grow(s, s->len + 1))
		return VEC_E_NOMEM;
	for (h = vec_id_mix(id) & (s->cap - 1); s->slot[h] != UINT64_MAX;
	     h = (h + 1) & (s->cap - 1))
		if (s->slot[h] == id)
			return 1;
	s->slot[h] = id;
	s->len++;
	return 0;
}

void vec_idset_free(struct vec_idset *s)
{
	free(s->slot);
	memset(s, 0, sizeof *s);
}

/* ---- id streams ---------------------------------------------------------- */

struct vec_id_reader {
	gzFile gz;
	char *name;
	int text;          /* 1: decimal text, one id a line; 0: ivecs */
	uint64_t count;    /* ids returned so far */
	uint64_t line;     /* text: lines read */
};

int vec_id_reader_open(struct vec_id_reader **out, const char *path,
		       struct vec_errbuf *eb)
{
	struct vec_id_reader *r;
	int c, stdin_ = !path || !strcmp(path, "-");

	*out = NULL;
	r = calloc(1, sizeof *r);
	if (!r)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	r->name = strdup(stdin_ ? "stdin" : path);
	r->gz = stdin_ ? gzdopen(dup(0), "rb") : gzopen(path, "rb");
	if (!r->name || !r->gz) {
		int e = errno;
		vec_id_reader_close(r);
		return vec_err(eb, VEC_E_IO, "%s: %s", stdin_ ? "stdin" : path,
			       e ? strerror(e) : "cannot open");
	}
	/* ivecs records of dimension 1 start with the bytes 01 00 00 00;
	 * text starts with a digit, a sign or white space. */
	c = gzgetc(r->gz);
	if (c != -1)
		gzungetc(c, r->gz);
	r->text = c != 1;
	*out = r;
	return VEC_OK;
}

void vec_id_reader_close(struct vec_id_reader *r)
{
	if (!r)
		return;
	if (r->gz)
		gzclose(r->gz);
	free(r->name);
	free(r);
}

const char *vec_id_reader_name(const struct vec_id_reader *r)
{
	return r->name;
}

/* One text line into buf; 0 at the end of the stream. */
static int read_line(struct vec_id_reader *r, char *buf, size_t len,
		     struct vec_errbuf *eb)
{
	size_t n;

	if (!gzgets(r->gz, buf, (int)len)) {
		int e;
		const char *m = gzerror(r->gz, &e);
		if (e != Z_OK && e != Z_BUF_ERROR)
			return vec_err(eb, VEC_E_IO, "%s: %s", r->name,
				       e == Z_ERRNO ? strerror(errno) : m);
		return 0;
	}
	r->line++;
	n = strlen(buf);
	if (n == len - 1 && buf[n - 1] != '\n' && !gzeof(r->gz))
		return vec_err(eb, VEC_E_FORMAT, "%s: line %llu: too long for an id",
			       r->name, (unsigned long long)r->line);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
		     buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	return 1;
}

int vec_id_reader_read(struct vec_id_reader *r, uint64_t *ids, size_t max,
		       size_t *got, struct vec_errbuf *eb)
{
	size_t n = 0;
	int rc;

	*got = 0;
	while (n < max) {
		if (r->text) {
			char buf[128], *p;
			if ((rc = read_line(r, buf, sizeof buf, eb)) < 0)
				return rc;
			if (rc == 0)
				break;
			for (p = buf; *p == ' ' || *p == '\t'; p++)
				;
			if (*p == '\0')
				return vec_err(eb, VEC_E_FORMAT,
					       "%s: line %llu: empty line, expected an id",
					       r->name, (unsigned long long)r->line);
			if (vec_parse_u64(p, 0, UINT64_MAX - 1, &ids[n]))
				return vec_err(eb, VEC_E_FORMAT,
					       "%s: line %llu: '%.40s' is not an id (an unsigned integer below 2^64-1)",
					       r->name, (unsigned long long)r->line, p);
		} else {
			uint8_t rec[8];
			int k = gzread(r->gz, rec, sizeof rec);
			int32_t v;
			if (k < 0) {
				int e;
				const char *m = gzerror(r->gz, &e);
				return vec_err(eb, VEC_E_IO, "%s: %s", r->name,
					       e == Z_ERRNO ? strerror(errno) : m);
			}
			if (k == 0)
				break;
			if (k != (int)sizeof rec)
				return vec_err(eb, VEC_E_FORMAT,
					       "%s: id %llu: truncated ivecs record",
					       r->name, (unsigned long long)r->count + 1);
			if (vec_get_le32(rec) != 1)
				return vec_err(eb, VEC_E_FORMAT,
					       "%s: id %llu: ivecs record of dimension %d, expected 1",
					       r->name, (unsigned long long)r->count + 1,
					       (int)vec_get_le32(rec));
			v = (int32_t)vec_get_le32(rec + 4);
			if (v < 0)
				return vec_err(eb, VEC_E_FORMAT,
					       "%s: id %llu: negative id %d",
					       r->name, (unsigned long long)r->count + 1, v);
			ids[n] = (uint64_t)v;
		}
		n++;
		r->count++;
	}
	*got = n;
	return VEC_OK;
}
