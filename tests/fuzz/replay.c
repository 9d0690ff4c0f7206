/*
 * replay.c - run the fuzz targets over the committed corpus without
 * libFuzzer, so that make test (and make test SAN=1) replays every input
 * that ever mattered.  Usage: replay CORPUS_DIR [TARGET]
 *
 * CORPUS_DIR holds one directory per target (index, fvecs, csv, npy, gzip).
 * Prints one "ok" / "not ok" line per target; a crash kills the run, which
 * the caller counts as a failure.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int fuzz_index(const uint8_t *data, size_t size);
int fuzz_fvecs(const uint8_t *data, size_t size);
int fuzz_csv(const uint8_t *data, size_t size);
int fuzz_npy(const uint8_t *data, size_t size);
int fuzz_gzip(const uint8_t *data, size_t size);

static const struct {
	const char *name;
	int (*fn)(const uint8_t *, size_t);
} targets[] = {
	{ "index", fuzz_index }, { "fvecs", fuzz_fvecs }, { "csv", fuzz_csv },
	{ "npy", fuzz_npy },     { "gzip", fuzz_gzip },
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run fn over every file of dir (in name order); -1 if dir is unusable. */
static long replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t))
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	long done = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = realloc(names, cap * sizeof *names);
			if (!names)
				abort();
		}
		if (!(names[n++] = strdup(e->d_name)))
			abort();
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		FILE *f;
		uint8_t *buf;
		long len;

		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= sizeof path ||
		    !(f = fopen(path, "rb")) || fseek(f, 0, SEEK_END) != 0 ||
		    (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
			fprintf(stderr, "replay: %s: cannot read\n", path);
			if (f)
				fclose(f);
			done = -1;
			break;
		}
		/* An exact-size heap copy, as libFuzzer gives, so that a read
		 * past the end is caught under AddressSanitizer. */
		buf = malloc(len ? (size_t)len : 1);
		if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len)
			abort();
		fclose(f);
		fn(buf, (size_t)len);
		free(buf);
		done++;
		free(names[i]);
		names[i] = NULL;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return done;
}

int main(int argc, char **argv)
{
	int failed = 0, num = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: replay CORPUS_DIR [TARGET]\n");
		return 2;
	}
	for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
		char dir[4096];
		long n;

		if (argc == 3 && strcmp(argv[2], targets[t].name) != 0)
			continue;
		if ((size_t)snprintf(dir, sizeof dir, "%s/%s", argv[1],
				     targets[t].name) >= sizeof dir)
			n = -1;
		else
			n = replay_dir(dir, targets[t].fn);
		num++;
		if (n <= 0) {
			printf("not ok %d fuzz corpus %s: %s\n", num, targets[t].name,
			       n < 0 ? "cannot read the corpus" : "empty corpus");
			failed++;
		} else {
			printf("ok %d fuzz corpus %s: %ld inputs replayed\n", num,
			       targets[t].name, n);
		}
	}
	return failed ? 1 : 0;
}
