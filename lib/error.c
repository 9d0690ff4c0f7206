/* error.c - error codes, messages and small parsing helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

const char *vec_version(void)
{
	return VEC_VERSION_STRING;
}

const char *vec_strerror(int code)
{
	switch (code) {
	case VEC_OK: return "success";
	case VEC_E_IO: return "input/output error";
	case VEC_E_FORMAT: return "malformed input";
	case VEC_E_CORRUPT: return "index file is corrupt";
	case VEC_E_VERSION: return "index file needs a newer version";
	case VEC_E_NOMEM: return "out of memory";
	case VEC_E_USAGE: return "invalid argument";
	case VEC_E_DIM: return "dimension mismatch";
	}
	return "unknown error";
}

int vec_err_at(struct vec_errbuf *eb, int code, int line, const char *fmt, ...)
{
	if (eb) {
		va_list ap;
		va_start(ap, fmt);
		eb->code = code;
		eb->line = line;
		eb->record = 0;
		vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}

int vec_metric_parse(const char *name)
{
	if (!name)
		return -1;
	if (!strcmp(name, "l2") || !strcmp(name, "euclidean"))
		return VEC_METRIC_L2;
	if (!strcmp(name, "ip") || !strcmp(name, "dot"))
		return VEC_METRIC_IP;
	if (!strcmp(name, "cos") || !strcmp(name, "cosine") ||
	    !strcmp(name, "angular"))
		return VEC_METRIC_COS;
	return -1;
}

const char *vec_metric_name(int metric)
{
	switch (metric) {
	case VEC_METRIC_L2: return "l2";
	case VEC_METRIC_IP: return "ip";
	case VEC_METRIC_COS: return "cos";
	}
	return "?";
}

int vec_type_parse(const char *name)
{
	if (name && !strcmp(name, "flat"))
		return VEC_TYPE_FLAT;
	if (name && !strcmp(name, "hnsw"))
		return VEC_TYPE_HNSW;
	if (name && !strcmp(name, "ivf"))
		return VEC_TYPE_IVF;
	if (name && !strcmp(name, "ivfpq"))
		return VEC_TYPE_IVFPQ;
	if (name && !strcmp(name, "pq"))
		return VEC_TYPE_PQ;
	if (name && !strcmp(name, "ivfsq8"))
		return VEC_TYPE_IVFSQ8;
	if (name && !strcmp(name, "sq8"))
		return VEC_TYPE_SQ8;
	return -1;
}

const char *vec_type_name(int type)
{
	switch (type) {
	case VEC_TYPE_FLAT: return "flat";
	case VEC_TYPE_HNSW: return "hnsw";
	case VEC_TYPE_IVF: return "ivf";
	case VEC_TYPE_IVFPQ: return "ivfpq";
	case VEC_TYPE_PQ: return "pq";
	case VEC_TYPE_IVFSQ8: return "ivfsq8";
	case VEC_TYPE_SQ8: return "sq8";
	}
	return "?";
}

int vec_type_is_ivf(int type)
{
	return type >= VEC_TYPE_IVF && type <= VEC_TYPE_SQ8;
}

int vec_type_is_coded(int type)
{
	return type > VEC_TYPE_IVF && type <= VEC_TYPE_SQ8;
}

int vec_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return VEC_E_USAGE;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return VEC_E_USAGE;
	*out = v;
	return VEC_OK;
}
