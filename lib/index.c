/*
 * index.c - the vec_index handle: create, open (mmap, in place), add,
 * search, save, verify.
 *
 * An index is either a view of a mapped file (vectors, norms and keys point
 * into the mapping; nothing is copied at open) or owned memory.  The first
 * modification of a view copies it into owned memory; the file stays as it
 * was until vec_index_save() replaces it atomically.
 *
 * The type decides what else there is: flat has nothing more; hnsw has a
 * graph (lib/hnsw.c) over the same vectors, stored in its own sections;
 * ivf has inverted lists over k-means centroids (lib/ivf.c), likewise.
 *
 * Sections every type has (man/vec-index.5):
 *   VECS required  count x dim float32, row-major (unit length for cos)
 *   NORM optional  count float32 squared norms (l2 only; recomputed if absent)
 *   KEYS optional  (count + 1) u64 offsets, then the key bytes; key i is the
 *                  bytes [off[i], off[i+1]), ending in its only NUL; "" = no key
 *   IDS  required when present: count u64 ids, all different, none 2^64-1;
 *                  without it a vector's id is its position
 *
 * Everything inside works on positions (0 .. count-1); stored ids appear
 * only at the edges: given to vec_index_add_ids, returned by the search.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "hnsw.h"
#include "internal.h"
#include "ivf.h"

struct vec_index {
	int type, metric;
	size_t dim;
	uint64_t count;
	int threads;               /* for graph insertion */
	struct vec_hnsw *graph;    /* hnsw: the graph, else NULL */
	struct vec_ivf *ivf;       /* ivf types: the lists, once trained */
	int collecting;            /* ivf types: not trained yet; the vectors
	                              are held (as flat) until then */
	int novecs;                /* trained coded type without refine: the
	                              index keeps no vectors (vecs is NULL) */
	uint64_t train_at;         /* collecting: train at this count (0: only
	                              when asked, vec_index_train) */
	struct vec_ivf_params ivp; /* collecting: how to train */

	/* Current view: into the mapping, or the owned buffers below. */
	const float *vecs;
	const float *norms;        /* l2 only */
	const uint64_t *key_off;   /* count + 1 entries, or NULL: no keys */
	const char *key_blob;
	const uint64_t *ids;       /* count stored ids, or NULL: positions */

	/* Owned storage (after vec_index_new or a modification). */
	int owned;
	uint64_t cap;              /* vectors room */
	float *own_vecs, *own_norms;
	uint64_t *own_key_off;     /* cap + 1 entries when keys exist */
	uint64_t *own_ids;         /* cap entries when ids are stored */
	struct vec_idset idset;    /* the stored ids, once an add needs them */
	int idset_ok;              /* idset holds every stored id */
	uint64_t next_id;          /* largest stored id + 1, once known */
	int next_id_ok;
	char *own_blob;
	uint64_t blob_len, blob_cap;

	/* File backing. */
	int from_file;
	void *map;
	size_t map_len;
	int lock_fd;               /* writer lock held, or -1 */
	int graph_checked;         /* every link of the file's graph checked */
	char *path;
	struct vec_file file;
};

/* The vectors as the graph code sees them. */
static struct vec_vectors vectors_of(const struct vec_index *idx)
{
	struct vec_vectors v;
	v.x = idx->vecs;
	v.norms = idx->norms;
	v.dim = idx->dim;
	v.metric = idx->metric;
	v.count = idx->count;
	return v;
}

static void hnsw_params_of(const struct vec_index_params *p,
			   struct vec_hnsw_params *hp)
{
	hp->M = p->M ? p->M : VEC_HNSW_DEFAULT_M;
	hp->ef_construction = p->ef_construction ? p->ef_construction :
						   VEC_HNSW_DEFAULT_EFC;
	hp->seed = p->seed ? p->seed : VEC_HNSW_DEFAULT_SEED;
	hp->sq_bits = p->sq_bits; /* 0: vec_hnsw_create picks by dimension */
}

static void ivf_params_of(const struct vec_index_params *p,
			  struct vec_ivf_params *ip)
{
	memset(ip, 0, sizeof *ip);
	ip->nlist = p->type == VEC_TYPE_PQ || p->type == VEC_TYPE_SQ8 ? 1 : p->nlist;
	ip->train_size = p->train_size;
	ip->seed = p->seed;
	ip->codec = p->type == VEC_TYPE_IVFPQ || p->type == VEC_TYPE_PQ ? VEC_IVF_PQ :
		    p->type == VEC_TYPE_IVFSQ8 || p->type == VEC_TYPE_SQ8 ? VEC_IVF_SQ8 :
		    VEC_IVF_FLAT;
	ip->pq_m = p->pq_m;
	ip->pq_bits = p->pq_bits;
	ip->refine = p->refine;
}

static int check_params(const struct vec_index_params *p, struct vec_errbuf *eb)
{
	if (p->type != VEC_TYPE_FLAT && p->type != VEC_TYPE_HNSW &&
	    !vec_type_is_ivf(p->type))
		return vec_err(eb, VEC_E_USAGE, "unknown index type %d", p->type);
	if (p->metric < VEC_METRIC_L2 || p->metric > VEC_METRIC_COS)
		return vec_err(eb, VEC_E_USAGE, "unknown metric %d", p->metric);
	if (p->dim < 1 || p->dim > VEC_DIM_MAX)
		return vec_err(eb, VEC_E_USAGE, "bad dimension %zu (must be 1..%d)",
			       p->dim, VEC_DIM_MAX);
	if (p->M && (p->M < 2 || p->M > 256))
		return vec_err(eb, VEC_E_USAGE, "M must be 2..256, not %u", p->M);
	if (p->ef_construction > 100000)
		return vec_err(eb, VEC_E_USAGE, "ef-construction must be at most 100000");
	if (p->sq_bits && p->sq_bits != 4 && p->sq_bits != 8)
		return vec_err(eb, VEC_E_USAGE, "sq-bits must be 4 or 8, not %u", p->sq_bits);
	if (p->sq_bits && p->type != VEC_TYPE_HNSW)
		return vec_err(eb, VEC_E_USAGE, "sq-bits applies to hnsw indexes only");
	if (p->nlist > VEC_IVF_NLIST_MAX)
		return vec_err(eb, VEC_E_USAGE, "nlist must be at most %u", VEC_IVF_NLIST_MAX);
	if (p->nlist && p->train_size && p->train_size < p->nlist)
		return vec_err(eb, VEC_E_USAGE,
			       "the train size %llu is smaller than nlist %u",
			       (unsigned long long)p->train_size, p->nlist);
	if ((p->type == VEC_TYPE_PQ || p->type == VEC_TYPE_SQ8) && p->nlist > 1)
		return vec_err(eb, VEC_E_USAGE,
			       "a %s index has one list (use -t ivf%s for more)",
			       vec_type_name(p->type), vec_type_name(p->type));
	if (vec_type_is_ivf(p->type)) {
		struct vec_ivf_params ip;
		ivf_params_of(p, &ip);
		return vec_ivf_check_params(&ip, p->dim, eb);
	}
	if (p->pq_m || p->pq_bits || p->refine)
		return vec_err(eb, VEC_E_USAGE,
			       "PQ and refine parameters apply to the coded types only");
	return VEC_OK;
}

int vec_index_create(struct vec_index **out, const struct vec_index_params *p,
		     struct vec_errbuf *eb)
{
	struct vec_hnsw_params hp;
	struct vec_index *idx;
	int rc;

	*out = NULL;
	if ((rc = check_params(p, eb)))
		return rc;
	idx = calloc(1, sizeof *idx);
	if (!idx)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	idx->type = p->type;
	idx->metric = p->metric;
	idx->dim = p->dim;
	idx->threads = p->threads;
	idx->owned = 1;
	idx->lock_fd = -1;
	if (vec_type_is_ivf(p->type)) {
		idx->collecting = 1;
		ivf_params_of(p, &idx->ivp);
		if (p->train_size)
			idx->train_at = p->train_size;
		else if (idx->ivp.nlist)
			idx->train_at = (uint64_t)idx->ivp.nlist * 64 > 65536 ?
						(uint64_t)idx->ivp.nlist * 64 : 65536;
	}
	hnsw_params_of(p, &hp);
	if (p->type == VEC_TYPE_HNSW &&
	    (rc = vec_hnsw_create(&idx->graph, &hp, p->dim, p->metric, eb))) {
		free(idx);
		return rc;
	}
	*out = idx;
	return VEC_OK;
}

int vec_index_new(struct vec_index **out, int type, int metric, size_t dim,
		  struct vec_errbuf *eb)
{
	struct vec_index_params p = VEC_INDEX_PARAMS_INIT;
	p.type = type;
	p.metric = metric;
	p.dim = dim;
	return vec_index_create(out, &p, eb);
}

void vec_index_set_threads(struct vec_index *idx, int threads)
{
	idx->threads = threads;
}

/*
 * Train the lists on the vectors held, put every one of them in, and drop
 * the vectors if the type keeps none.  On failure the index is unchanged.
 */
static int train_now(struct vec_index *idx, int type, struct vec_errbuf *eb)
{
	struct vec_ivf_params ip = idx->ivp;
	struct vec_ivf *g = NULL;
	uint64_t nt = idx->count;
	int rc;

	/* Collected up to a train size: the first train-size vectors are
	 * the sample, used whole (k-means would otherwise copy a sample of
	 * them); the collection may have run a batch past it. */
	if (idx->train_at) {
		nt = idx->train_at < idx->count ? idx->train_at : idx->count;
		ip.train_size = nt;
	}
	if ((rc = vec_ivf_train(&g, &ip, idx->vecs, nt, idx->dim,
				idx->metric, idx->threads, eb)) ||
	    (rc = vec_ivf_add(g, idx->vecs, idx->count, idx->threads, eb))) {
		vec_ivf_free(g);
		return rc;
	}
	idx->ivf = g;
	idx->type = type;
	idx->collecting = 0;
	if (!vec_ivf_keeps_vectors(g)) {
		free(idx->own_vecs);
		free(idx->own_norms);
		idx->own_vecs = NULL;
		idx->own_norms = NULL;
		idx->vecs = NULL;
		idx->norms = NULL;
		idx->novecs = 1;
	}
	return VEC_OK;
}

int vec_index_train(struct vec_index *idx, struct vec_errbuf *eb)
{
	if (!idx->collecting)
		return VEC_OK;
	return train_now(idx, idx->type, eb);
}

int vec_index_convert(struct vec_index *idx, const struct vec_index_params *p,
		      struct vec_errbuf *eb)
{
	struct vec_hnsw *g = NULL;
	struct vec_hnsw_params hp;
	struct vec_vectors v;
	int rc;

	if ((rc = check_params(p, eb)))
		return rc;
	if (idx->type != VEC_TYPE_FLAT || p->metric != idx->metric ||
	    p->dim != idx->dim)
		return vec_err(eb, VEC_E_USAGE,
			       "only a flat index of the same metric and dimension can be converted");
	if (p->type == VEC_TYPE_FLAT)
		return VEC_OK;
	v = vectors_of(idx);
	if (vec_type_is_ivf(p->type)) {
		struct vec_ivf_params ip;
		int keep = idx->threads;
		ivf_params_of(p, &ip);
		idx->ivp = ip;
		idx->threads = p->threads;
		if ((rc = train_now(idx, p->type, eb))) {
			idx->threads = keep;
			return rc;
		}
		return VEC_OK;
	}
	hnsw_params_of(p, &hp);
	if ((rc = vec_hnsw_create(&g, &hp, idx->dim, idx->metric, eb)))
		return rc;
	if ((rc = vec_hnsw_insert(g, &v, p->threads, eb))) {
		vec_hnsw_free(g);
		return rc;
	}
	idx->graph = g;
	idx->type = p->type;
	idx->threads = p->threads;
	return VEC_OK;
}

/* Check the sections against what the header implies; set up the view. */
static int attach_sections(struct vec_index *idx, struct vec_errbuf *eb)
{
	const struct vec_file *f = &idx->file;
	const struct vec_file_section *vs, *ns, *ks, *is;
	const char *name = f->name;
	uint64_t want;

	if (!vec_host_is_le())
		return vec_err(eb, VEC_E_VERSION,
			       "%s: this build cannot map little-endian indexes on a big-endian host",
			       name);
	idx->type = (int)f->type;
	idx->metric = (int)f->metric;
	idx->dim = f->dim;
	idx->count = f->count;

	vs = vec_file_find(f, VEC_SEC_VECS);
	/* R-SEC-3: VECS holds exactly count x dim float32; only coded types
	 * may go without (their payload says whether they do). */
	if (!vs && !vec_type_is_coded(idx->type))
		return VEC_CORRUPT(eb, "%s: missing section 'VECS'", name);
	if (vs && (vec_mul_overflows(f->count, (uint64_t)f->dim * 4, &want) ||
		   vs->length != want))
		return VEC_CORRUPT(eb, "%s: section 'VECS' is %llu bytes, expected %llu x %u x 4",
				   name, (unsigned long long)vs->length,
				   (unsigned long long)f->count, f->dim);
	idx->vecs = vs ? (const float *)(const void *)vs->data : NULL;
	idx->novecs = !vs;

	ns = vs ? vec_file_find(f, VEC_SEC_NORM) : NULL;
	if (ns) {
		if (ns->length != f->count * 4)
			return VEC_CORRUPT(eb, "%s: section 'NORM' is %llu bytes, expected %llu",
					   name, (unsigned long long)ns->length,
					   (unsigned long long)f->count * 4);
		if (idx->metric == VEC_METRIC_L2)
			idx->norms = (const float *)(const void *)ns->data;
	}

	ks = vec_file_find(f, VEC_SEC_KEYS);
	if (ks) {
		uint64_t noff = f->count + 1, blob;
		const uint64_t *off = (const uint64_t *)(const void *)ks->data;
		const char *bytes;

		/* R-SEC-4: KEYS holds count + 1 offsets, rising from 0 to
		 * the blob length, each key ending in its only NUL. */
		if (ks->length / 8 < noff)
			return VEC_CORRUPT(eb, "%s: section 'KEYS' too short for %llu keys",
					   name, (unsigned long long)f->count);
		blob = ks->length - noff * 8;
		bytes = (const char *)ks->data + noff * 8;
		if (off[0] != 0 || off[f->count] != blob)
			return VEC_CORRUPT(eb, "%s: section 'KEYS': bad offsets", name);
		for (uint64_t i = 0; i < f->count; i++) {
			if (off[i + 1] <= off[i] || off[i + 1] > blob ||
			    memchr(bytes + off[i], '\0', off[i + 1] - off[i]) !=
				    bytes + off[i + 1] - 1)
				return VEC_CORRUPT(eb, "%s: section 'KEYS': bad key %llu",
						   name, (unsigned long long)i);
		}
		idx->key_off = off;
		idx->key_blob = bytes;
	}

	is = vec_file_find(f, VEC_SEC_IDS);
	if (is) {
		/* R-SEC-7: IDS holds count u64 ids (their values are
		 * checked by --verify and before a change). */
		if (is->length != f->count * 8)
			return VEC_CORRUPT(eb, "%s: section 'IDS ' is %llu bytes, expected %llu x 8",
					   name, (unsigned long long)is->length,
					   (unsigned long long)f->count);
		idx->ids = (const uint64_t *)(const void *)is->data;
	}
	return VEC_OK;
}

/*
 * R-SEC-7: the stored ids are all different and none is UINT64_MAX.  Into
 * set when given (it then holds every id), else a set of its own.
 */
static int check_ids(const struct vec_index *idx, const char *name,
		     struct vec_idset *set, struct vec_errbuf *eb)
{
	struct vec_idset tmp = { 0 };
	int rc = VEC_OK;

	if (!idx->ids)
		return VEC_OK;
	if (!set)
		set = &tmp;
	if (vec_idset_reserve(set, idx->count))
		return vec_err(eb, VEC_E_NOMEM, "out of memory (%llu ids)",
			       (unsigned long long)idx->count);
	for (uint64_t i = 0; i < idx->count && !rc; i++) {
		if (idx->ids[i] == UINT64_MAX)
			rc = VEC_CORRUPT(eb, "%s: section 'IDS ': vector %llu: id 2^64-1 is reserved",
					 name, (unsigned long long)i);
		else if (vec_idset_insert(set, idx->ids[i]))
			rc = VEC_CORRUPT(eb, "%s: section 'IDS ': vector %llu: id %llu is stored twice",
					 name, (unsigned long long)i,
					 (unsigned long long)idx->ids[i]);
	}
	vec_idset_free(&tmp);
	return rc;
}

/* Every stored component (and l2 norm) is a finite number: no writer
 * stores anything else, so another value is damage the checksums were
 * made to cover (a hostile file).  O(count x dim), as the checksums. */
static int check_values(const struct vec_index *idx, struct vec_errbuf *eb)
{
	const char *name = idx->file.name ? idx->file.name : "index";

	for (uint64_t i = 0; i < idx->count && idx->vecs; i++) {
		const float *v = idx->vecs + i * idx->dim;
		for (size_t j = 0; j < idx->dim; j++)
			if (!isfinite(v[j]))
				return VEC_CORRUPT(eb, "%s: vector %llu: component %zu is not a finite number",
						   name, (unsigned long long)i, j + 1);
		if (idx->norms && !isfinite(idx->norms[i]))
			return VEC_CORRUPT(eb, "%s: vector %llu: its stored norm is not a finite number",
					   name, (unsigned long long)i);
	}
	return check_ids(idx, name, NULL, eb);
}

/* The graph's full link check, with the file named in the message. */
static int check_graph(const struct vec_index *idx, struct vec_errbuf *eb)
{
	int rc = vec_hnsw_check(idx->graph, eb);
	if (rc && eb && idx->file.name) {
		char msg[2 * sizeof eb->msg + 8];
		snprintf(msg, sizeof msg, "%s: %s", idx->file.name, eb->msg);
		memcpy(eb->msg, msg, sizeof eb->msg - 1);
		eb->msg[sizeof eb->msg - 1] = '\0';
	}
	return rc;
}

/* The lists' full check (--verify), with the file named in the message. */
static int check_ivf(const struct vec_index *idx, struct vec_errbuf *eb)
{
	struct vec_vectors v = vectors_of(idx);
	int rc = vec_ivf_check(idx->ivf, &v, eb);
	if (rc && eb && idx->file.name) {
		char msg[2 * sizeof eb->msg + 8];
		snprintf(msg, sizeof msg, "%s: %s", idx->file.name, eb->msg);
		memcpy(eb->msg, msg, sizeof eb->msg - 1);
		eb->msg[sizeof eb->msg - 1] = '\0';
	}
	return rc;
}

/* The type's own sections, once the vectors are in place. */
static int attach_type(struct vec_index *idx, struct vec_errbuf *eb)
{
	struct vec_vectors v;

	int rc;

	if (vec_type_is_ivf(idx->type)) {
		struct vec_index_params p = VEC_INDEX_PARAMS_INIT;
		struct vec_ivf_params want;
		int codec;
		uint32_t nlist;
		v = vectors_of(idx);
		if ((rc = vec_ivf_open(&idx->ivf, &idx->file, &v, eb)))
			return rc;
		/* R-IVF-2, R-IVF-3: the payload and list count of the type. */
		p.type = idx->type;
		ivf_params_of(&p, &want);
		vec_ivf_layout(idx->ivf, &codec, &nlist);
		if (codec != want.codec || (want.nlist == 1 && nlist != 1))
			return VEC_CORRUPT(eb, "%s: section 'IVFP': payload %d with %u lists for type %s",
					   idx->file.name, codec, nlist,
					   vec_type_name(idx->type));
		return VEC_OK;
	}
	if (idx->type != VEC_TYPE_HNSW)
		return VEC_OK;
	v = vectors_of(idx);
	if ((rc = vec_hnsw_open(&idx->graph, &idx->file, &v, eb)))
		return rc;
	/* R-SEC-6: every vector is a node of the graph. */
	if (vec_hnsw_count(idx->graph) != idx->count)
		return VEC_CORRUPT(eb, "%s: section 'HNSP': %llu nodes for %llu vectors",
				   idx->file.name,
				   (unsigned long long)vec_hnsw_count(idx->graph),
				   (unsigned long long)idx->count);
	return VEC_OK;
}

/* Squared norms for an l2 view that has no NORM section (older writers). */
static int compute_norms(struct vec_index *idx, struct vec_errbuf *eb)
{
	float *n;
	if (idx->metric != VEC_METRIC_L2 || idx->norms || idx->count == 0 ||
	    !idx->vecs)
		return VEC_OK;
	n = malloc(idx->count * sizeof *n);
	if (!n)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	for (uint64_t i = 0; i < idx->count; i++)
		n[i] = vec_dot(idx->vecs + i * idx->dim, idx->vecs + i * idx->dim, idx->dim);
	idx->own_norms = n;
	idx->norms = n;
	return VEC_OK;
}

static int open_common(struct vec_index *idx, const char *name, int flags,
		       struct vec_errbuf *eb)
{
	int rc = vec_file_parse(&idx->file, name, idx->map, idx->map_len, eb);
	if (rc)
		return rc;
	if ((flags & VEC_OPEN_WRITE) &&
	    idx->file.write_version > VEC_FILE_WRITE_VERSION)
		return vec_err(eb, VEC_E_VERSION,
			       "%s: format write version %u is newer than this tool (%d): read-only",
			       name, idx->file.write_version, VEC_FILE_WRITE_VERSION);
	if ((flags & VEC_OPEN_VERIFY) && (rc = vec_file_verify(&idx->file, eb)))
		return rc;
	if ((rc = attach_sections(idx, eb)) || (rc = compute_norms(idx, eb)) ||
	    (rc = attach_type(idx, eb)))
		return rc;
	if ((flags & VEC_OPEN_VERIFY) && (rc = check_values(idx, eb)))
		return rc;
	if ((flags & VEC_OPEN_VERIFY) && idx->graph) {
		if ((rc = check_graph(idx, eb)))
			return rc;
		idx->graph_checked = 1;
	}
	if ((flags & VEC_OPEN_VERIFY) && idx->ivf && (rc = check_ivf(idx, eb)))
		return rc;
	return VEC_OK;
}

int vec_index_open(struct vec_index **out, const char *path, int flags,
		   struct vec_errbuf *eb)
{
	struct vec_index *idx;
	struct stat st;
	int fd = -1, rc;

	*out = NULL;
	idx = calloc(1, sizeof *idx);
	if (!idx)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	idx->lock_fd = -1;
	idx->from_file = 1;
	idx->path = strdup(path);
	if (!idx->path) {
		free(idx);
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	}
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		rc = vec_err(eb, VEC_E_IO, "%s: is a directory", path);
		goto fail;
	}
	if (flags & VEC_OPEN_WRITE) {
		/* The lock fd is the file we map: what we read is what
		 * nobody else can replace until we are done. */
		if ((rc = vec_file_lock(path, &idx->lock_fd, eb)))
			goto fail;
		if (idx->lock_fd < 0) {
			rc = vec_err(eb, VEC_E_IO, "%s: cannot open: %s", path,
				     strerror(ENOENT));
			goto fail;
		}
		fd = idx->lock_fd;
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = vec_err(eb, VEC_E_IO, "%s: cannot open: %s", path,
				     strerror(errno));
			goto fail;
		}
	}
	if (fstat(fd, &st) != 0) {
		rc = vec_err(eb, VEC_E_IO, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = vec_err(eb, VEC_E_CORRUPT, "%s: not a vec index (not a regular file)", path);
		goto fail;
	}
	if (st.st_size < VEC_FILE_HEADER_SIZE) {
		/* Too short to map usefully: read what there is, so that the
		 * checks run in the specified order (magic first, R-HDR-1). */
		unsigned char head[VEC_FILE_HEADER_SIZE];
		ssize_t got = pread(fd, head, (size_t)st.st_size, 0);
		if (got < 0)
			rc = vec_err(eb, VEC_E_IO, "%s: %s", path, strerror(errno));
		else
			rc = vec_file_parse(&idx->file, path, head, (size_t)got, eb);
		if (rc == VEC_OK) /* cannot happen: a header needs 64 bytes */
			rc = VEC_CORRUPT(eb, "%s: truncated index", path);
		goto fail;
	}
	idx->map_len = (size_t)st.st_size;
	idx->map = mmap(NULL, idx->map_len, PROT_READ, MAP_SHARED, fd, 0);
	if (idx->map == MAP_FAILED) {
		idx->map = NULL;
		rc = vec_err(eb, VEC_E_IO, "%s: cannot map: %s", path, strerror(errno));
		goto fail;
	}
#ifdef MADV_HUGEPAGE
	/*
	 * A hint, before the first access: what this mapping reads from disk
	 * comes in (and is mapped) as huge pages where the kernel and file
	 * system allow, so that a search's random reads miss the TLB far
	 * less; pages already cached stay as they are.  Not for indexes over
	 * VEC_POPULATE_MAX, which may not fit in memory: there a fault should
	 * read no more than it needs.
	 */
	if (idx->map_len <= VEC_POPULATE_MAX)
		(void)madvise(idx->map, idx->map_len, MADV_HUGEPAGE);
#endif
	if (fd != idx->lock_fd)
		close(fd);
	fd = -1;
	if ((rc = open_common(idx, path, flags, eb)))
		goto fail;
	*out = idx;
	return VEC_OK;
fail:
	if (fd >= 0 && fd != idx->lock_fd)
		close(fd);
	vec_index_close(idx);
	return rc;
}

int vec_index_open_mem(struct vec_index **out, const void *buf, size_t len,
		       int flags, struct vec_errbuf *eb)
{
	struct vec_index *idx;
	int rc;

	*out = NULL;
	if (flags & VEC_OPEN_WRITE)
		return vec_err(eb, VEC_E_USAGE, "a memory index cannot be opened for writing");
	idx = calloc(1, sizeof *idx);
	if (!idx)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	idx->lock_fd = -1;
	idx->from_file = 1;
	idx->map_len = len;
	if ((rc = vec_file_parse(&idx->file, "index", buf, len, eb)) ||
	    ((flags & VEC_OPEN_VERIFY) && (rc = vec_file_verify(&idx->file, eb))) ||
	    (rc = attach_sections(idx, eb)) || (rc = compute_norms(idx, eb)) ||
	    (rc = attach_type(idx, eb)) ||
	    ((flags & VEC_OPEN_VERIFY) && (rc = check_values(idx, eb))) ||
	    ((flags & VEC_OPEN_VERIFY) && idx->graph &&
	     (rc = check_graph(idx, eb))) ||
	    ((flags & VEC_OPEN_VERIFY) && idx->ivf &&
	     (rc = check_ivf(idx, eb)))) {
		vec_index_close(idx);
		return rc;
	}
	idx->graph_checked = (flags & VEC_OPEN_VERIFY) != 0;
	*out = idx;
	return VEC_OK;
}

void vec_index_close(struct vec_index *idx)
{
	if (!idx)
		return;
	if (idx->map && idx->path)
		munmap(idx->map, idx->map_len);
	if (idx->lock_fd >= 0)
		close(idx->lock_fd); /* releases the flock */
	vec_hnsw_free(idx->graph);
	vec_ivf_free(idx->ivf);
	free(idx->own_vecs);
	free(idx->own_norms);
	free(idx->own_key_off);
	free(idx->own_blob);
	free(idx->own_ids);
	vec_idset_free(&idx->idset);
	free(idx->path);
	free(idx);
}

/* Make sure owned storage holds room for `need` vectors (and keys). */
static int reserve(struct vec_index *idx, uint64_t need, int want_keys,
		   struct vec_errbuf *eb)
{
	uint64_t cap = idx->cap, bytes;

	if (need > idx->cap) {
		float *v, *n = NULL;
		cap = idx->cap ? idx->cap : 1024;
		while (cap < need)
			cap = cap + cap / 2;
		if (vec_mul_overflows(cap, (uint64_t)idx->dim * sizeof(float), &bytes) ||
		    bytes > SIZE_MAX)
			return vec_err(eb, VEC_E_NOMEM, "index too large");
		v = idx->novecs ? NULL : realloc(idx->own_vecs, (size_t)bytes);
		if (!v && !idx->novecs)
			return vec_err(eb, VEC_E_NOMEM, "out of memory (%llu vectors)",
				       (unsigned long long)cap);
		if (v)
			idx->own_vecs = v;
		if (idx->metric == VEC_METRIC_L2 && !idx->novecs) {
			n = realloc(idx->own_norms, (size_t)cap * sizeof *n);
			if (!n)
				return vec_err(eb, VEC_E_NOMEM, "out of memory");
			idx->own_norms = n;
		}
		if (idx->own_key_off) {
			uint64_t *o = realloc(idx->own_key_off, (size_t)(cap + 1) * sizeof *o);
			if (!o)
				return vec_err(eb, VEC_E_NOMEM, "out of memory");
			idx->own_key_off = o;
		}
		if (idx->own_ids) {
			uint64_t *o = realloc(idx->own_ids, (size_t)cap * sizeof *o);
			if (!o)
				return vec_err(eb, VEC_E_NOMEM, "out of memory");
			idx->own_ids = o;
		}
		idx->cap = cap;
	}
	if (want_keys && !idx->own_key_off) {
		/* First keys arrive: every earlier vector gets an empty key. */
		uint64_t *o = malloc((size_t)(idx->cap + 1) * sizeof *o);
		if (!o)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		free(idx->own_blob);
		idx->own_blob = malloc(idx->count + 64);
		if (!idx->own_blob) {
			free(o);
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		}
		idx->blob_cap = idx->count + 64;
		for (uint64_t i = 0; i <= idx->count; i++)
			o[i] = i;
		memset(idx->own_blob, 0, idx->count);
		idx->blob_len = idx->count;
		idx->own_key_off = o;
	}
	return VEC_OK;
}

/* Copy a mapped view into owned memory before the first change. */
static int make_owned(struct vec_index *idx, struct vec_errbuf *eb)
{
	int rc;
	uint64_t n = idx->count;
	/* Norms computed at open (no NORM section) already live in own_norms,
	 * which reserve() reallocates, keeping them. */
	int computed = idx->norms && idx->norms == idx->own_norms;

	if (idx->owned)
		return VEC_OK;
	if ((rc = reserve(idx, n ? n : 1, 0, eb)))
		return rc;
	if (n && !idx->novecs) {
		memcpy(idx->own_vecs, idx->vecs, (size_t)n * idx->dim * sizeof(float));
		if (idx->metric == VEC_METRIC_L2 && !computed)
			memcpy(idx->own_norms, idx->norms, (size_t)n * sizeof(float));
	}
	if (idx->key_off) {
		uint64_t blob = idx->key_off[n];
		idx->own_key_off = malloc((size_t)(idx->cap + 1) * sizeof(uint64_t));
		idx->own_blob = malloc(blob + 64);
		if (!idx->own_key_off || !idx->own_blob)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		memcpy(idx->own_key_off, idx->key_off, (size_t)(n + 1) * sizeof(uint64_t));
		memcpy(idx->own_blob, idx->key_blob, blob);
		idx->blob_len = blob;
		idx->blob_cap = blob + 64;
	}
	if (idx->ids) {
		idx->own_ids = malloc((size_t)idx->cap * sizeof(uint64_t));
		if (!idx->own_ids)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		memcpy(idx->own_ids, idx->ids, (size_t)n * sizeof(uint64_t));
		idx->ids = idx->own_ids;
	}
	idx->owned = 1;
	idx->vecs = idx->own_vecs;
	idx->norms = idx->own_norms;
	idx->key_off = idx->own_key_off;
	idx->key_blob = idx->own_blob;
	return VEC_OK;
}

/* Refuse vector i of a batch: the message says why, eb->record which. */
__attribute__((format(printf, 3, 4)))
static int refuse(struct vec_errbuf *eb, size_t i, const char *fmt, ...)
{
	if (eb) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
		va_end(ap);
		eb->code = VEC_E_FORMAT;
		eb->line = __LINE__;
		eb->record = i + 1;
	}
	return VEC_E_FORMAT;
}

/* The largest stored id + 1 (0 for none), computed once. */
static uint64_t next_id(struct vec_index *idx)
{
	if (!idx->next_id_ok) {
		uint64_t m = 0;
		for (uint64_t i = 0; i < idx->count; i++)
			if (idx->ids[i] + 1 > m)
				m = idx->ids[i] + 1;
		idx->next_id = m;
		idx->next_id_ok = 1;
	}
	return idx->next_id;
}

/*
 * The ids a batch will get, in out[0..n): given ones are checked against
 * the stored ids and each other (the set then holds them), else they follow
 * the largest stored id.  Nothing else of the index changes.
 */
static int batch_ids(struct vec_index *idx, size_t n, const uint64_t *ids,
		     uint64_t *out, struct vec_errbuf *eb)
{
	const char *name = idx->file.name ? idx->file.name : "index";
	int rc;

	if (!ids) {
		uint64_t first = next_id(idx);
		if (first > UINT64_MAX - 1 - n)
			return refuse(eb, 0, "no ids left after %llu",
				      (unsigned long long)first - 1);
		for (size_t i = 0; i < n; i++)
			out[i] = first + i;
		if (idx->idset_ok && vec_idset_reserve(&idx->idset, n))
			idx->idset_ok = 0;
		for (size_t i = 0; i < n && idx->idset_ok; i++)
			if (vec_idset_insert(&idx->idset, out[i]) < 0)
				idx->idset_ok = 0;
		return VEC_OK;
	}
	if (!idx->idset_ok) {
		vec_idset_free(&idx->idset);
		if (idx->ids) {
			if ((rc = check_ids(idx, name, &idx->idset, eb)))
				return rc;
		} else {
			if (vec_idset_reserve(&idx->idset, idx->count))
				return vec_err(eb, VEC_E_NOMEM, "out of memory");
			for (uint64_t i = 0; i < idx->count; i++)
				if (vec_idset_insert(&idx->idset, i) < 0)
					return vec_err(eb, VEC_E_NOMEM, "out of memory");
		}
		idx->idset_ok = 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == UINT64_MAX)
			return refuse(eb, i, "id %llu is reserved (it marks a missing result)",
				      (unsigned long long)ids[i]);
		if (vec_idset_has(&idx->idset, ids[i]))
			return refuse(eb, i, "id %llu is already in the index",
				      (unsigned long long)ids[i]);
	}
	if (vec_idset_reserve(&idx->idset, n))
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (vec_idset_insert(&idx->idset, ids[i])) {
			/* Twice in the batch: the set now holds ids the index
			 * does not; rebuild it next time. */
			idx->idset_ok = 0;
			return refuse(eb, i, "id %llu is already in the index",
				      (unsigned long long)ids[i]);
		}
		out[i] = ids[i];
	}
	return VEC_OK;
}

int vec_index_add(struct vec_index *idx, size_t n, const float *x,
		  const char *const *keys, struct vec_errbuf *eb)
{
	return vec_index_add_ids(idx, n, x, keys, NULL, eb);
}

int vec_index_add_ids(struct vec_index *idx, size_t n, const float *x,
		      const char *const *keys, const uint64_t *ids,
		      struct vec_errbuf *eb)
{
	uint64_t start = idx->count, klen = 0, *bids = NULL;
	float *tmp = NULL;
	int want_keys = 0, rc, made_ids = 0;

	if (n == 0 && ids && !idx->ids) {
		/* No vectors, but ids from now on (an empty shard): the
		 * index stores ids even before it holds any. */
		if ((rc = make_owned(idx, eb)) || (rc = reserve(idx, 1, 0, eb)))
			return rc;
		idx->own_ids = malloc((size_t)idx->cap * sizeof(uint64_t));
		if (!idx->own_ids)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		for (uint64_t i = 0; i < idx->count; i++)
			idx->own_ids[i] = i;
		idx->ids = idx->own_ids;
		idx->idset_ok = 0;
		return VEC_OK;
	}
	if (n == 0)
		return VEC_OK;
	/* Validate everything first, so that a refused batch changes nothing. */
	for (size_t i = 0; i < n; i++) {
		const float *v = x + i * idx->dim;
		for (size_t j = 0; j < idx->dim; j++)
			if (!isfinite(v[j]))
				return refuse(eb, i, "component %zu is not a finite number",
					      j + 1);
		if (idx->metric == VEC_METRIC_COS && vec_dot(v, v, idx->dim) == 0.0f)
			return refuse(eb, i, "zero vector has no direction (metric cos)");
		if (keys && keys[i] && keys[i][0]) {
			want_keys = 1;
			klen += strlen(keys[i]);
		}
	}
	/* Search tolerates links out of range (it skips them); insertion
	 * writes beside them, so a graph from a file is checked whole once
	 * before its first change. */
	if (idx->graph && idx->from_file && !idx->graph_checked) {
		if ((rc = check_graph(idx, eb)))
			return rc;
		idx->graph_checked = 1;
	}
	if (ids || idx->ids) {
		bids = malloc(n * sizeof *bids);
		if (!bids)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		if ((rc = batch_ids(idx, n, ids, bids, eb))) {
			free(bids);
			return rc;
		}
	}
	if ((rc = make_owned(idx, eb)) ||
	    (rc = reserve(idx, start + n, want_keys, eb))) {
		free(bids);
		idx->idset_ok = 0;
		return rc;
	}
	if (bids && !idx->own_ids) {
		/* The first ids: earlier vectors keep their positions. */
		idx->own_ids = malloc((size_t)idx->cap * sizeof(uint64_t));
		if (!idx->own_ids) {
			free(bids);
			idx->idset_ok = 0;
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		}
		for (uint64_t i = 0; i < start; i++)
			idx->own_ids[i] = i;
		made_ids = 1;
	}
	if (bids) {
		memcpy(idx->own_ids + start, bids, n * sizeof *bids);
		idx->ids = idx->own_ids;
	}
	if (idx->own_key_off && idx->blob_len + klen + n > idx->blob_cap) {
		uint64_t cap = idx->blob_cap * 2 + klen + n;
		char *b = realloc(idx->own_blob, (size_t)cap);
		if (!b) {
			rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
			goto fail;
		}
		idx->own_blob = b;
		idx->blob_cap = cap;
	}
	if (idx->novecs && idx->metric == VEC_METRIC_COS) {
		/* Nowhere to keep them: normalise a copy for the encoder. */
		tmp = malloc(n * idx->dim * sizeof *tmp);
		if (!tmp) {
			rc = vec_err(eb, VEC_E_NOMEM, "out of memory");
			goto fail;
		}
		memcpy(tmp, x, n * idx->dim * sizeof *tmp);
		for (size_t i = 0; i < n; i++)
			vec_normalize(tmp + i * idx->dim, idx->dim);
	}
	for (size_t i = 0; i < n && !idx->novecs; i++) {
		float *dst = idx->own_vecs + (start + i) * idx->dim;
		memcpy(dst, x + i * idx->dim, idx->dim * sizeof(float));
		if (idx->metric == VEC_METRIC_COS)
			vec_normalize(dst, idx->dim);
		if (idx->metric == VEC_METRIC_L2)
			idx->own_norms[start + i] = vec_dot(dst, dst, idx->dim);
	}
	for (size_t i = 0; i < n && idx->own_key_off; i++) {
		const char *k = keys && keys[i] ? keys[i] : "";
		size_t l = strlen(k) + 1;
		memcpy(idx->own_blob + idx->blob_len, k, l);
		idx->blob_len += l;
		idx->own_key_off[start + i + 1] = idx->blob_len;
	}
	idx->vecs = idx->own_vecs;
	idx->norms = idx->own_norms;
	idx->key_off = idx->own_key_off;
	idx->key_blob = idx->own_blob;
	rc = VEC_OK;
	if (idx->graph) {
		struct vec_vectors v;
		idx->count = start + n;
		v = vectors_of(idx);
		rc = vec_hnsw_insert(idx->graph, &v, idx->threads, eb);
	} else if (idx->ivf) {
		/* New vectors join the list of their nearest centroid; the
		 * centroids are not retrained. */
		const float *src = idx->novecs ? (tmp ? tmp : x) :
						 idx->vecs + start * idx->dim;
		rc = vec_ivf_add(idx->ivf, src, n, idx->threads, eb);
		idx->count = start + n;
	} else {
		idx->count = start + n;
		if (idx->collecting && idx->train_at && idx->count >= idx->train_at)
			rc = train_now(idx, idx->type, eb);
	}
	free(tmp);
	if (rc == VEC_OK) {
		if (bids && idx->next_id_ok)
			for (size_t i = 0; i < n; i++)
				if (bids[i] + 1 > idx->next_id)
					idx->next_id = bids[i] + 1;
		free(bids);
		return VEC_OK;
	}
fail:
	/* The graph or lists are as they were; so are the vectors the
	 * count covers (the key bytes and ids past it are unused). */
	idx->count = start;
	if (idx->own_key_off)
		idx->blob_len = idx->own_key_off[start];
	if (bids)
		idx->idset_ok = 0;
	if (made_ids) {
		free(idx->own_ids);
		idx->own_ids = NULL;
		idx->ids = NULL;
	}
	free(bids);
	return rc;
}

/*
 * Positions to stored ids (and keys), then equal scores ordered by the
 * smaller id, so that every index, and every merge of shards, lists ties
 * the same way.
 */
static void finish_results(const struct vec_index *idx, size_t nq, size_t k,
			   uint64_t *ids, float *scores, const char **keys)
{
	for (size_t q = 0; q < nq; q++) {
		uint64_t *id = ids + q * k;
		float *sc = scores + q * k;
		const char **ky = keys ? keys + q * k : NULL;
		size_t m = 0;

		for (; m < k && id[m] != UINT64_MAX; m++) {
			if (ky)
				ky[m] = vec_index_key(idx, id[m]);
			if (idx->ids)
				id[m] = idx->ids[id[m]];
		}
		for (size_t r = m; ky && r < k; r++)
			ky[r] = NULL;
		for (size_t r = 1; r < m; r++)
			for (size_t j = r; j > 0 && sc[j - 1] == sc[j] && id[j - 1] > id[j]; j--) {
				uint64_t t = id[j];
				id[j] = id[j - 1];
				id[j - 1] = t;
				if (ky) {
					const char *kt = ky[j];
					ky[j] = ky[j - 1];
					ky[j - 1] = kt;
				}
			}
	}
}

#ifdef MADV_POPULATE_READ
/*
 * Does a batch of nq queries pay for mapping the whole file first
 * (vec_populate_worth)?  Not for inverted lists read in order (ivf, or
 * codes alone): a batch reads only the lists it probes, the faults come a
 * 64 KiB window at a time, and an ivf file's copy of the vectors in their
 * first order is never read.  A coded type that re-ranks reads its kept
 * vectors at random, as flat and hnsw read theirs.
 */
static int populate_pays(const struct vec_index *idx, size_t nq)
{
	int codec = VEC_IVF_FLAT;
	uint32_t nlist;

	if (!idx->map || !idx->path || !vec_populate_worth(nq, idx->map_len))
		return 0;
	if (idx->ivf)
		vec_ivf_layout(idx->ivf, &codec, &nlist);
	return !idx->ivf || (codec != VEC_IVF_FLAT && !idx->novecs);
}
#endif

int vec_index_search(const struct vec_index *idx, size_t nq,
		     const float *queries, size_t k,
		     const struct vec_search_opts *opts, uint64_t *ids,
		     float *scores, struct vec_errbuf *eb)
{
	static const struct vec_search_opts defaults = VEC_SEARCH_OPTS_INIT;
	const float *q = queries;
	float *qn = NULL;
	int rc;

	if (!opts)
		opts = &defaults;
	if (k == 0)
		return vec_err(eb, VEC_E_USAGE, "k must be at least 1");
	if (nq == 0)
		return VEC_OK;
	if (idx->collecting)
		return vec_err(eb, VEC_E_USAGE,
			       "the %s index has not been trained yet (vec_index_train)",
			       vec_type_name(idx->type));
#ifdef MADV_POPULATE_READ
	/* A hint: an older kernel refuses it, and the faults happen as before. */
	if (populate_pays(idx, nq))
		(void)madvise(idx->map, idx->map_len, MADV_POPULATE_READ);
#endif
	if (idx->metric == VEC_METRIC_COS) {
		/* Stored vectors are unit length; so must the queries be. */
		qn = malloc(nq * idx->dim * sizeof *qn);
		if (!qn)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		memcpy(qn, queries, nq * idx->dim * sizeof *qn);
		for (size_t i = 0; i < nq; i++)
			vec_normalize(qn + i * idx->dim, idx->dim);
		q = qn;
	}
	if (idx->graph) {
		struct vec_vectors v = vectors_of(idx);
		rc = vec_hnsw_search(idx->graph, &v, q, nq, k, opts->ef,
				     opts->threads, ids, scores, eb);
	} else if (idx->ivf) {
		struct vec_vectors v = vectors_of(idx);
		struct vec_ivf_search_opts o;
		o.nprobe = opts->nprobe;
		o.refine = opts->refine;
		o.threads = opts->threads;
		o.scanned = opts->scanned;
		rc = vec_ivf_search(idx->ivf, &v, q, nq, k, &o, ids, scores, eb);
	} else {
		rc = vec_flat_search(idx->vecs, idx->norms, (size_t)idx->count,
				     idx->dim, idx->metric, q, nq, k,
				     opts->threads, ids, scores);
		if (rc)
			rc = vec_err(eb, rc, "search failed: %s", vec_strerror(rc));
	}
	free(qn);
	if (rc == VEC_OK)
		finish_results(idx, nq, k, ids, scores, opts->keys);
	return rc;
}

struct vec_ivf *vec_index_ivf(struct vec_index *idx)
{
	return idx->ivf;
}

int vec_index_save(struct vec_index *idx, const char *path,
		   struct vec_errbuf *eb)
{
	struct vec_file_section secs[4 + VEC_HNSW_MAX_SECTIONS + VEC_IVF_MAX_SECTIONS];
	size_t ns = 0;
	uint8_t *keys = NULL;
	int lock_fd = -1, rc;

	if (idx->collecting && (rc = train_now(idx, idx->type, eb)))
		return rc;
	memset(secs, 0, sizeof secs);
	if (!idx->novecs) {
		secs[ns].id = VEC_SEC_VECS;
		secs[ns].flags = VEC_SEC_REQUIRED;
		secs[ns].data = (const uint8_t *)idx->vecs;
		secs[ns++].length = idx->count * idx->dim * sizeof(float);
	}
	if (idx->metric == VEC_METRIC_L2 && !idx->novecs) {
		secs[ns].id = VEC_SEC_NORM;
		secs[ns].data = (const uint8_t *)idx->norms;
		secs[ns++].length = idx->count * sizeof(float);
	}
	if (idx->key_off) {
		/* Offsets and bytes are one section: gather them. */
		uint64_t blob = idx->key_off[idx->count];
		uint64_t len = (idx->count + 1) * 8 + blob;
		keys = malloc(len ? len : 1);
		if (!keys)
			return vec_err(eb, VEC_E_NOMEM, "out of memory");
		for (uint64_t i = 0; i <= idx->count; i++)
			vec_put_le64(keys + i * 8, idx->key_off[i]);
		memcpy(keys + (idx->count + 1) * 8, idx->key_blob, blob);
		secs[ns].id = VEC_SEC_KEYS;
		secs[ns].data = keys;
		secs[ns++].length = len;
	}
	if (idx->ids) {
		/* Required: a reader that ignored it would answer with
		 * positions, ids that mean something else. */
		secs[ns].id = VEC_SEC_IDS;
		secs[ns].flags = VEC_SEC_REQUIRED;
		secs[ns].data = (const uint8_t *)idx->ids;
		secs[ns++].length = idx->count * 8;
	}
	if (idx->graph) {
		size_t ng = 0;
		if ((rc = vec_hnsw_sections(idx->graph, secs + ns, &ng, eb))) {
			free(keys);
			return rc;
		}
		ns += ng;
	}
	if (idx->ivf) {
		size_t ni = 0;
		if ((rc = vec_ivf_sections(idx->ivf, secs + ns, &ni, eb))) {
			free(keys);
			return rc;
		}
		ns += ni;
	}
	/* Serialise with other writers unless we already hold this path. */
	if (idx->lock_fd < 0 || !idx->path || strcmp(idx->path, path) != 0) {
		if ((rc = vec_file_lock(path, &lock_fd, eb))) {
			free(keys);
			return rc;
		}
	}
	rc = vec_file_write(path, (uint32_t)idx->type, (uint32_t)idx->metric,
			    (uint32_t)idx->dim, idx->count, secs, ns, eb);
	if (lock_fd >= 0)
		close(lock_fd);
	free(keys);
	return rc;
}

int vec_index_verify(const struct vec_index *idx, struct vec_errbuf *eb)
{
	int rc;
	if (idx->from_file && (rc = vec_file_verify(&idx->file, eb)))
		return rc;
	if (idx->from_file && (rc = check_values(idx, eb)))
		return rc;
	if (idx->graph)
		return check_graph(idx, eb);
	if (idx->ivf)
		return check_ivf(idx, eb);
	return VEC_OK;
}

const char *vec_index_key(const struct vec_index *idx, uint64_t pos)
{
	const char *k;
	if (!idx->key_off || pos >= idx->count)
		return NULL;
	k = idx->key_blob + idx->key_off[pos];
	return *k ? k : NULL;
}

int vec_index_has_ids(const struct vec_index *idx)
{
	return idx->ids != NULL;
}

uint64_t vec_index_id(const struct vec_index *idx, uint64_t pos)
{
	if (pos >= idx->count)
		return UINT64_MAX;
	return idx->ids ? idx->ids[pos] : pos;
}

int vec_index_has_keys(const struct vec_index *idx)
{
	return idx->key_off != NULL;
}

const float *vec_index_vector(const struct vec_index *idx, uint64_t pos)
{
	if (pos >= idx->count || !idx->vecs)
		return NULL;
	return idx->vecs + pos * idx->dim;
}

void vec_index_info(const struct vec_index *idx, struct vec_index_info *info)
{
	memset(info, 0, sizeof *info);
	info->type = idx->type;
	info->metric = idx->metric;
	info->dim = idx->dim;
	info->count = idx->count;
	info->read_version = VEC_FILE_READ_VERSION;
	info->write_version = VEC_FILE_WRITE_VERSION;
	info->has_ids = idx->ids != NULL;
	if (!idx->from_file)
		return;
	info->read_version = idx->file.read_version;
	info->write_version = idx->file.write_version;
	info->file_bytes = idx->map_len;
	info->n_sections = idx->file.n_sections;
	for (size_t i = 0; i < idx->file.n_sections; i++) {
		const struct vec_file_section *s = &idx->file.sec[i];
		vec_fourcc_str(s->id, info->sections[i].id);
		info->sections[i].required = !!(s->flags & VEC_SEC_REQUIRED);
		info->sections[i].offset = s->offset;
		info->sections[i].length = s->length;
		info->sections[i].crc32 = s->crc32;
	}
}

void vec_index_stats(const struct vec_index *idx, struct vec_index_info *info)
{
	vec_index_info(idx, info);
	if (idx->count) {
		info->id_min = idx->ids ? UINT64_MAX : 0;
		info->id_max = idx->ids ? 0 : idx->count - 1;
		for (uint64_t i = 0; i < idx->count && idx->ids; i++) {
			if (idx->ids[i] < info->id_min)
				info->id_min = idx->ids[i];
			if (idx->ids[i] > info->id_max)
				info->id_max = idx->ids[i];
		}
	}
	if (idx->graph) {
		struct vec_hnsw_stats st;
		vec_hnsw_stats(idx->graph, &st);
		info->hnsw.M = st.M;
		info->hnsw.M0 = st.M0;
		info->hnsw.ef_construction = st.ef_construction;
		info->hnsw.seed = st.seed;
		info->hnsw.entry_point = st.entry_point;
		info->hnsw.levels = st.levels;
		memcpy(info->hnsw.nodes_per_level, st.nodes_per_level,
		       sizeof st.nodes_per_level);
		info->hnsw.avg_degree0 = st.avg_degree0;
		info->hnsw.max_degree0 = st.max_degree0;
		info->hnsw.graph_bytes = st.graph_bytes;
		info->hnsw.extra_bytes = st.extra_bytes;
		info->hnsw.code_bits = st.code_bits;
		info->hnsw.default_ef = vec_hnsw_default_ef(idx->graph, 10);
	}
	if (idx->ivf) {
		struct vec_ivf_stats st;
		vec_ivf_stats(idx->ivf, &st);
		info->ivf.nlist = st.nlist;
		info->ivf.seed = st.seed;
		info->ivf.train_size = st.train_size;
		info->ivf.iterations = st.iterations;
		info->ivf.max_iterations = st.max_iterations;
		info->ivf.list_min = st.list_min;
		info->ivf.list_median = st.list_median;
		info->ivf.list_max = st.list_max;
		info->ivf.empty_lists = st.empty_lists;
		info->ivf.list_bytes = st.list_bytes;
		info->ivf.default_nprobe = st.default_nprobe;
		info->ivf.payload = st.codec == VEC_IVF_PQ ? "pq" :
				    st.codec == VEC_IVF_SQ8 ? "sq8" : "flat";
		info->ivf.pq_m = st.pq_m;
		info->ivf.pq_bits = st.pq_bits;
		info->ivf.refine = st.refine;
		info->ivf.code_bytes = st.code_bytes;
		info->ivf.codebook_bytes = st.codebook_bytes;
		info->ivf.refine_code_bytes = st.refine_code_bytes;
		info->ivf.refine_exact = st.refine_exact;
	}
}
