/* test_file.c - the index file: round trips, and every kind of damage. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"
#include "unit.h"
#include "vec.h"

#define DIM 5
#define N 37

static void fill(float *x, size_t n, size_t d, unsigned seed)
{
	for (size_t i = 0; i < n * d; i++) {
		seed = seed * 1103515245u + 12345u;
		x[i] = (float)((seed >> 8) % 1000) / 100.0f - 5.0f;
	}
}

/* Build an l2 index of N vectors (keys on even ids) and save it. */
static int make_index(const char *path, int metric)
{
	struct vec_index *idx;
	float x[N * DIM];
	const char *keys[N];
	char names[N][16];
	int rc;

	fill(x, N, DIM, 7);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "key-%d", i);
		keys[i] = (i % 2 == 0) ? names[i] : NULL;
	}
	if (vec_index_new(&idx, VEC_TYPE_FLAT, metric, DIM, NULL))
		return -1;
	rc = vec_index_add(idx, N, x, keys, NULL);
	if (!rc)
		rc = vec_index_save(idx, path, NULL);
	vec_index_close(idx);
	return rc;
}

static void spit(const char *path, const unsigned char *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	fwrite(b, 1, len, f);
	fclose(f);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void fix_header_crc(unsigned char *b)
{
	put32(b + 60, (uint32_t)crc32(0, b, 60));
}

static void fix_toc_crc(unsigned char *b)
{
	uint32_t n = le32(b + 48);
	put32(b + 52, (uint32_t)crc32(0, b + 64, n * 32));
	fix_header_crc(b);
}

/* Open a damaged copy; return the error code and keep the message. */
static int open_bytes(const unsigned char *b, size_t len, int flags,
		      struct vec_errbuf *eb)
{
	struct vec_index *idx;
	const char *p = unit_tmp_path("damaged.vec");
	int rc;
	spit(p, b, len);
	rc = vec_index_open(&idx, p, flags, eb);
	if (!rc)
		vec_index_close(idx);
	return rc;
}

static void test_round_trip(void)
{
	const char *p = unit_tmp_path("rt.vec");
	struct vec_index *idx;
	struct vec_index_info info;
	float x[N * DIM];
	struct stat st;

	fill(x, N, DIM, 7);
	EXPECT(make_index(p, VEC_METRIC_L2) == 0);
	EXPECT(vec_index_open(&idx, p, VEC_OPEN_VERIFY, NULL) == 0);
	if (!idx)
		return;
	vec_index_info(idx, &info);
	EXPECT(info.type == VEC_TYPE_FLAT);
	EXPECT(info.metric == VEC_METRIC_L2);
	EXPECT(info.dim == DIM);
	EXPECT(info.count == N);
	EXPECT(info.read_version == 1);
	EXPECT(stat(p, &st) == 0 && (uint64_t)st.st_size == info.file_bytes);
	EXPECT(info.file_bytes % 64 == 0);
	for (size_t i = 0; i < info.n_sections; i++)
		EXPECT(info.sections[i].offset % 64 == 0);
	EXPECT(memcmp(vec_index_vector(idx, 3), x + 3 * DIM, sizeof(float) * DIM) == 0);
	EXPECT(vec_index_vector(idx, N) == NULL);
	EXPECT(vec_index_has_keys(idx));
	EXPECT(vec_index_key(idx, 4) && strcmp(vec_index_key(idx, 4), "key-4") == 0);
	EXPECT(vec_index_key(idx, 5) == NULL);
	EXPECT(vec_index_verify(idx, NULL) == 0);
	vec_index_close(idx);
}

static void test_search_after_open(void)
{
	const char *p = unit_tmp_path("s.vec");
	struct vec_index *idx;
	float x[N * DIM];
	uint64_t ids[3];
	float sc[3];

	fill(x, N, DIM, 7);
	EXPECT(make_index(p, VEC_METRIC_L2) == 0);
	EXPECT(vec_index_open(&idx, p, 0, NULL) == 0);
	if (!idx)
		return;
	/* A stored vector is its own nearest neighbour, at distance 0. */
	EXPECT(vec_index_search(idx, 1, x + 11 * DIM, 3, NULL, ids, sc, NULL) == 0);
	EXPECT(ids[0] == 11);
	EXPECT(sc[0] == 0.0f);
	EXPECT(sc[1] >= sc[0] && sc[2] >= sc[1]);
	vec_index_close(idx);
}

static void test_add_to_opened(void)
{
	const char *p = unit_tmp_path("add.vec");
	struct vec_index *idx, *again;
	struct vec_index_info info;
	float extra[2 * DIM];
	const char *keys[2] = { "new-a", NULL };

	fill(extra, 2, DIM, 99);
	EXPECT(make_index(p, VEC_METRIC_L2) == 0);
	EXPECT(vec_index_open(&idx, p, VEC_OPEN_WRITE, NULL) == 0);
	if (!idx)
		return;
	EXPECT(vec_index_add(idx, 2, extra, keys, NULL) == 0);
	EXPECT(vec_index_save(idx, p, NULL) == 0);
	vec_index_close(idx);
	EXPECT(vec_index_open(&again, p, VEC_OPEN_VERIFY, NULL) == 0);
	if (!again)
		return;
	vec_index_info(again, &info);
	EXPECT(info.count == N + 2);
	EXPECT(vec_index_key(again, N) && !strcmp(vec_index_key(again, N), "new-a"));
	EXPECT(vec_index_key(again, N + 1) == NULL);
	EXPECT(vec_index_key(again, 2) && !strcmp(vec_index_key(again, 2), "key-2"));
	EXPECT(memcmp(vec_index_vector(again, N + 1), extra + DIM, sizeof(float) * DIM) == 0);
	vec_index_close(again);
}

static void test_add_refuses_nan(void)
{
	struct vec_index *idx;
	struct vec_errbuf eb = { 0 };
	struct vec_index_info info;
	float x[2 * DIM] = { 0 };

	EXPECT(vec_index_new(&idx, VEC_TYPE_FLAT, VEC_METRIC_COS, DIM, NULL) == 0);
	x[DIM + 2] = NAN;
	EXPECT(vec_index_add(idx, 2, x, NULL, &eb) == VEC_E_FORMAT);
	vec_index_info(idx, &info);
	EXPECT(info.count == 0);
	x[DIM + 2] = 1;
	/* The first vector is zero: no direction under cos. */
	EXPECT(vec_index_add(idx, 2, x, NULL, &eb) == VEC_E_FORMAT);
	EXPECT(eb.record == 1);
	EXPECT(strstr(eb.msg, "zero vector") != NULL);
	vec_index_close(idx);
}

static void test_cos_normalises(void)
{
	struct vec_index *idx;
	float x[DIM] = { 3, 4, 0, 0, 0 }, q[DIM] = { 6, 8, 0, 0, 0 };
	uint64_t id;
	float sc;

	EXPECT(vec_index_new(&idx, VEC_TYPE_FLAT, VEC_METRIC_COS, DIM, NULL) == 0);
	EXPECT(vec_index_add(idx, 1, x, NULL, NULL) == 0);
	EXPECT(fabsf(vec_index_vector(idx, 0)[0] - 0.6f) < 1e-6f);
	EXPECT(vec_index_search(idx, 1, q, 1, NULL, &id, &sc, NULL) == 0);
	EXPECT(id == 0 && fabsf(sc - 1.0f) < 1e-6f);
	vec_index_close(idx);
}

static void test_bad_magic(void)
{
	size_t len;
	unsigned char *b;
	struct vec_errbuf eb = { 0 };

	EXPECT(make_index(unit_tmp_path("m.vec"), VEC_METRIC_L2) == 0);
	b = unit_slurp(unit_tmp_path("m.vec"), &len);
	if (!b)
		return;
	b[1] = 'X';
	EXPECT(open_bytes(b, len, 0, &eb) == VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "not a vec index (bad magic)") != NULL);
	free(b);
}

static void test_header_flip(void)
{
	size_t len;
	unsigned char *b;
	struct vec_errbuf eb = { 0 };

	EXPECT(make_index(unit_tmp_path("h.vec"), VEC_METRIC_L2) == 0);
	b = unit_slurp(unit_tmp_path("h.vec"), &len);
	if (!b)
		return;
	b[33] ^= 0x10; /* count */
	EXPECT(open_bytes(b, len, 0, &eb) == VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "header checksum mismatch") != NULL);
	free(b);
}

static void test_toc_flip(void)
{
	size_t len;
	unsigned char *b;
	struct vec_errbuf eb = { 0 };

	EXPECT(make_index(unit_tmp_path("t.vec"), VEC_METRIC_L2) == 0);
	b = unit_slurp(unit_tmp_path("t.vec"), &len);
	if (!b)
		return;
	b[64 + 16] ^= 1; /* first section's length */
	EXPECT(open_bytes(b, len, 0, &eb) == VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "section table checksum mismatch") != NULL);
	free(b);
}

static void test_section_flip(void)
{
	size_t len;
	unsigned char *b;
	struct vec_errbuf eb = { 0 };
	uint32_t off;

	EXPECT(make_index(unit_tmp_path("v.vec"), VEC_METRIC_L2) == 0);
	b = unit_slurp(unit_tmp_path("v.vec"), &len);
	if (!b)
		return;
	off = le32(b + 64 + 8); /* VECS offset */
	b[off + 5] ^= 0x40;
	/* A plain open does not read the vectors: it still opens... */
	EXPECT(open_bytes(b, len, 0, &eb) == 0);
	/* ...but verification names the damaged section. */
	EXPECT(open_bytes(b, len, VEC_OPEN_VERIFY, &eb) == VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "section 'VECS' checksum mismatch") != NULL);
	free(b);
}

static void test_truncated(void)
{
	size_t len;
	unsigned char *b;
	struct vec_errbuf eb = { 0 };

	EXPECT(make_index(unit_tmp_path("tr.vec"), VEC_METRIC_L2) == 0);
	b = unit_slurp(unit_tmp_path("tr.vec"), &len);
	if (!b)
		return;
	EXPECT(open_bytes(b, len - 100, 0, &eb) == VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "truncated index") != NULL);
	EXPECT(open_bytes(b, 40, 0, &eb) == VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "truncated index") != NULL);
	EXPECT(open_bytes(b, 0, 0, &eb) == VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "not a vec index") != NULL);
	free(b);
}

static void test_future_version(void)
{
	size_t len;
	unsigned char *b;
	struct vec_errbuf eb = { 0 };

	EXPECT(make_index(unit_tmp_path("f.vec"), VEC_METRIC_L2) == 0);
	b = unit_slurp(unit_tmp_path("f.vec"), &len);
	if (!b)
		return;
	b[8] = 2; /* read version 2 */
	fix_header_crc(b);
	EXPECT(open_bytes(b, len, 0, &eb) == VEC_E_VERSION);
	EXPECT(strstr(eb.msg, "format version 2 is newer than this tool (1)") != NULL);
	/* A newer write version still reads, but is not written to. */
	b[8] = 1;
	b[10] = 3;
	fix_header_crc(b);
	EXPECT(open_bytes(b, len, 0, &eb) == 0);
	EXPECT(open_bytes(b, len, VEC_OPEN_WRITE, &eb) == VEC_E_VERSION);
	EXPECT(strstr(eb.msg, "read-only") != NULL);
	free(b);
}

static void test_unknown_sections(void)
{
	size_t len;
	unsigned char *b;
	struct vec_errbuf eb = { 0 };
	uint32_t n, i, norm = 0;

	EXPECT(make_index(unit_tmp_path("u.vec"), VEC_METRIC_L2) == 0);
	b = unit_slurp(unit_tmp_path("u.vec"), &len);
	if (!b)
		return;
	n = le32(b + 48);
	for (i = 0; i < n; i++)
		if (!memcmp(b + 64 + i * 32, "NORM", 4))
			norm = i;
	EXPECT(norm != 0);
	/* Rename the optional NORM section to an unknown id: skipped. */
	memcpy(b + 64 + norm * 32, "ZZZZ", 4);
	fix_toc_crc(b);
	EXPECT(open_bytes(b, len, VEC_OPEN_VERIFY, &eb) == 0);
	/* Mark it required: refused as too new. */
	b[64 + norm * 32 + 4] = 1;
	fix_toc_crc(b);
	EXPECT(open_bytes(b, len, 0, &eb) == VEC_E_VERSION);
	EXPECT(strstr(eb.msg, "required section 'ZZZZ'") != NULL);
	free(b);
}

static void test_hostile_sizes(void)
{
	size_t len;
	unsigned char *b;
	struct vec_errbuf eb = { 0 };

	EXPECT(make_index(unit_tmp_path("z.vec"), VEC_METRIC_L2) == 0);
	b = unit_slurp(unit_tmp_path("z.vec"), &len);
	if (!b)
		return;
	/* A count that the VECS section does not hold. */
	put32(b + 32, N + 1);
	fix_header_crc(b);
	EXPECT(open_bytes(b, len, 0, &eb) == VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "section 'VECS' is") != NULL);
	/* A count so large that count x dim x 4 overflows. */
	put32(b + 32, 0xffffffffu);
	put32(b + 36, 0xffffffffu);
	fix_header_crc(b);
	EXPECT(open_bytes(b, len, 0, &eb) == VEC_E_CORRUPT);
	/* A section offset past the end of the file. */
	put32(b + 32, N);
	put32(b + 36, 0);
	put32(b + 64 + 8, 0x7fffffc0u);
	fix_toc_crc(b);
	EXPECT(open_bytes(b, len, 0, &eb) == VEC_E_CORRUPT);
	EXPECT(strstr(eb.msg, "truncated index") != NULL);
	free(b);
}

static void test_not_regular(void)
{
	struct vec_index *idx;
	struct vec_errbuf eb = { 0 };

	EXPECT(vec_index_open(&idx, unit_tmpdir, 0, &eb) == VEC_E_IO);
	EXPECT(strstr(eb.msg, "is a directory") != NULL);
	EXPECT(vec_index_open(&idx, unit_tmp_path("missing.vec"), 0, &eb) == VEC_E_IO);
	EXPECT(strstr(eb.msg, "No such file") != NULL);
}

static void test_save_failure_leaves_target(void)
{
	struct vec_index *idx;
	struct vec_errbuf eb = { 0 };
	float x[DIM] = { 1, 2, 3, 4, 5 };
	char p[4300];

	snprintf(p, sizeof p, "%s/no/such/dir/x.vec", unit_tmpdir);
	EXPECT(vec_index_new(&idx, VEC_TYPE_FLAT, VEC_METRIC_L2, DIM, NULL) == 0);
	EXPECT(vec_index_add(idx, 1, x, NULL, NULL) == 0);
	EXPECT(vec_index_save(idx, p, &eb) == VEC_E_IO);
	EXPECT(strstr(eb.msg, "cannot create temporary file") != NULL);
	EXPECT(vec_index_save(idx, unit_tmpdir, &eb) == VEC_E_IO);
	EXPECT(strstr(eb.msg, "is a directory") != NULL);
	vec_index_close(idx);
}

static void test_open_mem(void)
{
	size_t len;
	unsigned char *b;
	struct vec_index *idx;
	struct vec_index_info info;

	EXPECT(make_index(unit_tmp_path("mem.vec"), VEC_METRIC_IP) == 0);
	b = unit_slurp(unit_tmp_path("mem.vec"), &len);
	if (!b)
		return;
	EXPECT(vec_index_open_mem(&idx, b, len, VEC_OPEN_VERIFY, NULL) == 0);
	if (idx) {
		vec_index_info(idx, &info);
		EXPECT(info.count == N && info.metric == VEC_METRIC_IP);
		vec_index_close(idx);
	}
	/* Every prefix of a valid file is refused, never read past. */
	for (size_t cut = 0; cut + 64 < len; cut += 7) {
		unsigned char *c = malloc(cut ? cut : 1);
		memcpy(c, b, cut);
		EXPECT(vec_index_open_mem(&idx, c, cut, 0, NULL) != 0);
		free(c);
	}
	free(b);
}

/*
 * A batch that will touch most of a mapped index maps it whole first
 * (vec_populate_worth decides): the rule's edges, and a populated search
 * answering exactly as the same index searched from memory.
 */
static void test_populate(void)
{
	const uint64_t fashion = 246997632; /* a 784-d hnsw index, 60,303 pages */
	struct vec_index *f = NULL, *m = NULL;
	unsigned char *b;
	size_t len;
	float x[N * DIM], s1[N * 4], s2[N * 4];
	uint64_t i1[N * 4], i2[N * 4];

	EXPECT(!vec_populate_worth(1, fashion));
	EXPECT(!vec_populate_worth(941, fashion));
	EXPECT(vec_populate_worth(942, fashion));
	EXPECT(vec_populate_worth(4096, fashion));
	EXPECT(vec_populate_worth(1, 4096 * 64));
	EXPECT(!vec_populate_worth(1, 4096 * 128));
	EXPECT(!vec_populate_worth(UINT64_MAX, VEC_POPULATE_MAX + 1));
	EXPECT(vec_populate_worth(UINT64_MAX, VEC_POPULATE_MAX));

	fill(x, N, DIM, 3);
	EXPECT(make_index(unit_tmp_path("pop.vec"), VEC_METRIC_L2) == 0);
	b = unit_slurp(unit_tmp_path("pop.vec"), &len);
	EXPECT(b && vec_populate_worth(N, len));
	EXPECT(vec_index_open(&f, unit_tmp_path("pop.vec"), 0, NULL) == 0);
	EXPECT(b && vec_index_open_mem(&m, b, len, 0, NULL) == 0);
	if (f && m) {
		EXPECT(vec_index_search(f, N, x, 4, NULL, i1, s1, NULL) == 0);
		EXPECT(vec_index_search(m, N, x, 4, NULL, i2, s2, NULL) == 0);
		EXPECT(!memcmp(i1, i2, sizeof i1) && !memcmp(s1, s2, sizeof s1));
	}
	vec_index_close(f);
	vec_index_close(m);
	free(b);
}

void suite_file(void)
{
	RUN(test_round_trip);
	RUN(test_search_after_open);
	RUN(test_add_to_opened);
	RUN(test_add_refuses_nan);
	RUN(test_cos_normalises);
	RUN(test_bad_magic);
	RUN(test_header_flip);
	RUN(test_toc_flip);
	RUN(test_section_flip);
	RUN(test_truncated);
	RUN(test_future_version);
	RUN(test_unknown_sections);
	RUN(test_hostile_sizes);
	RUN(test_not_regular);
	RUN(test_save_failure_leaves_target);
	RUN(test_open_mem);
	RUN(test_populate);
}
