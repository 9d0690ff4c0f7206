/*
 * fuzz_index.c - an index file from hostile bytes: open it (from memory, as
 * the commands do from an mmap), describe it, verify it, search it, and
 * grow it by one vector.
 *
 * The first byte picks what to do: bit 0 reseals the file (recomputes every
 * checksum of the table, the header and the sections the table names, so
 * that mutations reach the parsers behind the checksums instead of being
 * stopped by them), bit 1 opens with VEC_OPEN_VERIFY, bit 2 adds a vector,
 * bits 4-7 give k - 1.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "file.h"
#include "fuzz.h"
#include "internal.h"

static void reseal(uint8_t *b, size_t len)
{
	uint64_t toc_off;
	uint32_t n;

	if (len < VEC_FILE_HEADER_SIZE)
		return;
	toc_off = vec_get_le64(b + 40);
	n = vec_get_le32(b + 48);
	if (n <= VEC_SECTIONS_MAX && toc_off <= len &&
	    (uint64_t)n * VEC_FILE_TOC_ENTRY <= len - toc_off) {
		uint8_t *toc = b + toc_off;
		for (uint32_t i = 0; i < n; i++) {
			uint8_t *e = toc + (size_t)i * VEC_FILE_TOC_ENTRY;
			uint64_t off = vec_get_le64(e + 8), l = vec_get_le64(e + 16);
			if (off <= len && l <= len - off)
				vec_put_le32(e + 24, (uint32_t)crc32(0L, b + off, (uInt)l));
		}
		vec_put_le32(b + 52, (uint32_t)crc32(0L, toc, n * VEC_FILE_TOC_ENTRY));
	}
	vec_put_le32(b + 60, (uint32_t)crc32(0L, b, 60));
}

FUZZ_TARGET(index)
{
	struct vec_errbuf eb;
	struct vec_index *idx = NULL;
	struct vec_index_info info;
	uint8_t mode, *buf;
	size_t len, cap;

	if (size < 1)
		return 0;
	mode = data[0];
	len = size - 1;
	/* An mmap is page aligned and zero filled to the page's end: give
	 * the library the same (64-byte alignment, zero padding). */
	cap = (len + 63) / 64 * 64 + 64;
	buf = aligned_alloc(64, cap);
	if (!buf)
		abort();
	memset(buf, 0, cap);
	memcpy(buf, data + 1, len);
	if (mode & 1)
		reseal(buf, len);

	if (vec_index_open_mem(&idx, buf, len, (mode & 2) ? VEC_OPEN_VERIFY : 0,
			       &eb) != VEC_OK) {
		if (!eb.msg[0])
			abort(); /* every refusal says why */
		free(buf);
		return 0;
	}
	vec_index_info(idx, &info);
	vec_index_stats(idx, &info);
	if (vec_index_verify(idx, &eb) != VEC_OK && !eb.msg[0])
		abort();

	if (info.dim >= 1 && info.dim <= VEC_DIM_MAX) {
		size_t k = (size_t)(mode >> 4) + 1, dim = info.dim;
		struct vec_search_opts so = VEC_SEARCH_OPTS_INIT;
		float *q = malloc(dim * sizeof *q);
		uint64_t ids[16];
		float scores[16];
		const char *keys[16];

		if (!q)
			abort();
		for (size_t i = 0; i < dim; i++)
			q[i] = (float)((i * 7 + mode) % 13) * 0.25f - 1.0f;
		so.threads = 1;
		so.ef = (mode & 8) ? k : 0;
		so.keys = keys;
		for (int round = 0; round < 2; round++) {
			if (vec_index_search(idx, 1, q, k, &so, ids, scores, &eb) == VEC_OK) {
				for (size_t i = 0; i < k; i++) {
					if (ids[i] == UINT64_MAX)
						continue;
					uint64_t n = info.count + (uint64_t)round, p = 0;
					/* A result that is no vector's id. */
					while (p < n && vec_index_id(idx, p) != ids[i])
						p++;
					if (p == n)
						abort();
					if (keys[i] && keys[i] != vec_index_key(idx, p))
						abort();
					(void)vec_index_vector(idx, p);
				}
			} else if (!eb.msg[0]) {
				abort();
			}
			if (round == 0 && (mode & 4) &&
			    vec_index_add(idx, 1, q, NULL, &eb) != VEC_OK) {
				if (!eb.msg[0])
					abort();
				break;
			}
			if (!(mode & 4))
				break;
		}
		free(q);
	}
	vec_index_close(idx);
	free(buf);
	return 0;
}
