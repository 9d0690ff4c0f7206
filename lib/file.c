/*
 * file.c - the index file: header, section table, checksums, atomic write,
 * writer lock.  The format is man/vec-index.5; rules are cited by id.
 *
 * Everything read from a file is treated as hostile: every offset, length
 * and count is checked against the real size before anything is followed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "file.h"
#include "hnsw.h"
#include "ivf.h"
#include "internal.h"

void vec_fourcc_str(uint32_t id, char out[5])
{
	for (int i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)(id >> (8 * i));
		out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[4] = '\0';
}

/* zlib's crc32 takes a uInt length; feed big sections in pieces. */
static uint32_t crc_of(const uint8_t *p, uint64_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)crc;
}

const struct vec_file_section *vec_file_find(const struct vec_file *f,
					     uint32_t id)
{
	for (size_t i = 0; i < f->n_sections; i++)
		if (f->sec[i].id == id)
			return &f->sec[i];
	return NULL;
}

static int known_section(uint32_t id)
{
	/* Optional sections need not be listed: they are kept in the table
	 * (vec_file_find sees them) and ignored by readers that do not know
	 * them.  Required ones this version understands: */
	return id == VEC_SEC_VECS || id == VEC_SEC_NORM || id == VEC_SEC_KEYS ||
	       id == VEC_SEC_IDS ||
	       id == VEC_SEC_HNSP || id == VEC_SEC_HNS0 || id == VEC_SEC_HNSL ||
	       id == VEC_SEC_HNSU ||
	       id == VEC_SEC_IVFP || id == VEC_SEC_IVFC || id == VEC_SEC_IVFO ||
	       id == VEC_SEC_IVFI || id == VEC_SEC_IVFV || id == VEC_SEC_IVFQ ||
	       id == VEC_SEC_IVFX || id == VEC_SEC_IVFN;
}

int vec_file_parse(struct vec_file *f, const char *name, const void *vbuf,
		   size_t len, struct vec_errbuf *eb)
{
	const uint8_t *b = vbuf;
	uint64_t toc_off, toc_len;
	uint32_t n, flags;

	memset(f, 0, sizeof *f);
	f->name = name;
	f->buf = b;
	f->len = len;

	/* R-HDR-1: the file starts with the 8-byte magic. */
	if (len < 8 || memcmp(b, VEC_FILE_MAGIC, 8) != 0)
		return VEC_CORRUPT(eb, "%s: not a vec index (bad magic)", name);
	/* R-HDR-2: the whole header is present. */
	if (len < VEC_FILE_HEADER_SIZE)
		return VEC_CORRUPT(eb, "%s: truncated index (%zu bytes, header needs %d)",
				   name, len, VEC_FILE_HEADER_SIZE);
	f->read_version = vec_get_le16(b + 8);
	f->write_version = vec_get_le16(b + 10);
	/* R-HDR-3: the header CRC covers bytes 0..59. */
	if (crc_of(b, 60) != vec_get_le32(b + 60))
		return VEC_CORRUPT(eb, "%s: header checksum mismatch (index is damaged)",
				   name);
	/* R-HDR-4: a newer read version means this reader must refuse. */
	if (f->read_version > VEC_FILE_READ_VERSION)
		return vec_err(eb, VEC_E_VERSION,
			       "%s: format version %u is newer than this tool (%d)",
			       name, f->read_version, VEC_FILE_READ_VERSION);
	if (f->read_version == 0)
		return VEC_CORRUPT(eb, "%s: bad format version 0", name);
	/* R-HDR-5: unknown flag bits must be zero. */
	flags = vec_get_le32(b + 12);
	if (flags != 0)
		return vec_err(eb, VEC_E_VERSION,
			       "%s: unknown header flags 0x%x (newer format?)",
			       name, flags);
	f->type = vec_get_le32(b + 16);
	f->metric = vec_get_le32(b + 20);
	f->dim = vec_get_le32(b + 24);
	f->scalar = vec_get_le32(b + 28);
	f->count = vec_get_le64(b + 32);
	toc_off = vec_get_le64(b + 40);
	n = vec_get_le32(b + 48);
	/* R-HDR-6: reserved bytes are zero. */
	if (vec_get_le32(b + 56) != 0)
		return VEC_CORRUPT(eb, "%s: reserved header bytes are not zero", name);
	if (f->type != VEC_TYPE_FLAT && f->type != VEC_TYPE_HNSW &&
	    !vec_type_is_ivf((int)f->type))
		return vec_err(eb, VEC_E_VERSION,
			       "%s: index type %u is not supported by this version",
			       name, f->type);
	if (f->metric < VEC_METRIC_L2 || f->metric > VEC_METRIC_COS)
		return vec_err(eb, VEC_E_VERSION, "%s: unknown metric %u", name,
			       f->metric);
	if (f->scalar != VEC_SCALAR_F32)
		return vec_err(eb, VEC_E_VERSION, "%s: unknown scalar kind %u",
			       name, f->scalar);
	if (f->dim < 1 || f->dim > VEC_DIM_MAX)
		return VEC_CORRUPT(eb, "%s: bad dimension %u in header", name, f->dim);
	/* R-TOC-1: the table lies inside the file, after the header. */
	if (n > VEC_SECTIONS_MAX)
		return VEC_CORRUPT(eb, "%s: %u sections (at most %d)", name, n,
				   VEC_SECTIONS_MAX);
	toc_len = (uint64_t)n * VEC_FILE_TOC_ENTRY;
	if (toc_off < VEC_FILE_HEADER_SIZE || toc_off > len ||
	    toc_len > len - toc_off)
		return VEC_CORRUPT(eb, "%s: truncated index (section table at %llu+%llu, file is %zu bytes)",
				   name, (unsigned long long)toc_off,
				   (unsigned long long)toc_len, len);
	/* R-TOC-2: the table has its own CRC, kept in the header. */
	if (crc_of(b + toc_off, toc_len) != vec_get_le32(b + 52))
		return VEC_CORRUPT(eb, "%s: section table checksum mismatch (index is damaged)",
				   name);
	f->n_sections = n;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = b + toc_off + (uint64_t)i * VEC_FILE_TOC_ENTRY;
		struct vec_file_section *s = &f->sec[i];
		char idstr[5];

		s->id = vec_get_le32(e);
		s->flags = vec_get_le32(e + 4);
		s->offset = vec_get_le64(e + 8);
		s->length = vec_get_le64(e + 16);
		s->crc32 = vec_get_le32(e + 24);
		vec_fourcc_str(s->id, idstr);
		/* R-TOC-3: unknown flag bits and the reserved word are zero. */
		if ((s->flags & ~VEC_SEC_REQUIRED) || vec_get_le32(e + 28))
			return VEC_CORRUPT(eb, "%s: section '%s': bad flags", name, idstr);
		/* R-SEC-1: sections are 64-byte aligned and inside the file. */
		if (s->offset % VEC_FILE_ALIGN || s->offset < toc_off + toc_len)
			return VEC_CORRUPT(eb, "%s: section '%s': bad offset %llu",
					   name, idstr, (unsigned long long)s->offset);
		if (s->offset > len || s->length > len - s->offset)
			return VEC_CORRUPT(eb, "%s: truncated index (section '%s' needs %llu+%llu bytes, file is %zu)",
					   name, idstr,
					   (unsigned long long)s->offset,
					   (unsigned long long)s->length, len);
		for (uint32_t j = 0; j < i; j++)
			if (f->sec[j].id == s->id)
				return VEC_CORRUPT(eb, "%s: section '%s' appears twice",
						   name, idstr);
		/* R-SEC-2: an unknown required section is refused, an
		 * unknown optional one skipped. */
		if (!known_section(s->id) && (s->flags & VEC_SEC_REQUIRED))
			return vec_err(eb, VEC_E_VERSION,
				       "%s: required section '%s' is not supported by this version",
				       name, idstr);
		s->data = b + s->offset;
	}
	/* R-SEC-5: sections do not overlap (a section's bytes belong to it
	 * alone, so checking one can never be fooled by another). */
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n; j++) {
			const struct vec_file_section *x = &f->sec[i], *y = &f->sec[j];
			if (x->length && y->length &&
			    x->offset < y->offset + y->length &&
			    y->offset < x->offset + x->length) {
				char a[5], c[5];
				vec_fourcc_str(x->id, a);
				vec_fourcc_str(y->id, c);
				return VEC_CORRUPT(eb, "%s: sections '%s' and '%s' overlap",
						   name, a, c);
			}
		}
	return VEC_OK;
}

int vec_file_verify(const struct vec_file *f, struct vec_errbuf *eb)
{
	for (size_t i = 0; i < f->n_sections; i++) {
		const struct vec_file_section *s = &f->sec[i];
		uint32_t crc = crc_of(s->data, s->length);
		if (crc != s->crc32) {
			char idstr[5];
			vec_fourcc_str(s->id, idstr);
			return VEC_CORRUPT(eb, "%s: section '%s' checksum mismatch (stored %08x, computed %08x)",
					   f->name, idstr, s->crc32, crc);
		}
	}
	return VEC_OK;
}

/* write(2) all of it at offset, retrying short writes and EINTR. */
static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len > 0) {
		size_t chunk = len > (1u << 30) ? (1u << 30) : len;
		ssize_t w = pwrite(fd, p, chunk, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Split path into its directory (for the temporary file and the dir fsync). */
static void dir_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(dir, cap, ".");
	} else if (slash == path) {
		snprintf(dir, cap, "/");
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= cap)
			n = cap - 1;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
}

static mode_t current_umask(void)
{
	/* umask() can only be read by setting it; this runs once per save,
	 * before any threads write files, and restores it at once. */
	mode_t m = umask(022);
	umask(m);
	return m;
}

/*
 * Temporary files: ".BASE.tmp-XXXXXX" beside the target.  A writer holds an
 * flock on its temporary file from creation until the rename, so one that
 * can be locked belongs to a writer that died (SIGKILL, a crash, power
 * loss) and is removed by the next writer of the same target.
 */
#define TMP_INFIX ".tmp-"
#define TMP_SUFFIX_LEN 6 /* XXXXXX */

static void remove_stale_temps(const char *dir, const char *base)
{
	size_t blen = strlen(base), plen = blen + 1 + strlen(TMP_INFIX);
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return; /* mkstemp will say what is wrong with dir */
	while ((e = readdir(d))) {
		const char *n = e->d_name;
		struct stat a, b;
		int fd;

		if (n[0] != '.' || strlen(n) != plen + TMP_SUFFIX_LEN ||
		    strncmp(n + 1, base, blen) != 0 ||
		    strncmp(n + 1 + blen, TMP_INFIX, strlen(TMP_INFIX)) != 0)
			continue;
		fd = openat(dirfd(d), n, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0)
			continue;
		/* Locked: a live writer's.  Ours: nobody's; remove it unless
		 * the name was meanwhile given to another file. */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &a) == 0 &&
		    fstatat(dirfd(d), n, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(a.st_mode) && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			unlinkat(dirfd(d), n, 0);
		close(fd);
	}
	closedir(d);
}

/* Create and lock the temporary file for path; -1 with errno on failure. */
static int create_temp(char *tmp)
{
	size_t len = strlen(tmp);

	for (int tries = 0; tries < 100; tries++) {
		struct stat a, b;
		int fd;

		memcpy(tmp + len - TMP_SUFFIX_LEN, "XXXXXX", TMP_SUFFIX_LEN);
		fd = mkstemp(tmp);
		if (fd < 0)
			return -1;
		while (flock(fd, LOCK_EX) != 0) {
			if (errno != EINTR) {
				int e = errno;
				close(fd);
				unlink(tmp);
				errno = e;
				return -1;
			}
		}
		/* A cleaner of a concurrent writer may have taken the file for
		 * abandoned between mkstemp and flock: then make another. */
		if (fstat(fd, &a) == 0 && lstat(tmp, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return fd;
		close(fd);
	}
	errno = EAGAIN;
	return -1;
}

int vec_file_write(const char *path, uint32_t type, uint32_t metric,
		   uint32_t dim, uint64_t count, struct vec_file_section *secs,
		   size_t n_secs, struct vec_errbuf *eb)
{
	uint8_t hdr[VEC_FILE_HEADER_SIZE];
	uint8_t toc[VEC_SECTIONS_MAX * VEC_FILE_TOC_ENTRY];
	static const uint8_t zeros[VEC_FILE_ALIGN];
	char dir[PATH_MAX], *tmp = NULL;
	const char *base;
	uint64_t off;
	struct stat st;
	int fd = -1, dfd = -1, rc;

	if (n_secs > VEC_SECTIONS_MAX)
		return vec_err(eb, VEC_E_USAGE, "too many sections");
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return vec_err(eb, VEC_E_IO, "%s: is a directory", path);

	dir_of(path, dir, sizeof dir);
	base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!*base)
		return vec_err(eb, VEC_E_USAGE, "%s: not a file name", path);
	/* The temporary file lives beside the target so that rename() is
	 * atomic; its name starts with a dot and says what it is. */
	if (asprintf(&tmp, "%s/.%s" TMP_INFIX "XXXXXX", dir, base) < 0)
		return vec_err(eb, VEC_E_NOMEM, "out of memory");
	remove_stale_temps(dir, base);
	fd = create_temp(tmp);
	if (fd < 0) {
		rc = vec_err(eb, VEC_E_IO, "%s: cannot create temporary file in '%s': %s",
			     path, dir, strerror(errno));
		free(tmp);
		return rc;
	}
	/* mkstemp makes 0600; an index is a normal data file. */
	if (fchmod(fd, 0666 & ~current_umask()) != 0)
		goto io_fail;

	/* Lay out: header, table, then each section on a 64-byte boundary. */
	off = VEC_FILE_HEADER_SIZE + (uint64_t)n_secs * VEC_FILE_TOC_ENTRY;
	memset(toc, 0, sizeof toc);
	for (size_t i = 0; i < n_secs; i++) {
		struct vec_file_section *s = &secs[i];
		uint8_t *e = toc + i * VEC_FILE_TOC_ENTRY;
		size_t pad;

		/* The gap after the table is written too, so that a
		 * section of length 0 still lies inside the file. */
		pad = (size_t)((VEC_FILE_ALIGN - off % VEC_FILE_ALIGN) % VEC_FILE_ALIGN);
		if (pad && pwrite_all(fd, zeros, pad, off) != 0)
			goto io_fail;
		off += pad;
		s->offset = off;
		s->crc32 = crc_of(s->data, s->length);
		if (pwrite_all(fd, s->data, s->length, off) != 0)
			goto io_fail;
		off += s->length;
		pad = (size_t)((VEC_FILE_ALIGN - off % VEC_FILE_ALIGN) % VEC_FILE_ALIGN);
		/* Pad the tail explicitly so the file length is a multiple
		 * of 64 and readers may load whole vectors past the end. */
		if (pad && pwrite_all(fd, zeros, pad, off) != 0)
			goto io_fail;
		off += pad;
		vec_put_le32(e, s->id);
		vec_put_le32(e + 4, s->flags);
		vec_put_le64(e + 8, s->offset);
		vec_put_le64(e + 16, s->length);
		vec_put_le32(e + 24, s->crc32);
		vec_put_le32(e + 28, 0);
	}
	memset(hdr, 0, sizeof hdr);
	memcpy(hdr, VEC_FILE_MAGIC, 8);
	vec_put_le16(hdr + 8, VEC_FILE_READ_VERSION);
	vec_put_le16(hdr + 10, VEC_FILE_WRITE_VERSION);
	vec_put_le32(hdr + 12, 0);
	vec_put_le32(hdr + 16, type);
	vec_put_le32(hdr + 20, metric);
	vec_put_le32(hdr + 24, dim);
	vec_put_le32(hdr + 28, VEC_SCALAR_F32);
	vec_put_le64(hdr + 32, count);
	vec_put_le64(hdr + 40, VEC_FILE_HEADER_SIZE);
	vec_put_le32(hdr + 48, (uint32_t)n_secs);
	vec_put_le32(hdr + 52, crc_of(toc, n_secs * VEC_FILE_TOC_ENTRY));
	vec_put_le32(hdr + 56, 0);
	vec_put_le32(hdr + 60, crc_of(hdr, 60));
	if (pwrite_all(fd, toc, n_secs * VEC_FILE_TOC_ENTRY, VEC_FILE_HEADER_SIZE) != 0 ||
	    pwrite_all(fd, hdr, sizeof hdr, 0) != 0)
		goto io_fail;
	/* Data reaches the disk before the name does (redis rdbSave order).
	 * The descriptor, and with it the temporary file's lock, is kept
	 * until after the rename, so that no other writer takes the file
	 * for abandoned. */
	if (fsync(fd) != 0)
		goto io_fail;
	if (rename(tmp, path) != 0)
		goto io_fail;
	/* From here the new index is in place: a failure is reported, but
	 * nothing is removed. */
	rc = close(fd) != 0 ? errno : 0;
	fd = -1;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		/* The rename is durable once the directory is synced. */
		if (fsync(dfd) != 0 && errno != EINVAL && !rc)
			rc = errno;
		close(dfd);
	}
	free(tmp);
	if (rc)
		return vec_err(eb, VEC_E_IO,
			       "%s: the new index is in place, but syncing it failed (%s): it may not survive a crash",
			       path, strerror(rc));
	return VEC_OK;

io_fail:
	rc = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return vec_err(eb, VEC_E_IO, "%s: cannot write index: %s", path,
		       strerror(rc));
}

int vec_file_lock(const char *path, int *fd_out, struct vec_errbuf *eb)
{
	*fd_out = -1;
	for (int tries = 0; tries < 1000; tries++) {
		struct stat a, b;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				return VEC_OK;
			return vec_err(eb, VEC_E_IO, "%s: cannot open: %s", path,
				       strerror(errno));
		}
		while (flock(fd, LOCK_EX) != 0) {
			if (errno != EINTR) {
				int e = errno;
				close(fd);
				return vec_err(eb, VEC_E_IO, "%s: cannot lock: %s",
					       path, strerror(e));
			}
		}
		/* Did another writer replace the file while we waited?  Then
		 * we hold the lock of a file nobody will read: try again. */
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			*fd_out = fd;
			return VEC_OK;
		}
		close(fd);
	}
	return vec_err(eb, VEC_E_IO, "%s: cannot lock: file keeps being replaced", path);
}
