/*
 * distance_neon.c - AArch64 Advanced SIMD (NEON) distance kernels.  Built on
 * ARM only; NEON is part of every AArch64 CPU, so no run-time probe.
 */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels.h"

/*
 * Squared Euclidean distance: four 4-lane accumulators, then a scalar loop
 * for the last d % 4 elements.
 */
static float l2sq_neon(const float *a, const float *b, size_t d)
{
	float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
	float32x4_t s2 = vdupq_n_f32(0), s3 = vdupq_n_f32(0);
	size_t i = 0;
	float tail = 0;

	for (; i + 16 <= d; i += 16) {
		float32x4_t t0 = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
		float32x4_t t1 = vsubq_f32(vld1q_f32(a + i + 4),
					   vld1q_f32(b + i + 4));
		float32x4_t t2 = vsubq_f32(vld1q_f32(a + i + 8),
					   vld1q_f32(b + i + 8));
		float32x4_t t3 = vsubq_f32(vld1q_f32(a + i + 12),
					   vld1q_f32(b + i + 12));
		s0 = vfmaq_f32(s0, t0, t0);
		s1 = vfmaq_f32(s1, t1, t1);
		s2 = vfmaq_f32(s2, t2, t2);
		s3 = vfmaq_f32(s3, t3, t3);
	}
	for (; i + 4 <= d; i += 4) {
		float32x4_t t = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
		s0 = vfmaq_f32(s0, t, t);
	}
	for (; i < d; i++) {
		float t = a[i] - b[i];
		tail += t * t;
	}
	s0 = vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3));
	return vaddvq_f32(s0) + tail;
}

/* Inner product, laid out as l2sq_neon. */
static float dot_neon(const float *a, const float *b, size_t d)
{
	float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
	float32x4_t s2 = vdupq_n_f32(0), s3 = vdupq_n_f32(0);
	size_t i = 0;
	float tail = 0;

	for (; i + 16 <= d; i += 16) {
		s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
		s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
		s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
		s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12),
			       vld1q_f32(b + i + 12));
	}
	for (; i + 4 <= d; i += 4)
		s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
	for (; i < d; i++)
		tail += a[i] * b[i];
	s0 = vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3));
	return vaddvq_f32(s0) + tail;
}

const struct vec_kernels vec_kernels_neon = {
	VEC_SIMD_NEON, "neon", l2sq_neon, dot_neon,
};
#endif
