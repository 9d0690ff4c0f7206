/*
 * sq8.h - the 8-bit scalar quantiser (private to lib/): per-dimension
 * codes for the HNSW traversal copy and for inverted-list payloads.
 *
 * Contract:
 *  - A quantiser is dim offsets lo[d] and steps scale[d] >= 0 (scale 0: a
 *    constant dimension, always code 0).  Component d of a vector is coded
 *    as c = round((x - lo) / scale) clamped to [0, 255] and stands for
 *    lo[d] + scale[d] * c, its reconstruction.  struct vec_sq8 is a view:
 *    the caller owns lo and scale (often in a mapped file), and they must
 *    outlive every use of the view.
 *  - Codes are stored a row per vector, stride bytes a row: the dim codes,
 *    then zeros up to stride = dim rounded up to VEC_SQ8_ALIGN.  The zeros
 *    are part of the format (the kernels read whole rows), so only
 *    vec_sq8_encode should write rows.  The HNSW copy packs its rows
 *    instead (see vec_sq_span below); the gather kernels take either.
 *  - A query is quantised against the quantiser, not the other way round:
 *    w[d] = x[d] * scale[d], scaled so that max |w| = 127 and rounded to a
 *    signed byte cq[d]; t is the value of one step of cq and qlo =
 *    <x, lo>.  Then, for a row of codes c,
 *        <x, reconstruction> ~= qlo + t * sum cq[d] c[d]
 *    and the sum is one exact integer dot product (the kernels below).
 *  - Estimates are "smaller is better": l2 (norms given): ||r||^2 -
 *    2 <x, r>, the squared distance to the reconstruction r minus the
 *    query's own squared norm (the same for every row of one query); ip
 *    and cos (norms NULL): -<x, r>.
 *  - Everything here is pure: no allocation, no global state except the
 *    kernel choice (vec_kernels()), safe from many threads at once.
 *    Train, encode and query are deterministic on every host; the
 *    kernels are exact integer arithmetic, so every level gives the same
 *    sums as the scalar one.
 */
#ifndef VEC_SQ8_H
#define VEC_SQ8_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define VEC_SQ8_ALIGN 64 /* code rows are padded to a multiple of this */

/*
 * 4-bit codes (the HNSW traversal copy of long vectors): codes 0..15 and
 * steps scale = range / 15, otherwise the same contract.  A row is
 * vec_sq4_stride(dim) bytes, blocks of 64 bytes for 128 components:
 * byte j of block b holds component 128 b + j in its low nibble and
 * 128 b + 64 + j in its high nibble; components past dim are code 0.
 * The query is quantised exactly as for 8 bits, over 2 x stride bytes
 * (vec_sq_qbytes) in component order, so a row's sum is still one exact
 * integer dot product.  IVF payloads are 8-bit only.
 */
#define VEC_SQ4_BLOCK 128 /* components in one 64-byte block of a 4-bit row */

struct vec_sq8 {
	size_t dim;          /* components of a vector */
	size_t stride;       /* bytes of a code row: vec_sq8_stride(dim), or
				vec_sq4_stride(dim) for 4 bits */
	const float *lo;     /* dim offsets */
	const float *scale;  /* dim steps, >= 0 */
	unsigned bits;       /* 8, or 4 */
};

/* Bytes of one code row for dim components (dim rounded up to 64). */
static inline size_t vec_sq8_stride(size_t dim)
{
	return (dim + VEC_SQ8_ALIGN - 1) / VEC_SQ8_ALIGN * VEC_SQ8_ALIGN;
}

/* Bytes of one 4-bit code row (dim rounded up to 128, two codes a byte). */
static inline size_t vec_sq4_stride(size_t dim)
{
	return (dim + VEC_SQ4_BLOCK - 1) / VEC_SQ4_BLOCK * (VEC_SQ4_BLOCK / 2);
}

/*
 * Packed rows (the HNSW copy): stride is then the row's own bytes, dim
 * for 8 bits and vec_sq4_packed(dim) for 4, not a multiple of 64.  The
 * kernels still read a row in 64-byte blocks, vec_sq_span(stride) bytes
 * from its start: past its end they read the next row's bytes, or after
 * the last row VEC_SQ_SLACK bytes that an array of packed rows must have
 * (vec_sq_slack), and meet zero query bytes there (the AVX-512 levels
 * mask them off instead of reading them).
 */
#define VEC_SQ_SLACK 64

/* Bytes the kernels read of a row of stride bytes (a multiple of 64). */
static inline size_t vec_sq_span(size_t stride)
{
	return (stride + 63) / 64 * 64;
}

/* Slack an array of rows of stride bytes needs after its last row. */
static inline size_t vec_sq_slack(size_t stride)
{
	return stride % 64 ? VEC_SQ_SLACK : 0;
}

/* Bytes of a packed 4-bit row: the blocks up to the last component's. */
static inline size_t vec_sq4_packed(size_t dim)
{
	size_t full = dim / VEC_SQ4_BLOCK, rem = dim % VEC_SQ4_BLOCK;
	return full * (VEC_SQ4_BLOCK / 2) +
	       (rem < VEC_SQ4_BLOCK / 2 ? rem : VEC_SQ4_BLOCK / 2);
}

/* A view of lo and scale (dim each) with its stride filled in. */
static inline struct vec_sq8 vec_sq8_view(size_t dim, const float *lo,
					  const float *scale)
{
	struct vec_sq8 q = { dim, vec_sq8_stride(dim), lo, scale, 8 };
	return q;
}

/* The same for 4-bit codes. */
static inline struct vec_sq8 vec_sq4_view(size_t dim, const float *lo,
					  const float *scale)
{
	struct vec_sq8 q = { dim, vec_sq4_stride(dim), lo, scale, 4 };
	return q;
}

/* Bytes of a quantised query (cq) for q: one per component of a row. */
static inline size_t vec_sq_qbytes(const struct vec_sq8 *q)
{
	size_t span = vec_sq_span(q->stride);
	return q->bits == 4 ? 2 * span : span;
}

/*
 * Fit lo and scale (dim each) to rows [0, n) of x (n >= 1, dim floats a
 * row): lo = the minimum, scale = (maximum - minimum) / 255 of each
 * dimension, so that every row quantises within half a step.
 */
void vec_sq8_train(float *lo, float *scale, const float *x, uint64_t n,
		   size_t dim);

/* The same for 4-bit codes: scale = (maximum - minimum) / 15. */
void vec_sq4_train(float *lo, float *scale, const float *x, uint64_t n,
		   size_t dim);

/*
 * The same a chunk of rows at a time: vec_sq8_range widens [lo, hi] of
 * each component to rows [0, n) of x (first: starts from them, n >= 1);
 * then vec_sq8_steps turns hi into the steps (hi - lo) / 255 (15 for
 * bits 4).  Training on one matrix is these two.
 */
void vec_sq8_range(float *lo, float *hi, const float *x, uint64_t n,
		   size_t dim, int first);
void vec_sq8_steps(const float *lo, float *hi, size_t dim, unsigned bits);

/*
 * Do rows [0, n) of x lie within half a step of the quantiser's range
 * [lo - scale/2, lo + 255.5 scale] (15.5 scale for 4 bits)?  1 if so, else 0.  A NaN component
 * compares false, so it "fits" (and codes to 0): retraining would not
 * help it.  Lets a growing index keep its codes while new rows fit.
 */
int vec_sq8_fits(const struct vec_sq8 *q, const float *x, size_t n);

/*
 * Code rows [0, n) of x (dim floats each) into codes (n x stride bytes,
 * padding zeroed).  norms, if not NULL, gets the squared norm of each
 * row's reconstruction (what l2 estimates need).
 */
void vec_sq8_encode(const struct vec_sq8 *q, const float *x, size_t n,
		    uint8_t *codes, float *norms);

/* The reconstructions of n code rows: x gets n x dim floats. */
void vec_sq8_decode(const struct vec_sq8 *q, const uint8_t *codes, size_t n,
		    float *x);

/*
 * Quantise one query x (dim floats): cq gets vec_sq_qbytes(q) signed bytes
 * (padding zeroed), *t the step of cq and *qlo = <x, lo> (see the contract).
 * Computed in double, so no product overflows whatever x and the
 * quantiser hold; a component that comes out NaN (a damaged vector or
 * quantiser) is coded 0.  |cq[d]| <= 127, rounded half away from zero.
 */
void vec_sq8_query(const struct vec_sq8 *q, const float *x, int8_t *cq,
		   float *t, float *qlo);

/* The three outputs of vec_sq8_query, for callers that keep them together
 * (cq points at stride bytes the caller provides). */
struct vec_sq8_query {
	int8_t *cq;
	float t, qlo;
};

/*
 * Estimates (8-bit codes only) of a prepared query (cq, t, qlo from
 * vec_sq8_query) against n consecutive code rows (smaller is better, see the contract): l2 when
 * norms (n squared norms from vec_sq8_encode) is not NULL, else ip.
 */
void vec_sq8_scores(const struct vec_sq8 *q, const uint8_t *codes, size_t n,
		    const float *norms, const int8_t *cq, float t, float qlo,
		    float *out);

/* One row's estimate from its integer dot product (vec_sq8_scores and
 * callers of the gathered kernel share these, so both round alike). */
static inline float vec_sq8_est_l2(float norm, float t, float qlo, int32_t dot)
{
	return norm - 2 * (qlo + t * (float)dot);
}
static inline float vec_sq8_est_ip(float t, float qlo, int32_t dot)
{
	return -(qlo + t * (float)dot);
}

/*
 * ---- kernels ----
 *
 * out[j] = sum over the stride bytes of a code row (unsigned) times cq
 * (signed), exactly, in 32 bits: |sum| <= 255 * 127 * stride < 2^31 for
 * any stride up to 66,304 (VEC_DIM_MAX is 65,536).  For scan, stride is a
 * multiple of VEC_SQ8_ALIGN and rows are zero padded; gather also takes
 * packed rows (the slack of vec_sq_slack after the last), with cq of
 * vec_sq_qbytes bytes.
 *   gather: rows ids[0..n) of codes (scattered: the next rows are
 *           prefetched while one is summed), the graph's access;
 *   scan:   rows 0..n) of codes, one after another, a list's access.
 */
typedef void (*vec_sq8_gather_fn)(const uint8_t *codes, size_t stride,
				  const int8_t *cq, const uint32_t *ids,
				  size_t n, int32_t *out);
typedef void (*vec_sq8_scan_fn)(const uint8_t *codes, size_t stride,
				const int8_t *cq, size_t n, int32_t *out);

/*
 * gather4: as gather, for 4-bit rows of stride bytes (the layout above)
 * against cq of 2 x stride bytes: out[j] = sum over the row's 2 x stride
 * components of code times cq, exactly (|sum| <= 15 * 127 * 2 * stride).
 */

/* Kernel variants, in order of preference. */
enum vec_sq8_level {
	VEC_SQ8_SCALAR = 0,
	VEC_SQ8_AVX2 = 1,    /* AVX2: bytes widened, vpmaddwd */
	VEC_SQ8_AVX512 = 2,  /* AVX-512 BW: the same, 64 bytes a step */
	VEC_SQ8_VNNI = 3,    /* AVX-512 VNNI: vpdpbusd */
	VEC_SQ8_NLEVELS
};

/*
 * vec_sq8_query: the same bytes, step and qlo at every level.  qlo's sum
 * runs in 8 lanes (lane i takes the components i mod 8 of the first
 * dim - dim % 8), the lanes are added by vec_sq8_sum8, and the last
 * components one by one after.
 */
static inline double vec_sq8_sum8(const double s[8])
{
	return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

/* The query's scalar steps from component `from` on, shared by every
 * level's vec_sq8_query: the largest |x scale| and <x, lo> ... */
static inline void vec_sq8_query_sums(const struct vec_sq8 *q, const float *x,
				      size_t from, double *amax, double *lo)
{
	for (size_t d = from; d < q->dim; d++) {
		double w = fabs((double)x[d] * q->scale[d]);
		*amax = w > *amax ? w : *amax;
		*lo += (double)x[d] * q->lo[d];
	}
}

/* ... and the bytes: x scale inv rounded half away from zero, a NaN or a
 * value out of range coded 0. */
static inline void vec_sq8_query_bytes(const struct vec_sq8 *q, const float *x,
				       size_t from, double inv, int8_t *cq)
{
	for (size_t d = from; d < q->dim; d++) {
		double w = (double)x[d] * q->scale[d] * inv;
		if (!(w > -128 && w < 128))
			w = 0;
		cq[d] = (int8_t)(int)(w + (w < 0 ? -0.5 : 0.5));
	}
}

typedef void (*vec_sq8_query_fn)(const struct vec_sq8 *q, const float *x,
				 int8_t *cq, float *t, float *qlo);

/*
 * One code row c (stride bytes, unsigned) against a float query, in
 * float arithmetic (no quantised query; the summation order differs
 * between levels, every level within the usual bound of a float sum of
 * stride terms):
 *   l2f:  sum (qp[i] - scale[i] c[i])^2, qp = x - lo: the squared distance
 *         from x to the row's reconstruction;
 *   dotf: sum qs[i] c[i], qs = x scale: <x, reconstruction> - <x, lo>.
 * qp, scale and qs are stride floats, zero past dim (the row's padding is
 * zero too), so no level needs a tail.
 */
typedef float (*vec_sq8_l2f_fn)(const float *qp, const float *scale,
				const uint8_t *c, size_t stride);
typedef float (*vec_sq8_dotf_fn)(const float *qs, const uint8_t *c,
				 size_t stride);

struct vec_sq8_kernels {
	int level;           /* enum vec_sq8_level */
	const char *name;    /* "scalar", "avx2", "avx512", "vnni" */
	vec_sq8_gather_fn gather;
	vec_sq8_gather_fn gather4;
	vec_sq8_scan_fn scan;
	vec_sq8_query_fn query;
	vec_sq8_l2f_fn l2f;
	vec_sq8_dotf_fn dotf;
};

/*
 * The kernels for the SIMD level in use (vec_kernels(): VEC_SIMD, or
 * vec_simd_select), with VNNI where the AVX-512 level is in use and the
 * CPU has it.  Never NULL.  Looked up afresh on every call, so a caller
 * that loops should keep the pointer.
 */
const struct vec_sq8_kernels *vec_sq8_kernels(void);

/* One variant's kernels, or NULL if this build or CPU cannot run them
 * (tests and benchmarks; the search uses vec_sq8_kernels). */
const struct vec_sq8_kernels *vec_sq8_kernels_for(int level);

/* The per-level kernels (sq8.c, sq8_<level>.c); only ever reached through
 * the tables above, after the CPU check of their level passed. */
void vec_sq8_gather_avx2(const uint8_t *codes, size_t stride, const int8_t *cq,
			 const uint32_t *ids, size_t n, int32_t *out);
void vec_sq8_scan_avx2(const uint8_t *codes, size_t stride, const int8_t *cq,
		       size_t n, int32_t *out);
void vec_sq4_gather_avx2(const uint8_t *codes, size_t stride, const int8_t *cq,
			 const uint32_t *ids, size_t n, int32_t *out);
void vec_sq4_gather_avx512(const uint8_t *codes, size_t stride,
			   const int8_t *cq, const uint32_t *ids, size_t n,
			   int32_t *out);
void vec_sq4_gather_vnni(const uint8_t *codes, size_t stride, const int8_t *cq,
			 const uint32_t *ids, size_t n, int32_t *out);
void vec_sq8_gather_avx512(const uint8_t *codes, size_t stride,
			   const int8_t *cq, const uint32_t *ids, size_t n,
			   int32_t *out);
void vec_sq8_scan_avx512(const uint8_t *codes, size_t stride, const int8_t *cq,
			 size_t n, int32_t *out);
void vec_sq8_gather_vnni(const uint8_t *codes, size_t stride, const int8_t *cq,
			 const uint32_t *ids, size_t n, int32_t *out);
void vec_sq8_scan_vnni(const uint8_t *codes, size_t stride, const int8_t *cq,
		       size_t n, int32_t *out);
void vec_sq8_query_avx2(const struct vec_sq8 *q, const float *x, int8_t *cq,
			float *t, float *qlo);
float vec_sq8_l2f_avx2(const float *qp, const float *scale, const uint8_t *c,
		       size_t stride);
float vec_sq8_dotf_avx2(const float *qs, const uint8_t *c, size_t stride);
float vec_sq8_l2f_avx512(const float *qp, const float *scale,
			 const uint8_t *c, size_t stride);
float vec_sq8_dotf_avx512(const float *qs, const uint8_t *c, size_t stride);
void vec_sq8_query_avx512(const struct vec_sq8 *q, const float *x, int8_t *cq,
			  float *t, float *qlo);

#endif
