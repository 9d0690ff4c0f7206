/*
 * file.h - the index file, version 1 (private to lib/).
 *
 * The byte layout is specified in man/vec-index.5; the rule ids cited in
 * file.c (R-HDR-n, R-TOC-n, R-SEC-n) are that page's.  In short:
 *
 *   offset 0   64-byte header (magic, versions, type, metric, dim, count,
 *              table offset and size, table CRC, header CRC)
 *   offset 64  section table: n_sections entries of 32 bytes
 *   then       sections, each starting on a 64-byte boundary, zero padded
 *
 * A parsed file (struct vec_file) points into the caller's buffer (usually
 * an mmap of the whole file); nothing is copied.
 */
#ifndef VEC_FILE_H
#define VEC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "vec.h"

#define VEC_FILE_MAGIC "\x89VEC\r\n\x1a\n"
#define VEC_FILE_HEADER_SIZE 64
#define VEC_FILE_TOC_ENTRY 32
#define VEC_FILE_ALIGN 64
#define VEC_FILE_READ_VERSION 1
#define VEC_FILE_WRITE_VERSION 1
#define VEC_SCALAR_F32 1

#define VEC_SEC_REQUIRED 0x1u

/* A four-character section id as stored: first character in the low byte. */
#define VEC_FOURCC(a, b, c, d)                                              \
	((uint32_t)(uint8_t)(a) | ((uint32_t)(uint8_t)(b) << 8) |           \
	 ((uint32_t)(uint8_t)(c) << 16) | ((uint32_t)(uint8_t)(d) << 24))
#define VEC_SEC_VECS VEC_FOURCC('V', 'E', 'C', 'S')
#define VEC_SEC_NORM VEC_FOURCC('N', 'O', 'R', 'M')
#define VEC_SEC_KEYS VEC_FOURCC('K', 'E', 'Y', 'S')
#define VEC_SEC_IDS VEC_FOURCC('I', 'D', 'S', ' ')

struct vec_file_section {
	uint32_t id;          /* fourcc */
	uint32_t flags;       /* VEC_SEC_REQUIRED */
	uint64_t offset;      /* from the start of the file, 64-aligned */
	uint64_t length;      /* bytes, padding excluded */
	uint32_t crc32;       /* zlib crc32 of the length bytes */
	const uint8_t *data;  /* points into the buffer (parse) or caller's (write) */
};

struct vec_file {
	const char *name;     /* for messages */
	const uint8_t *buf;
	size_t len;
	unsigned read_version, write_version;
	uint32_t type, metric, dim, scalar;
	uint64_t count;
	size_t n_sections;
	struct vec_file_section sec[VEC_SECTIONS_MAX];
};

/*
 * Check the header, the table and every section's bounds; fill f.  Section
 * checksums are not computed here (that reads the whole file): see
 * vec_file_verify.  Returns VEC_E_CORRUPT or VEC_E_VERSION with a message.
 */
int vec_file_parse(struct vec_file *f, const char *name, const void *buf,
		   size_t len, struct vec_errbuf *eb);
/* Compute every section's CRC and compare it with the table. */
int vec_file_verify(const struct vec_file *f, struct vec_errbuf *eb);
/* The section with this id, or NULL. */
const struct vec_file_section *vec_file_find(const struct vec_file *f,
					     uint32_t id);
void vec_fourcc_str(uint32_t id, char out[5]);

/*
 * Write a complete index file to path atomically (see vec_index_save).
 * secs[i].data/length are the contents; offsets and CRCs are computed.
 */
int vec_file_write(const char *path, uint32_t type, uint32_t metric,
		   uint32_t dim, uint64_t count, struct vec_file_section *secs,
		   size_t n_secs, struct vec_errbuf *eb);

/*
 * Take the exclusive writer lock of an existing index path.  Retries until
 * the locked file is the one the path names (a writer that renamed a new
 * file over it meanwhile released the old inode).  *fd_out is -1 when path
 * does not exist (nothing to serialise against).
 */
int vec_file_lock(const char *path, int *fd_out, struct vec_errbuf *eb);

#endif
