/*
 * fault.c - a fault injector for the tests, loaded with LD_PRELOAD.
 *
 * It stands in front of the C library calls the index writer makes and,
 * as VEC_FAULT says, lets the Nth one fail with an errno or kills the
 * process (SIGKILL) right there.  VEC_FAULT is a comma-separated list of
 *
 *   CALL:N:WHAT     CALL is pwrite, fsync, rename, mkstemp or fchmod; N the
 *                   call's number (1 = the first); WHAT an errno name
 *                   (EIO, ENOSPC, EDQUOT, EFBIG, EACCES, EROFS, EXDEV) or
 *                   "kill"
 *   bytes:N:kill    SIGKILL once N bytes in all have been written by
 *                   pwrite (the write that crosses N is cut at N first)
 *
 * Nothing is injected without VEC_FAULT; every call is passed through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

enum { C_PWRITE, C_FSYNC, C_RENAME, C_MKSTEMP, C_FCHMOD, C_BYTES, C_N };
static const char *const names[C_N] = { "pwrite", "fsync", "rename",
					"mkstemp", "fchmod", "bytes" };

#define RULES_MAX 16
static struct rule {
	int call;
	unsigned long long n;
	int err; /* 0: kill */
} rules[RULES_MAX];
static int nrules = -1;
static unsigned long long calls[C_N], written;

static int errno_of(const char *s)
{
	static const struct { const char *n; int e; } t[] = {
		{ "EIO", EIO },       { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT },
		{ "EFBIG", EFBIG },   { "EACCES", EACCES }, { "EROFS", EROFS },
		{ "EXDEV", EXDEV },   { "kill", 0 },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (!strcmp(s, t[i].n))
			return t[i].e;
	return -1;
}

static void parse(void)
{
	const char *env = getenv("VEC_FAULT");
	char buf[1024], *save = NULL, *tok;

	nrules = 0;
	if (!env || !*env)
		return;
	snprintf(buf, sizeof buf, "%s", env);
	for (tok = strtok_r(buf, ",", &save); tok && nrules < RULES_MAX;
	     tok = strtok_r(NULL, ",", &save)) {
		char call[32], what[32];
		unsigned long long n;
		int c = -1, e;

		if (sscanf(tok, "%31[a-z]:%llu:%31s", call, &n, what) != 3)
			goto bad;
		for (int i = 0; i < C_N; i++)
			if (!strcmp(call, names[i]))
				c = i;
		if (c < 0 || (e = errno_of(what)) < 0 || (c == C_BYTES && e))
			goto bad;
		rules[nrules].call = c;
		rules[nrules].n = n;
		rules[nrules].err = e;
		nrules++;
		continue;
bad:
		fprintf(stderr, "fault: bad VEC_FAULT rule '%s'\n", tok);
		_exit(97);
	}
}

/* Count a call; return the errno to fail it with, 0 to let it through
 * (a kill rule does not return). */
static int hit(int call)
{
	if (nrules < 0)
		parse();
	calls[call]++;
	for (int i = 0; i < nrules; i++)
		if (rules[i].call == call && rules[i].n == calls[call]) {
			if (!rules[i].err)
				raise(SIGKILL);
			return rules[i].err;
		}
	return 0;
}

static void *next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f) {
		fprintf(stderr, "fault: no %s\n", name);
		_exit(98);
	}
	return f;
}

static ssize_t do_pwrite(const char *sym, int fd, const void *p, size_t n,
			 off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	int e;

	if (!real)
		real = (ssize_t (*)(int, const void *, size_t, off_t))next(sym);
	if ((e = hit(C_PWRITE))) {
		errno = e;
		return -1;
	}
	for (int i = 0; i < nrules; i++)
		if (rules[i].call == C_BYTES && written < rules[i].n &&
		    written + n >= rules[i].n) {
			size_t part = (size_t)(rules[i].n - written);
			if (part)
				real(fd, p, part, off);
			raise(SIGKILL);
		}
	{
		ssize_t w = real(fd, p, n, off);
		if (w > 0)
			written += (unsigned long long)w;
		return w;
	}
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
	return do_pwrite("pwrite", fd, p, n, off);
}

ssize_t pwrite64(int fd, const void *p, size_t n, off_t off)
{
	return do_pwrite("pwrite64", fd, p, n, off);
}

int fsync(int fd)
{
	static int (*real)(int);
	int e;

	if (!real)
		real = (int (*)(int))next("fsync");
	if ((e = hit(C_FSYNC))) {
		errno = e;
		return -1;
	}
	return real(fd);
}

int rename(const char *a, const char *b)
{
	static int (*real)(const char *, const char *);
	int e;

	if (!real)
		real = (int (*)(const char *, const char *))next("rename");
	if ((e = hit(C_RENAME))) {
		errno = e;
		return -1;
	}
	return real(a, b);
}

static int do_mkstemp(const char *sym, char *t)
{
	int (*real)(char *) = (int (*)(char *))next(sym);
	int e;

	if ((e = hit(C_MKSTEMP))) {
		errno = e;
		return -1;
	}
	return real(t);
}

int mkstemp(char *t)
{
	return do_mkstemp("mkstemp", t);
}

int mkstemp64(char *t)
{
	return do_mkstemp("mkstemp64", t);
}

int fchmod(int fd, mode_t m)
{
	static int (*real)(int, mode_t);
	int e;

	if (!real)
		real = (int (*)(int, mode_t))next("fchmod");
	if ((e = hit(C_FCHMOD))) {
		errno = e;
		return -1;
	}
	return real(fd, m);
}
