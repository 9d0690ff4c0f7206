/*
 * sq8.c - the 8-bit (and 4-bit) scalar quantiser: training, coding, query preparation,
 * the scalar kernels and the choice of a kernel level (see sq8.h).
 *
 * The numerics are those the HNSW graph has always written and read
 * (sections HSQ8/HSQN): changing any rounding here changes index files.
 */
#include <math.h>
#include <string.h>

#include "sq8.h"
#include "vec.h"

void vec_sq8_range(float *lo, float *hi, const float *x, uint64_t n,
		   size_t dim, int first)
{
	for (size_t d = 0; d < dim; d++) {
		float mn = first ? x[d] : lo[d], mx = first ? x[d] : hi[d];
		for (uint64_t i = first ? 1 : 0; i < n; i++) {
			float a = x[i * dim + d];
			mn = a < mn ? a : mn;
			mx = a > mx ? a : mx;
		}
		lo[d] = mn;
		hi[d] = mx;
	}
}

void vec_sq8_steps(const float *lo, float *hi, size_t dim, unsigned bits)
{
	float top = bits == 4 ? 15.0f : 255.0f;

	for (size_t d = 0; d < dim; d++)
		hi[d] = (hi[d] - lo[d]) / top;
}

static void train(float *lo, float *scale, const float *x, uint64_t n,
		  size_t dim, unsigned bits)
{
	vec_sq8_range(lo, scale, x, n, dim, 1);
	vec_sq8_steps(lo, scale, dim, bits);
}

void vec_sq8_train(float *lo, float *scale, const float *x, uint64_t n,
		   size_t dim)
{
	train(lo, scale, x, n, dim, 8);
}

void vec_sq4_train(float *lo, float *scale, const float *x, uint64_t n,
		   size_t dim)
{
	train(lo, scale, x, n, dim, 4);
}

/* The largest code of q's rows. */
static inline long top_code(const struct vec_sq8 *q)
{
	return q->bits == 4 ? 15 : 255;
}

int vec_sq8_fits(const struct vec_sq8 *q, const float *x, size_t n)
{
	size_t dim = q->dim;
	float top = (float)top_code(q) + 0.5f;

	for (size_t i = 0; i < n; i++)
		for (size_t d = 0; d < dim; d++) {
			float a = x[i * dim + d];
			if (a < q->lo[d] - 0.5f * q->scale[d] ||
			    a > q->lo[d] + top * q->scale[d])
				return 0;
		}
	return 1;
}

/* Where component d's code sits in a 4-bit row: byte and shift. */
static inline size_t sq4_byte(size_t d)
{
	return d / VEC_SQ4_BLOCK * (VEC_SQ4_BLOCK / 2) + d % (VEC_SQ4_BLOCK / 2);
}

static inline unsigned sq4_shift(size_t d)
{
	return d % VEC_SQ4_BLOCK >= VEC_SQ4_BLOCK / 2 ? 4 : 0;
}

/* Component d's code in row c. */
static inline unsigned code_at(const struct vec_sq8 *q, const uint8_t *c,
			       size_t d)
{
	if (q->bits == 4)
		return (c[sq4_byte(d)] >> sq4_shift(d)) & 15;
	return c[d];
}

/* One row's codes (padded with zeros) and its reconstruction's norm. */
static void encode_row(const struct vec_sq8 *q, const float *x, uint8_t *out,
		       float *norm)
{
	const float *lo = q->lo, *scale = q->scale;
	long top = top_code(q);
	double s = 0;

	memset(out, 0, q->stride);
	for (size_t d = 0; d < q->dim; d++) {
		long c = 0;
		float r;
		if (scale[d] > 0) {
			c = lrintf((x[d] - lo[d]) / scale[d]);
			c = c < 0 ? 0 : c > top ? top : c;
		}
		if (q->bits == 4)
			out[sq4_byte(d)] |= (uint8_t)(c << sq4_shift(d));
		else
			out[d] = (uint8_t)c;
		r = lo[d] + scale[d] * (float)c;
		s += (double)r * r;
	}
	if (norm)
		*norm = (float)s;
}

void vec_sq8_encode(const struct vec_sq8 *q, const float *x, size_t n,
		    uint8_t *codes, float *norms)
{
	for (size_t i = 0; i < n; i++)
		encode_row(q, x + i * q->dim, codes + i * q->stride,
			   norms ? norms + i : NULL);
}

void vec_sq8_decode(const struct vec_sq8 *q, const uint8_t *codes, size_t n,
		    float *x)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *c = codes + i * q->stride;
		float *r = x + i * q->dim;
		for (size_t d = 0; d < q->dim; d++)
			r[d] = q->lo[d] + q->scale[d] * (float)code_at(q, c, d);
	}
}

void vec_sq8_query(const struct vec_sq8 *q, const float *x, int8_t *cq,
		   float *t, float *qlo)
{
	struct vec_sq8 v = *q;

	/* The bytes are the same for 4 bits, over twice the row's bytes. */
	v.stride = vec_sq_qbytes(q);
	v.bits = 8;
	vec_sq8_kernels()->query(&v, x, cq, t, qlo);
}

/* The reference: the SIMD levels give the same bytes (sq8_<level>.c). */
static void query_scalar(const struct vec_sq8 *q, const float *x, int8_t *cq,
			 float *t, float *qlo)
{
	double amax = 0, inv, lo, lane[8] = { 0 };
	size_t end = q->dim & ~(size_t)7;

	/* In double: a product of two finite floats cannot overflow there,
	 * whatever the query or the file's scales. */
	for (size_t d = 0; d < end; d++) {
		double w = fabs((double)x[d] * q->scale[d]);
		amax = w > amax ? w : amax;
		lane[d & 7] += (double)x[d] * q->lo[d];
	}
	lo = vec_sq8_sum8(lane);
	vec_sq8_query_sums(q, x, end, &amax, &lo);
	inv = amax > 0 ? 127.0 / amax : 0;
	/* |w| <= 127; NaN (a damaged vector or quantiser) is coded 0 */
	vec_sq8_query_bytes(q, x, 0, inv, cq);
	memset(cq + q->dim, 0, q->stride - q->dim);
	*t = (float)(amax / 127.0);
	*qlo = (float)lo;
}

/* ---- kernels ---- */

static void gather_scalar(const uint8_t *codes, size_t stride, const int8_t *cq,
			  const uint32_t *ids, size_t n, int32_t *out)
{
	for (size_t j = 0; j < n; j++) {
		const uint8_t *x = codes + (size_t)ids[j] * stride;
		int32_t s = 0;
		for (size_t i = 0; i < stride; i++)
			s += (int32_t)x[i] * cq[i];
		out[j] = s;
	}
}

static void gather4_scalar(const uint8_t *codes, size_t stride,
			   const int8_t *cq, const uint32_t *ids, size_t n,
			   int32_t *out)
{
	for (size_t j = 0; j < n; j++) {
		const uint8_t *x = codes + (size_t)ids[j] * stride;
		int32_t s = 0;
		for (size_t b = 0; b < stride; b += VEC_SQ4_BLOCK / 2)
			for (size_t i = 0; i < VEC_SQ4_BLOCK / 2 && b + i < stride; i++) {
				s += (int32_t)(x[b + i] & 15) * cq[2 * b + i];
				s += (int32_t)(x[b + i] >> 4) *
				     cq[2 * b + VEC_SQ4_BLOCK / 2 + i];
			}
		out[j] = s;
	}
}

static void scan_scalar(const uint8_t *codes, size_t stride, const int8_t *cq,
			size_t n, int32_t *out)
{
	for (size_t j = 0; j < n; j++) {
		const uint8_t *x = codes + j * stride;
		int32_t s = 0;
		for (size_t i = 0; i < stride; i++)
			s += (int32_t)x[i] * cq[i];
		out[j] = s;
	}
}

/* Four partial sums, so that the compiler may keep them in lanes. */
static float l2f_scalar(const float *qp, const float *scale, const uint8_t *c,
			size_t stride)
{
	float s[4] = { 0, 0, 0, 0 };
	for (size_t i = 0; i < stride; i += 4)
		for (size_t l = 0; l < 4; l++) {
			float t = qp[i + l] - scale[i + l] * (float)c[i + l];
			s[l] += t * t;
		}
	return (s[0] + s[2]) + (s[1] + s[3]);
}

static float dotf_scalar(const float *qs, const uint8_t *c, size_t stride)
{
	float s[4] = { 0, 0, 0, 0 };
	for (size_t i = 0; i < stride; i += 4)
		for (size_t l = 0; l < 4; l++)
			s[l] += qs[i + l] * (float)c[i + l];
	return (s[0] + s[2]) + (s[1] + s[3]);
}

static const struct vec_sq8_kernels table[VEC_SQ8_NLEVELS] = {
	{ VEC_SQ8_SCALAR, "scalar", gather_scalar, gather4_scalar, scan_scalar,
	  query_scalar, l2f_scalar, dotf_scalar },
#ifdef VEC_HAVE_X86
	{ VEC_SQ8_AVX2, "avx2", vec_sq8_gather_avx2, vec_sq4_gather_avx2,
	  vec_sq8_scan_avx2, vec_sq8_query_avx2, vec_sq8_l2f_avx2,
	  vec_sq8_dotf_avx2 },
	{ VEC_SQ8_AVX512, "avx512", vec_sq8_gather_avx512,
	  vec_sq4_gather_avx512, vec_sq8_scan_avx512, vec_sq8_query_avx512,
	  vec_sq8_l2f_avx512, vec_sq8_dotf_avx512 },
	{ VEC_SQ8_VNNI, "vnni", vec_sq8_gather_vnni, vec_sq4_gather_vnni,
	  vec_sq8_scan_vnni, vec_sq8_query_avx512, vec_sq8_l2f_avx512,
	  vec_sq8_dotf_avx512 },
#endif
};

#ifdef VEC_HAVE_X86
/* VNNI rides on the AVX-512 level: its own CPU flag on top. */
static int have_vnni(void)
{
	return __builtin_cpu_supports("avx512vnni");
}
#endif

const struct vec_sq8_kernels *vec_sq8_kernels_for(int level)
{
	switch (level) {
	case VEC_SQ8_SCALAR:
		return &table[VEC_SQ8_SCALAR];
#ifdef VEC_HAVE_X86
	case VEC_SQ8_AVX2:
		return vec_kernels_for(VEC_SIMD_AVX2) ? &table[level] : NULL;
	case VEC_SQ8_AVX512:
		return vec_kernels_for(VEC_SIMD_AVX512) ? &table[level] : NULL;
	case VEC_SQ8_VNNI:
		return vec_kernels_for(VEC_SIMD_AVX512) && have_vnni()
			       ? &table[level] : NULL;
#endif
	default:
		return NULL;
	}
}

const struct vec_sq8_kernels *vec_sq8_kernels(void)
{
#ifdef VEC_HAVE_X86
	int level = vec_kernels()->level;

	if (level == VEC_SIMD_AVX512)
		return &table[have_vnni() ? VEC_SQ8_VNNI : VEC_SQ8_AVX512];
	if (level == VEC_SIMD_AVX2)
		return &table[VEC_SQ8_AVX2];
#endif
	return &table[VEC_SQ8_SCALAR];
}

/* ---- estimates ---- */

#define SCORE_BLOCK 256 /* rows summed before their estimates are formed */

void vec_sq8_scores(const struct vec_sq8 *q, const uint8_t *codes, size_t n,
		    const float *norms, const int8_t *cq, float t, float qlo,
		    float *out)
{
	vec_sq8_scan_fn scan = vec_sq8_kernels()->scan;
	int32_t dot[SCORE_BLOCK];

	for (size_t j0 = 0; j0 < n; j0 += SCORE_BLOCK) {
		size_t m = n - j0 < SCORE_BLOCK ? n - j0 : SCORE_BLOCK;
		scan(codes + j0 * q->stride, q->stride, cq, m, dot);
		if (norms) {
			for (size_t j = 0; j < m; j++)
				out[j0 + j] = vec_sq8_est_l2(norms[j0 + j], t, qlo,
							     dot[j]);
		} else {
			for (size_t j = 0; j < m; j++)
				out[j0 + j] = vec_sq8_est_ip(t, qlo, dot[j]);
		}
	}
}
