/*
 * merge.c - several indexes searched as one, and the merge of the result
 * rows that `vec-query --mergeable` writes.
 *
 * Both end in the same step (merge_cands): the candidates of a query, a
 * shard's answer or a run's rows each, are sorted by id so that each id is
 * kept once, at its best score, then by score and id, and cut to k.  Scores
 * are never recomputed: a merged score is the float a shard returned, or
 * the one its row printed with %.9g, which reads back to the same float, so
 * that merged rows print byte-identical to the answer of a single index.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "internal.h"

/* ---- candidates and their order ---- */

struct cand {
	uint64_t query;  /* the query's number (rows), or its place (shards) */
	uint64_t id;
	float s;         /* the score, smaller is better: ip and cos negated */
	uint32_t src;    /* shard or run: of two equal rows, the first's wins */
	const char *key;
};

/* Scores in a total order: NaN (never expected) after everything. */
static int score_cmp(float a, float b)
{
	if (a < b)
		return -1;
	if (a > b)
		return 1;
	if (a == b)
		return 0;
	return isnan(a) - isnan(b);
}

/* Query, id, score, source: the best copy of an id first. */
static int cand_by_id(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;
	int c;

	if (a->query != b->query)
		return a->query < b->query ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	if ((c = score_cmp(a->s, b->s)))
		return c;
	return a->src < b->src ? -1 : a->src > b->src;
}

/* Query, score, id: the answer's order. */
static int cand_by_score(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;
	int c;

	if (a->query != b->query)
		return a->query < b->query ? -1 : 1;
	if ((c = score_cmp(a->s, b->s)))
		return c;
	return a->id < b->id ? -1 : a->id > b->id;
}

/*
 * Turn c[0..n) into answers: per query, each id once (its best copy), best
 * first, at most k.  c is compacted in place; returns how many are kept.
 */
static size_t merge_cands(struct cand *c, size_t n, size_t k)
{
	size_t m = 0, out = 0, rank = 0;
	uint64_t cur = 0;

	if (n == 0)
		return 0;
	qsort(c, n, sizeof *c, cand_by_id);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || c[i].query != c[m - 1].query ||
		    c[i].id != c[m - 1].id)
			c[m++] = c[i];
	qsort(c, m, sizeof *c, cand_by_score);
	for (size_t i = 0; i < m; i++) {
		if (i == 0 || c[i].query != cur) {
			cur = c[i].query;
			rank = 0;
		}
		if (rank++ < k)
			c[out++] = c[i];
	}
	return out;
}

/* A score as stored in a candidate, and back. */
static float to_s(int metric, float score)
{
	return metric == VEC_METRIC_L2 ? score : -score;
}

static float from_s(int metric, float s)
{
	return metric == VEC_METRIC_L2 ? s : -s;
}

/* ---- several indexes ---- */

int vec_index_sniff(const char *path)
{
	unsigned char head[8];
	struct stat st;
	ssize_t got;
	int fd;

	if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	do
		fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return 0;
	got = pread(fd, head, sizeof head, 0);
	close(fd);
	return got == (ssize_t)sizeof head &&
	       memcmp(head, VEC_FILE_MAGIC, sizeof head) == 0;
}

/* Index i's name in messages. */
static const char *shard_name(const char *const *names, size_t i,
			      char buf[32])
{
	if (names && names[i])
		return names[i];
	snprintf(buf, 32, "index %zu", i + 1);
	return buf;
}

int vec_shards_check(const struct vec_index *const *idx,
		     const char *const *names, size_t n,
		     struct vec_errbuf *eb)
{
	struct vec_index_info first, info;
	char b0[32], bi[32];

	if (n == 0)
		return vec_err(eb, VEC_E_USAGE, "no index to search");
	vec_index_info(idx[0], &first);
	for (size_t i = 1; i < n; i++) {
		vec_index_info(idx[i], &info);
		if (info.dim != first.dim)
			return vec_err(eb, VEC_E_DIM,
				       "%s: dimension %zu, expected %zu (%s's)",
				       shard_name(names, i, bi), info.dim,
				       first.dim, shard_name(names, 0, b0));
		if (info.metric != first.metric)
			return vec_err(eb, VEC_E_USAGE,
				       "%s: metric %s, expected %s (%s's)",
				       shard_name(names, i, bi),
				       vec_metric_name(info.metric),
				       vec_metric_name(first.metric),
				       shard_name(names, 0, b0));
	}
	return VEC_OK;
}

/* At most this many answer entries (shards x queries x k) at a time. */
#define SHARD_ENTRIES (1u << 20)

struct shards_job {
	const struct vec_index *const *idx;
	size_t n, nq, k;
	const float *queries;
	struct vec_search_opts so;  /* the caller's (threads: in all) */
	int threads, metric;
	uint64_t *ids;              /* n * nq * k: each shard's answer */
	float *scores;
	const char **keys;          /* the same, or NULL */
	uint64_t *scanned;          /* n */
	int *rc;                    /* n */
	struct vec_errbuf *eb;      /* n */
	struct cand *scratch;       /* n * k per merging worker */
	uint64_t *out_ids;          /* the caller's nq * k */
	float *out_scores;
	const char **out_keys;
};

/* Search shard i with its share of the threads. */
static void shard_task(void *ctx, size_t i, int worker)
{
	struct shards_job *j = ctx;
	struct vec_search_opts so = j->so;
	size_t off = i * j->nq * j->k;

	(void)worker;
	/* Fewer shards than threads: each runs one shard, with the threads
	 * shared out; more: each shard has one. */
	if (j->n < (size_t)j->threads)
		so.threads = j->threads / (int)j->n +
			     (i < (size_t)j->threads % j->n);
	else
		so.threads = 1;
	so.scanned = j->so.scanned ? &j->scanned[i] : NULL;
	so.keys = j->keys ? j->keys + off : NULL;
	j->rc[i] = vec_index_search(j->idx[i], j->nq, j->queries, j->k, &so,
				    j->ids + off, j->scores + off, &j->eb[i]);
}

/* Merge the shards' answers of query q. */
static void merge_task(void *ctx, size_t q, int worker)
{
	struct shards_job *j = ctx;
	struct cand *c = j->scratch + (size_t)worker * j->n * j->k;
	uint64_t *ids = j->out_ids + q * j->k;
	float *sc = j->out_scores + q * j->k;
	size_t nc = 0, got;

	for (size_t i = 0; i < j->n; i++) {
		size_t off = (i * j->nq + q) * j->k;
		for (size_t r = 0; r < j->k; r++) {
			if (j->ids[off + r] == UINT64_MAX)
				continue;
			c[nc].query = 0;
			c[nc].id = j->ids[off + r];
			c[nc].s = to_s(j->metric, j->scores[off + r]);
			c[nc].src = (uint32_t)i;
			c[nc].key = j->keys ? j->keys[off + r] : NULL;
			nc++;
		}
	}
	got = merge_cands(c, nc, j->k);
	for (size_t r = 0; r < j->k; r++) {
		ids[r] = r < got ? c[r].id : UINT64_MAX;
		sc[r] = r < got ? from_s(j->metric, c[r].s) :
		       j->metric == VEC_METRIC_L2 ? INFINITY : -INFINITY;
		if (j->out_keys)
			j->out_keys[q * j->k + r] = r < got ? c[r].key : NULL;
	}
}

/* Search and merge queries [0, nq) of a chunk; the buffers are sized. */
static int shards_chunk(struct shards_job *j, const char *const *names,
			struct vec_errbuf *eb)
{
	char b[32];

	for (size_t i = 0; i < j->n; i++)
		j->scanned[i] = 0;
	vec_pool_run(j->threads, j->n, shard_task, j);
	for (size_t i = 0; i < j->n; i++)
		if (j->rc[i])
			return vec_err(eb, j->rc[i], "%s: %s",
				       shard_name(names, i, b), j->eb[i].msg);
	if (j->so.scanned)
		for (size_t i = 0; i < j->n; i++)
			*j->so.scanned += j->scanned[i];
	vec_pool_run(j->threads, j->nq, merge_task, j);
	return VEC_OK;
}

int vec_shards_search(const struct vec_index *const *idx,
		      const char *const *names, size_t n, size_t nq,
		      const float *queries, size_t k,
		      const struct vec_search_opts *opts, uint64_t *ids,
		      float *scores, const char **keys, struct vec_errbuf *eb)
{
	static const struct vec_search_opts defaults = VEC_SEARCH_OPTS_INIT;
	struct vec_index_info info;
	struct shards_job j;
	size_t chunk, workers, dim, entries;
	int rc;

	if (!opts)
		opts = &defaults;
	if ((rc = vec_shards_check(idx, names, n, eb)))
		return rc;
	if (k == 0)
		return vec_err(eb, VEC_E_USAGE, "k must be at least 1");
	if (n == 1) {
		struct vec_search_opts so = *opts;
		so.keys = keys;
		return vec_index_search(idx[0], nq, queries, k, &so, ids, scores,
					eb);
	}
	if (nq == 0)
		return VEC_OK;
	vec_index_info(idx[0], &info);
	dim = info.dim;

	memset(&j, 0, sizeof j);
	j.idx = idx;
	j.n = n;
	j.k = k;
	j.so = *opts;
	j.threads = opts->threads > 0 ? opts->threads : vec_ncpu();
	j.metric = info.metric;
	/* Queries a chunk at a time, so that the shards' answers stay small
	 * whatever nq and k are. */
	chunk = SHARD_ENTRIES / n / k;
	if (chunk == 0)
		chunk = 1;
	if (chunk > nq)
		chunk = nq;
	workers = (size_t)j.threads < chunk ? (size_t)j.threads : chunk;
	if (n > SIZE_MAX / k || n * k > SIZE_MAX / sizeof(struct cand) /
	    (workers + chunk))
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	entries = n * chunk * k;
	j.ids = malloc(entries * sizeof *j.ids);
	j.scores = malloc(entries * sizeof *j.scores);
	j.keys = keys ? malloc(entries * sizeof *j.keys) : NULL;
	j.scanned = calloc(n, sizeof *j.scanned);
	j.rc = calloc(n, sizeof *j.rc);
	j.eb = calloc(n, sizeof *j.eb);
	j.scratch = malloc(workers * n * k * sizeof *j.scratch);
	if (!j.ids || !j.scores || (keys && !j.keys) || !j.scanned || !j.rc ||
	    !j.eb || !j.scratch) {
		rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
		goto done;
	}
	for (size_t q0 = 0; q0 < nq; q0 += chunk) {
		j.nq = nq - q0 < chunk ? nq - q0 : chunk;
		j.queries = queries + q0 * dim;
		j.out_ids = ids + q0 * k;
		j.out_scores = scores + q0 * k;
		j.out_keys = keys ? keys + q0 * k : NULL;
		if ((rc = shards_chunk(&j, names, eb)))
			break;
	}
done:
	free(j.ids);
	free(j.scores);
	free(j.keys);
	free(j.scanned);
	free(j.rc);
	free(j.eb);
	free(j.scratch);
	return rc;
}

/* ---- the rows of vec-query --mergeable ---- */

/* Keys, copied into blocks that never move (the rows point into them). */
struct key_block {
	struct key_block *next;
	size_t used, cap;
	char data[];
};

struct vec_merge {
	struct cand *rows;
	size_t n, cap;
	struct key_block *keys;
	uint64_t runs;
	size_t k;             /* the runs' (0: no run yet) */
	int metric, format, has_keys;
	char *first;          /* where the first run began ("r.tsv:1") */
	/* after vec_merge_finish */
	int finished;
	size_t out_k, nq;
	size_t *qstart;       /* nq + 1: the rows of the i-th answered query */
};

/* The state of one stream while it is read. */
struct rd {
	struct vec_merge *m;
	FILE *f;
	const char *name;
	char *line;           /* getline's buffer */
	size_t line_cap;
	uint64_t lineno;
	char *kb;             /* a quoted CSV key, unquoted */
	size_t kb_len, kb_cap;
	/* the current run */
	int in_run, format, keys;
	uint32_t src;
	int have_row;
	uint64_t query, rank;
	float s;
};

int vec_merge_new(struct vec_merge **out, struct vec_errbuf *eb)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	return VEC_OK;
}

void vec_merge_free(struct vec_merge *m)
{
	if (!m)
		return;
	while (m->keys) {
		struct key_block *b = m->keys;
		m->keys = b->next;
		free(b);
	}
	free(m->rows);
	free(m->first);
	free(m->qstart);
	free(m);
}

/* A copy of key[0..len) that stays put; NULL for the empty key. */
static int key_store(struct vec_merge *m, const char *key, size_t len,
		     const char **out, struct vec_errbuf *eb)
{
	struct key_block *b = m->keys;

	*out = NULL;
	if (len == 0)
		return VEC_OK;
	if (!b || b->cap - b->used < len + 1) {
		size_t cap = len + 1 > 65536 ? len + 1 : 65536;
		b = malloc(sizeof *b + cap);
		if (!b)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		b->next = m->keys;
		b->used = 0;
		b->cap = cap;
		m->keys = b;
	}
	memcpy(b->data + b->used, key, len);
	b->data[b->used + len] = '\0';
	*out = b->data + b->used;
	b->used += len + 1;
	return VEC_OK;
}

/* Read the next line; 0 at the end.  The newline is required and cut. */
static int next_line(struct rd *r, size_t *len, struct vec_errbuf *eb)
{
	ssize_t got;

	errno = 0;
	got = getline(&r->line, &r->line_cap, r->f);
	if (got < 0) {
		if (ferror(r->f))
			return vec_err(eb, VEC_E_IO, "%s: read error: %s", r->name,
				       strerror(errno ? errno : EIO));
		if (errno == ENOMEM)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		*len = 0;
		return 0;
	}
	r->lineno++;
	if (got == 0 || r->line[got - 1] != '\n')
		return vec_err(eb, VEC_E_FORMAT,
			       "%s:%llu: incomplete last line (no newline at the end)",
			       r->name, (unsigned long long)r->lineno);
	r->line[--got] = '\0';
	if (memchr(r->line, '\0', (size_t)got))
		return vec_err(eb, VEC_E_FORMAT, "%s:%llu: a NUL byte in the line",
			       r->name, (unsigned long long)r->lineno);
	*len = (size_t)got;
	return 1;
}

/* Consume the literal lit at *p. */
static int eat(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return 0;
	*p += n;
	return 1;
}

/* An unsigned decimal of s[0..len): digits only, no overflow. */
static int parse_uint(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*out = v;
	return 1;
}

#define DESC_FORM "\"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no\""

/* A description line: begins a run. */
static int read_desc(struct rd *r, const char *line, struct vec_errbuf *eb)
{
	static const char *const metrics[] = { "l2", "ip", "cos" };
	struct vec_merge *m = r->m;
	const char *p = line, *e;
	uint64_t k;
	int metric = 0, format, keys;
	char where[300];

	if (!eat(&p, "#vec-query k="))
		goto bad;
	for (e = p; *e >= '0' && *e <= '9'; e++)
		;
	if (!parse_uint(p, (size_t)(e - p), &k) || k == 0 || k > 100000 ||
	    (*p == '0'))
		goto bad;
	p = e;
	if (!eat(&p, " metric="))
		goto bad;
	for (int i = 0; i < 3 && !metric; i++)
		if (eat(&p, metrics[i]))
			metric = vec_metric_parse(metrics[i]);
	if (!metric)
		goto bad;
	if (eat(&p, " format=tsv"))
		format = VEC_FMT_TSV;
	else if (eat(&p, " format=csv"))
		format = VEC_FMT_CSV;
	else
		goto bad;
	if (eat(&p, " keys=yes"))
		keys = 1;
	else if (eat(&p, " keys=no"))
		keys = 0;
	else
		goto bad;
	if (*p)
		goto bad;

	snprintf(where, sizeof where, "%s:%llu", r->name,
		 (unsigned long long)r->lineno);
	if (m->runs == 0) {
		m->k = (size_t)k;
		m->metric = metric;
		m->format = format;
		m->first = strdup(where);
		if (!m->first)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
	} else if ((size_t)k != m->k) {
		return vec_err(eb, VEC_E_FORMAT,
			       "%s: k=%llu, expected k=%zu (as the first run, %s)",
			       where, (unsigned long long)k, m->k, m->first);
	} else if (metric != m->metric) {
		return vec_err(eb, VEC_E_FORMAT,
			       "%s: metric=%s, expected metric=%s (as the first run, %s)",
			       where, vec_metric_name(metric),
			       vec_metric_name(m->metric), m->first);
	}
	if (m->runs >= UINT32_MAX)
		return vec_err(eb, VEC_E_FORMAT, "%s: too many runs", where);
	r->src = (uint32_t)m->runs++;
	m->has_keys |= keys;
	r->in_run = 1;
	r->format = format;
	r->keys = keys;
	r->have_row = 0;
	return VEC_OK;
bad:
	return vec_err(eb, VEC_E_FORMAT, "%s:%llu: bad description line (expected "
		       DESC_FORM ")", r->name, (unsigned long long)r->lineno);
}

/* Append c to the unquoted key. */
static int kb_put(struct rd *r, char c)
{
	if (r->kb_len == r->kb_cap) {
		size_t cap = r->kb_cap ? 2 * r->kb_cap : 256;
		char *p = realloc(r->kb, cap);
		if (!p)
			return 0;
		r->kb = p;
		r->kb_cap = cap;
	}
	r->kb[r->kb_len++] = c;
	return 1;
}

/*
 * A quoted CSV key beginning at p (past its opening quote), continued on
 * the next lines while the quote is open (a newline in the key); the
 * unquoted key is left in r->kb.
 */
static int read_quoted(struct rd *r, const char *p, uint64_t row,
		       struct vec_errbuf *eb)
{
	size_t len;
	int rc;

	r->kb_len = 0;
	for (;;) {
		for (; *p; p++) {
			if (*p == '"' && p[1] == '"') {
				p++;
			} else if (*p == '"') {
				if (p[1])
					return vec_err(eb, VEC_E_FORMAT,
						       "%s:%llu: malformed key (text after its closing quote)",
						       r->name, (unsigned long long)r->lineno);
				return VEC_OK;
			}
			if (!kb_put(r, *p))
				return vec_err(eb, VEC_E_NOMEM, "out of memory");
		}
		if (!kb_put(r, '\n'))
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		if ((rc = next_line(r, &len, eb)) < 0)
			return rc;
		if (rc == 0)
			return vec_err(eb, VEC_E_FORMAT,
				       "%s:%llu: the key's quote is never closed",
				       r->name, (unsigned long long)row);
		p = r->line;
	}
}

/* Fields separated by sep in s (a count for messages). */
static size_t count_fields(const char *s, char sep)
{
	size_t n = 1;

	for (; *s; s++)
		n += *s == sep;
	return n;
}

/* One row of the current run. */
static int read_row(struct rd *r, struct vec_errbuf *eb)
{
	struct vec_merge *m = r->m;
	char sep = r->format == VEC_FMT_CSV ? ',' : '\t';
	size_t want = r->keys ? 5 : 4;
	char *f[4], *p = r->line, *end, *key = NULL;
	uint64_t query, rank, id, row = r->lineno;
	size_t nf = count_fields(r->line, sep);
	const char *stored;
	float score, s;
	int rc;

	if (!r->in_run)
		return vec_err(eb, VEC_E_FORMAT,
			       "%s:%llu: a row before any description line (expected "
			       DESC_FORM ", as vec-query --mergeable writes)",
			       r->name, (unsigned long long)row);
	/* query, rank, id, score; then the key, all of the rest. */
	for (int i = 0; i < 4; i++) {
		f[i] = p;
		end = strchr(p, sep);
		if (i < 3 || r->keys) {
			if (!end)
				goto fields;
			*end = '\0';
			p = end + 1;
		} else if (end) {
			goto fields;
		}
	}
	if (r->keys) {
		key = p;
		if (r->format == VEC_FMT_TSV) {
			if (strchr(key, '\t'))
				goto fields;
		} else if (*key != '"') {
			if (strchr(key, ','))
				goto fields;
			if (strchr(key, '"'))
				return vec_err(eb, VEC_E_FORMAT,
					       "%s:%llu: malformed key (a quote in an unquoted key)",
					       r->name, (unsigned long long)row);
		}
	}
	if (!parse_uint(f[0], strlen(f[0]), &query))
		return vec_err(eb, VEC_E_FORMAT, "%s:%llu: bad query number '%s'",
			       r->name, (unsigned long long)row, f[0]);
	if (!parse_uint(f[1], strlen(f[1]), &rank))
		return vec_err(eb, VEC_E_FORMAT, "%s:%llu: bad rank '%s'",
			       r->name, (unsigned long long)row, f[1]);
	if (!parse_uint(f[2], strlen(f[2]), &id) || id == UINT64_MAX)
		return vec_err(eb, VEC_E_FORMAT, "%s:%llu: bad id '%s'",
			       r->name, (unsigned long long)row, f[2]);
	errno = 0;
	score = strtof(f[3], &end);
	if (!*f[3] || *end || (f[3][0] != '-' && f[3][0] != '.' &&
	    f[3][0] != 'i' && (f[3][0] < '0' || f[3][0] > '9')) ||
	    isnan(score) || (errno == ERANGE && isinf(score)))
		return vec_err(eb, VEC_E_FORMAT, "%s:%llu: bad score '%s'",
			       r->name, (unsigned long long)row, f[3]);
	s = to_s(m->metric, score);

	/* The order vec-query writes. */
	if (r->have_row && query < r->query)
		return vec_err(eb, VEC_E_FORMAT,
			       "%s:%llu: query %llu after query %llu (query numbers go backwards)",
			       r->name, (unsigned long long)row,
			       (unsigned long long)query,
			       (unsigned long long)r->query);
	if (r->have_row && query == r->query) {
		if (rank != r->rank + 1)
			return vec_err(eb, VEC_E_FORMAT,
				       "%s:%llu: rank %llu after rank %llu of query %llu (ranks out of order)",
				       r->name, (unsigned long long)row,
				       (unsigned long long)rank,
				       (unsigned long long)r->rank,
				       (unsigned long long)query);
		if (score_cmp(s, r->s) < 0)
			return vec_err(eb, VEC_E_FORMAT,
				       "%s:%llu: score %s is better than rank %llu's (scores out of order)",
				       r->name, (unsigned long long)row, f[3],
				       (unsigned long long)r->rank);
	} else if (rank != 1) {
		return vec_err(eb, VEC_E_FORMAT,
			       "%s:%llu: query %llu begins at rank %llu (ranks out of order)",
			       r->name, (unsigned long long)row,
			       (unsigned long long)query,
			       (unsigned long long)rank);
	}
	if (rank > m->k)
		return vec_err(eb, VEC_E_FORMAT, "%s:%llu: rank %llu, more than k=%zu",
			       r->name, (unsigned long long)row,
			       (unsigned long long)rank, m->k);
	r->have_row = 1;
	r->query = query;
	r->rank = rank;
	r->s = s;

	if (key && r->format == VEC_FMT_CSV && *key == '"') {
		if ((rc = read_quoted(r, key + 1, row, eb)))
			return rc;
		rc = key_store(m, r->kb, r->kb_len, &stored, eb);
	} else {
		rc = key_store(m, key ? key : "", key ? strlen(key) : 0,
			       &stored, eb);
	}
	if (rc)
		return rc;
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 1024;
		struct cand *rows;
		if (cap > SIZE_MAX / sizeof *rows ||
		    !(rows = realloc(m->rows, cap * sizeof *rows)))
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		m->rows = rows;
		m->cap = cap;
	}
	m->rows[m->n].query = query;
	m->rows[m->n].id = id;
	m->rows[m->n].s = s;
	m->rows[m->n].src = r->src;
	m->rows[m->n].key = stored;
	m->n++;
	return VEC_OK;
fields:
	return vec_err(eb, VEC_E_FORMAT, "%s:%llu: %zu field%s, expected %zu (%s)",
		       r->name, (unsigned long long)row, nf, nf == 1 ? "" : "s",
		       want,
		       r->keys ? "query, rank, id, score, key" :
				 "query, rank, id, score");
}

int vec_merge_read_stream(struct vec_merge *m, FILE *f, const char *name,
			  struct vec_errbuf *eb)
{
	struct rd r;
	size_t len;
	int rc;

	if (m->finished)
		return vec_err(eb, VEC_E_USAGE, "the merge is finished already");
	memset(&r, 0, sizeof r);
	r.m = m;
	r.f = f;
	r.name = name ? name : "stdin";
	while ((rc = next_line(&r, &len, eb)) > 0) {
		if (r.line[0] == '#')
			rc = read_desc(&r, r.line, eb);
		else
			rc = read_row(&r, eb);
		if (rc)
			break;
	}
	free(r.line);
	free(r.kb);
	return rc;
}

int vec_merge_read(struct vec_merge *m, const char *path,
		   struct vec_errbuf *eb)
{
	const char *name = (!path || !strcmp(path, "-")) ? "stdin" : path;
	struct stat st;
	FILE *f;
	int rc;

	if (name == path) {
		f = fopen(path, "r");
		if (!f)
			return vec_err(eb, VEC_E_IO, "%s: cannot open: %s", name,
				       strerror(errno));
	} else {
		f = stdin;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode))
		rc = vec_err(eb, VEC_E_IO, "%s: is a directory", name);
	else
		rc = vec_merge_read_stream(m, f, name, eb);
	if (f != stdin)
		fclose(f);
	return rc;
}

int vec_merge_finish(struct vec_merge *m, size_t k, struct vec_errbuf *eb)
{
	size_t kept, nq = 0;

	if (m->finished)
		return vec_err(eb, VEC_E_USAGE, "the merge is finished already");
	if (m->runs == 0)
		return vec_err(eb, VEC_E_FORMAT,
			       "nothing to merge: no description line " DESC_FORM
			       " in the input");
	if (k == 0)
		k = m->k;
	if (k > m->k)
		return vec_err(eb, VEC_E_USAGE,
			       "k %zu is more than the runs' k=%zu", k, m->k);
	kept = merge_cands(m->rows, m->n, k);
	for (size_t i = 0; i < kept; i++)
		nq += i == 0 || m->rows[i].query != m->rows[i - 1].query;
	m->qstart = malloc((nq + 1) * sizeof *m->qstart);
	if (!m->qstart)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	nq = 0;
	for (size_t i = 0; i < kept; i++)
		if (i == 0 || m->rows[i].query != m->rows[i - 1].query)
			m->qstart[nq++] = i;
	m->qstart[nq] = kept;
	m->nq = nq;
	m->out_k = k;
	m->finished = 1;
	return VEC_OK;
}

void vec_merge_info(const struct vec_merge *m, struct vec_merge_info *info)
{
	memset(info, 0, sizeof *info);
	info->k = m->k;
	info->metric = m->metric;
	info->format = m->format;
	info->keys = m->has_keys;
	info->runs = m->runs;
	info->rows = m->n;
	info->queries = m->finished ? m->nq : 0;
}

size_t vec_merge_result(const struct vec_merge *m, size_t i, uint64_t *query,
			uint64_t *ids, float *scores, const char **keys)
{
	const struct cand *c;
	size_t got;

	if (!m->finished || i >= m->nq) {
		*query = UINT64_MAX;
		got = 0;
		c = NULL;
	} else {
		c = m->rows + m->qstart[i];
		got = m->qstart[i + 1] - m->qstart[i];
		*query = c->query;
	}
	for (size_t r = 0; r < m->out_k; r++) {
		ids[r] = r < got ? c[r].id : UINT64_MAX;
		scores[r] = r < got ? from_s(m->metric, c[r].s) :
			    m->metric == VEC_METRIC_L2 ? INFINITY : -INFINITY;
		if (keys)
			keys[r] = r < got ? c[r].key : NULL;
	}
	return got;
}
