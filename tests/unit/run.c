/* run.c - the unit test runner: runs every suite, prints the totals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "file.h"
#include "internal.h"
#include "unit.h"

int unit_passed, unit_failed, unit_cur_failed;
const char *unit_cur_name = "";
char unit_tmpdir[4096];

char *unit_tmp_path(const char *name)
{
	static char buf[8][4200];
	static int next;
	char *p = buf[next++ % 8];
	snprintf(p, sizeof buf[0], "%s/%s", unit_tmpdir, name);
	return p;
}

uint8_t *unit_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) != NULL &&
	    fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	if (b)
		*len = (size_t)n;
	return b;
}

void unit_reseal(uint8_t *b, size_t len)
{
	uint64_t toc_off = vec_get_le64(b + 40);
	uint32_t n = vec_get_le32(b + 48);
	uint8_t *toc = b + toc_off;

	if (len < VEC_FILE_HEADER_SIZE || n > VEC_SECTIONS_MAX ||
	    toc_off > len || (uint64_t)n * VEC_FILE_TOC_ENTRY > len - toc_off)
		return;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *e = toc + (size_t)i * VEC_FILE_TOC_ENTRY;
		uint64_t off = vec_get_le64(e + 8), l = vec_get_le64(e + 16);
		if (off <= len && l <= len - off)
			vec_put_le32(e + 24, (uint32_t)crc32(0L, b + off, (uInt)l));
	}
	vec_put_le32(b + 52, (uint32_t)crc32(0L, toc, n * VEC_FILE_TOC_ENTRY));
	vec_put_le32(b + 60, (uint32_t)crc32(0L, b, 60));
}

static void rm_rf(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "unit: could not remove %s\n", dir);
}

static int wanted(int argc, char **argv, const char *name)
{
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	/* Arguments name the suites to run; none: all of them. */
	const char *base = getenv("TMPDIR");

	snprintf(unit_tmpdir, sizeof unit_tmpdir, "%s/vec-unit-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(unit_tmpdir)) {
		perror("unit: mkdtemp");
		return 1;
	}
#define SUITE(name) if (suite_##name && wanted(argc, argv, #name)) suite_##name()
	SUITE(error);
	SUITE(distance);
	SUITE(topk);
	SUITE(flat);
	SUITE(io);
	SUITE(file);
	SUITE(index);
	SUITE(hnsw);
	SUITE(kmeans);
	SUITE(ivf);
	SUITE(pq);
	SUITE(sq8);
	SUITE(ivfpq);
	SUITE(ids);
	SUITE(merge);
	rm_rf(unit_tmpdir);
	printf("unit: %d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}
