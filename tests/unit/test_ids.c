/* test_ids.c - stored ids: the set, the shard hash, adding, searching,
 * saving and opening an index that stores ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "vec.h"

#define DIM 4

static void random_vectors(float *x, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n * DIM; i++)
		x[i] = unit_uniform(&seed);
}

/* Reference values from a big-integer evaluation of the formula in
 * vec-build(1) (SplitMix64's finaliser), not from this code. */
static void test_shard_of_matches_the_documented_formula(void)
{
	EXPECT(vec_shard_of(0, 7) == 2);
	EXPECT(vec_shard_of(1, 7) == 2);
	EXPECT(vec_shard_of(42, 7) == 5);
	EXPECT(vec_shard_of(UINT64_MAX - 1, 7) == 0);
	EXPECT(vec_shard_of(0, 1000) == 535);
	EXPECT(vec_shard_of(1, 1000) == 465);
	EXPECT(vec_shard_of(42, 1000) == 413);
	EXPECT(vec_shard_of(UINT64_MAX - 1, 1000) == 313);
	EXPECT(vec_shard_of(12345, 1) == 0);
	EXPECT(vec_shard_of(12345, 0) == 0);
}

/* Consecutive ids spread evenly: each of 8 shards within 2% of 1/8. */
static void test_shards_are_balanced(void)
{
	uint64_t count[8] = { 0 };
	for (uint64_t id = 0; id < 200000; id++)
		count[vec_shard_of(id, 8)]++;
	for (int s = 0; s < 8; s++)
		EXPECT_MSG(count[s] > 24500 && count[s] < 25500, "shard %d: %llu", s,
			   (unsigned long long)count[s]);
}

/* Ids come back from search; a duplicate batch changes nothing. */
static void test_add_ids_search_and_refuse(void)
{
	struct vec_index *idx;
	struct vec_errbuf eb = { 0 };
	float x[100 * DIM], sc[3];
	uint64_t ids[100], got[3], dup[2];
	const char *keys[3];
	struct vec_search_opts so = VEC_SEARCH_OPTS_INIT;

	random_vectors(x, 100, 9);
	for (int i = 0; i < 100; i++)
		ids[i] = 1000003ull * (uint64_t)(100 - i);
	EXPECT(vec_index_new(&idx, VEC_TYPE_FLAT, VEC_METRIC_L2, DIM, &eb) == 0);
	EXPECT(!vec_index_has_ids(idx));
	EXPECT(vec_index_add_ids(idx, 100, x, NULL, ids, &eb) == 0);
	EXPECT(vec_index_has_ids(idx));
	EXPECT(vec_index_id(idx, 7) == ids[7]);
	EXPECT(vec_index_id(idx, 100) == UINT64_MAX);
	so.keys = keys;
	for (int q = 0; q < 100; q += 33) {
		EXPECT(vec_index_search(idx, 1, x + q * DIM, 3, &so, got, sc, &eb) == 0);
		EXPECT_MSG(got[0] == ids[q] && sc[0] == 0.0f, "query %d: %llu", q,
			   (unsigned long long)got[0]);
		EXPECT(keys[0] == NULL);
	}
	/* One new id, then one already stored: refused whole. */
	dup[0] = 5;
	dup[1] = ids[50];
	memset(&eb, 0, sizeof eb);
	EXPECT(vec_index_add_ids(idx, 2, x, NULL, dup, &eb) == VEC_E_FORMAT);
	EXPECT(eb.record == 2);
	EXPECT(strstr(eb.msg, "is already in the index") != NULL);
	/* Twice inside one batch. */
	dup[1] = 5;
	memset(&eb, 0, sizeof eb);
	EXPECT(vec_index_add_ids(idx, 2, x, NULL, dup, &eb) == VEC_E_FORMAT);
	EXPECT(eb.record == 2);
	/* The reserved id. */
	dup[0] = UINT64_MAX;
	EXPECT(vec_index_add_ids(idx, 1, x, NULL, dup, &eb) == VEC_E_FORMAT);
	{
		struct vec_index_info info;
		vec_index_info(idx, &info);
		EXPECT(info.count == 100);
	}
	/* After the refusals, 5 is still free; then ids continue past the
	 * largest (100 * 1000003). */
	dup[0] = 5;
	EXPECT(vec_index_add_ids(idx, 1, x + DIM, NULL, dup, &eb) == 0);
	EXPECT(vec_index_add(idx, 1, x + 2 * DIM, NULL, &eb) == 0);
	EXPECT(vec_index_id(idx, 100) == 5);
	EXPECT(vec_index_id(idx, 101) == 100 * 1000003ull + 1);
	vec_index_close(idx);
}

/* Round trip through a file, for every family; the file's ids are the
 * ones given, and equal scores come out by the smaller id. */
static void test_ids_round_trip_every_family(void)
{
	static const int types[] = { VEC_TYPE_FLAT, VEC_TYPE_HNSW, VEC_TYPE_IVF,
				     VEC_TYPE_IVFPQ, VEC_TYPE_SQ8 };
	enum { N = 300 };
	float *x = malloc(N * DIM * sizeof *x);
	uint64_t ids[N];

	random_vectors(x, N, 4);
	for (int i = 0; i < N; i++)
		ids[i] = (uint64_t)(N - i) * 10;
	/* Vectors 0 and 1 are equal: their ids 3000 and 2990 tie. */
	memcpy(x + DIM, x, DIM * sizeof *x);
	for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
		struct vec_index_params p = VEC_INDEX_PARAMS_INIT;
		struct vec_index *idx, *back;
		struct vec_errbuf eb = { 0 };
		struct vec_search_opts so = VEC_SEARCH_OPTS_INIT;
		uint64_t a[5 * 4], b[5 * 4];
		float sa[5 * 4], sb[5 * 4];
		const char *path = unit_tmp_path("ids.vec");

		p.type = types[t];
		p.dim = DIM;
		p.nlist = types[t] == VEC_TYPE_SQ8 ? 0 : 4;
		p.train_size = N;
		p.refine = types[t] == VEC_TYPE_IVFPQ || types[t] == VEC_TYPE_SQ8 ? 10 : 0;
		so.nprobe = 100;
		if (types[t] == VEC_TYPE_HNSW || vec_type_is_ivf(types[t])) {
			p.type = vec_type_is_ivf(types[t]) ? types[t] : VEC_TYPE_FLAT;
		}
		EXPECT(vec_index_create(&idx, &p, &eb) == 0);
		EXPECT_MSG(vec_index_add_ids(idx, N, x, NULL, ids, &eb) == 0, "%s", eb.msg);
		if (types[t] == VEC_TYPE_HNSW) {
			p.type = VEC_TYPE_HNSW;
			EXPECT(vec_index_convert(idx, &p, &eb) == 0);
		}
		EXPECT_MSG(vec_index_save(idx, path, &eb) == 0, "%s", eb.msg);
		EXPECT(vec_index_search(idx, 4, x, 5, &so, a, sa, &eb) == 0);
		EXPECT(vec_index_open(&back, path, VEC_OPEN_VERIFY, &eb) == 0);
		EXPECT(vec_index_has_ids(back));
		EXPECT(vec_index_search(back, 4, x, 5, &so, b, sb, &eb) == 0);
		EXPECT(memcmp(a, b, sizeof a) == 0 && memcmp(sa, sb, sizeof sa) == 0);
		EXPECT_MSG(b[0] == 2990 && b[1] == 3000, "%s: %llu %llu",
			   vec_type_name(types[t]), (unsigned long long)b[0],
			   (unsigned long long)b[1]);
		EXPECT(b[5] == 2990 && b[6] == 3000);
		EXPECT(b[10] == 2980 && b[15] == 2970);
		vec_index_close(back);
		vec_index_close(idx);
	}
	free(x);
}

/* An IDS section of the wrong length, or with a repeated id, is damage. */
static void test_bad_ids_section_is_refused(void)
{
	struct vec_index *idx;
	struct vec_errbuf eb = { 0 };
	float x[3 * DIM];
	uint64_t ids[3] = { 7, 8, 9 };
	const char *path = unit_tmp_path("bad.vec");
	FILE *f;
	long len;
	uint8_t *b;
	struct vec_index_info info;

	random_vectors(x, 3, 2);
	EXPECT(vec_index_new(&idx, VEC_TYPE_FLAT, VEC_METRIC_IP, DIM, &eb) == 0);
	EXPECT(vec_index_add_ids(idx, 3, x, NULL, ids, &eb) == 0);
	EXPECT(vec_index_save(idx, path, &eb) == 0);
	vec_index_close(idx);
	EXPECT(vec_index_open(&idx, path, 0, &eb) == 0);
	vec_index_info(idx, &info);
	vec_index_close(idx);
	f = fopen(path, "rb");
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	b = malloc((size_t)len);
	EXPECT(fread(b, 1, (size_t)len, f) == (size_t)len);
	fclose(f);
	for (size_t s = 0; s < info.n_sections; s++) {
		if (strcmp(info.sections[s].id, "IDS ") != 0)
			continue;
		EXPECT(info.sections[s].required);
		/* id 8 -> 7 */
		b[info.sections[s].offset + 8] = 7;
		unit_reseal(b, (size_t)len);
		memset(&eb, 0, sizeof eb);
		EXPECT(vec_index_open_mem(&idx, b, (size_t)len, 0, &eb) == 0);
		vec_index_close(idx);
		EXPECT(vec_index_open_mem(&idx, b, (size_t)len, VEC_OPEN_VERIFY, &eb) == VEC_E_CORRUPT);
		EXPECT(strstr(eb.msg, "id 7 is stored twice") != NULL);
		/* Length 16 for 3 vectors: the table entry's length field. */
		b[info.sections[s].offset + 8] = 8;
		for (size_t e = 0; e < info.n_sections; e++) {
			size_t ent = 64 + 32 * e;
			if (memcmp(b + ent, "IDS ", 4) == 0)
				b[ent + 16] = 16;
		}
		unit_reseal(b, (size_t)len);
		EXPECT(vec_index_open_mem(&idx, b, (size_t)len, 0, &eb) == VEC_E_CORRUPT);
		EXPECT(strstr(eb.msg, "section 'IDS ' is 16 bytes, expected 3 x 8") != NULL);
	}
	free(b);
}

void suite_ids(void)
{
	RUN(test_shard_of_matches_the_documented_formula);
	RUN(test_shards_are_balanced);
	RUN(test_add_ids_search_and_refuse);
	RUN(test_ids_round_trip_every_family);
	RUN(test_bad_ids_section_is_refused);
}
