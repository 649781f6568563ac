/*
 * embed.c — turn a directory (the built web UI, web/dist) into a C source
 * file so the files can be compiled into the fusion binary.
 *
 * Usage:  embed DIR OUT.c
 *
 * The output implements src/http/webui.h: a table `webui_assets[]` of
 * { path, content_type, data, len, etag, immutable }, sorted by strcmp on
 * the path so the server can bsearch it, and `webui_assets_count`.
 *
 *   path          "/" + the file's path relative to DIR ("/assets/x.js")
 *   content_type  from the file extension; text types get "; charset=utf-8"
 *   data          the bytes, as a string literal split into short chunks
 *                 (compiles fast; always 3-digit octal escapes, so the next
 *                 character can never be swallowed into an escape)
 *   etag          quoted hex of a 64-bit FNV-1a hash of the content
 *   immutable     1 for files under /assets/ (content-hashed by Vite)
 *
 * The output is deterministic (no timestamps), written to a temporary file
 * in the same directory and renamed into place, so a failed run never
 * leaves a half-written file behind.  Any error (unreadable directory, I/O
 * failure, a file over 16 MiB, an empty directory) is reported on stderr
 * and the program exits with status 1.
 *
 * Standalone, libc only:
 *   cc -std=c17 -O2 -Wall -Wextra -D_GNU_SOURCE -o build/tools/embed tools/embed.c
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FILE_SIZE ((size_t)16 * 1024 * 1024)
#define MAX_TOTAL_SIZE ((size_t)256 * 1024 * 1024)
#define MAX_FILES 100000
#define MAX_DEPTH 64
#define MAX_PATH_LEN 4096
#define CHUNK_COLS 96 /* output columns per literal chunk */

struct entry {
	char *fs_path;  /* path on disk: DIR/rel */
	char *web_path; /* "/" + rel */
	size_t len;     /* filled in while the data is written */
	char etag[24];  /* "\"<16 hex digits>\"" */
};

static struct entry *entries;
static size_t n_entries, cap_entries;
static size_t total_size;
static const char *prog = "embed";
static char *tmp_path; /* removed on failure */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (tmp_path)
		unlink(tmp_path);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory");
	return p;
}

static char *join(const char *a, const char *sep, const char *b)
{
	size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
	char *s;

	if (la + ls + lb >= MAX_PATH_LEN)
		die("path too long: %s%s%s", a, sep, b);
	s = xmalloc(la + ls + lb + 1);
	snprintf(s, la + ls + lb + 1, "%s%s%s", a, sep, b);
	return s;
}

static void add_entry(char *fs_path, char *web_path)
{
	if (n_entries == MAX_FILES)
		die("too many files (limit %d)", MAX_FILES);
	if (n_entries == cap_entries) {
		size_t cap = cap_entries ? cap_entries * 2 : 64;
		struct entry *e = realloc(entries, cap * sizeof *e);

		if (!e)
			die("out of memory");
		entries = e;
		cap_entries = cap;
	}
	entries[n_entries++] = (struct entry){ .fs_path = fs_path, .web_path = web_path };
}

/* Collect every regular file under fs_dir; web_dir is its "/"-prefixed
 * path relative to the root ("" for the root itself). */
static void walk(const char *fs_dir, const char *web_dir, int depth)
{
	DIR *d;
	struct dirent *de;

	if (depth > MAX_DEPTH)
		die("%s: directory tree too deep", fs_dir);
	d = opendir(fs_dir);
	if (!d)
		die("cannot open directory %s: %s", fs_dir, strerror(errno));
	for (;;) {
		struct stat st;
		char *fs_path, *web_path;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				die("cannot read directory %s: %s", fs_dir, strerror(errno));
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		fs_path = join(fs_dir, "/", de->d_name);
		web_path = join(web_dir, "/", de->d_name);
		/* Follow symlinks to files; refuse symlinked directories so a
		 * link cycle cannot make the walk loop. */
		if (lstat(fs_path, &st) != 0)
			die("cannot stat %s: %s", fs_path, strerror(errno));
		if (S_ISDIR(st.st_mode)) {
			walk(fs_path, web_path, depth + 1);
			free(fs_path);
			free(web_path);
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			if (stat(fs_path, &st) != 0)
				die("cannot stat %s: %s", fs_path, strerror(errno));
			if (S_ISDIR(st.st_mode))
				die("%s: symlinked directories are not supported", fs_path);
		}
		if (!S_ISREG(st.st_mode))
			die("%s: not a regular file or directory", fs_path);
		add_entry(fs_path, web_path);
	}
	closedir(d);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return strcmp(x->web_path, y->web_path);
}

static const struct {
	const char *ext;
	const char *type;
} types[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "htm", "text/html; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "svg", "image/svg+xml; charset=utf-8" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "webp", "image/webp" },
	{ "avif", "image/avif" },
	{ "ico", "image/x-icon" },
	{ "json", "application/json; charset=utf-8" },
	{ "map", "application/json; charset=utf-8" },
	{ "webmanifest", "application/manifest+json; charset=utf-8" },
	{ "woff2", "font/woff2" },
	{ "woff", "font/woff" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "xml", "application/xml; charset=utf-8" },
	{ "wasm", "application/wasm" },
};

static const char *content_type(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');
	size_t i;

	if (dot && dot[1]) {
		for (i = 0; i < sizeof types / sizeof types[0]; i++)
			if (!strcasecmp(dot + 1, types[i].ext))
				return types[i].type;
	}
	return "application/octet-stream";
}

static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
	uint64_t h = UINT64_C(14695981039346656037);
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	size_t size, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0)
		die("cannot stat %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		die("%s: not a regular file", path);
	if (st.st_size < 0 || (uintmax_t)st.st_size > MAX_FILE_SIZE)
		die("%s: file too large (%jd bytes, limit %zu)", path, (intmax_t)st.st_size, MAX_FILE_SIZE);
	size = (size_t)st.st_size;
	buf = xmalloc(size + 1);
	/* Read one byte past the expected size to notice files that grow
	 * while we read them. */
	while (got < size + 1) {
		ssize_t r = read(fd, buf + got, size + 1 - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("cannot read %s: %s", path, strerror(errno));
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got != size)
		die("%s: file changed size while being read", path);
	close(fd);
	*len = size;
	return buf;
}

/* Output with error tracking: every write goes through these, and the
 * stream's error flag is checked once before the rename. */
static FILE *out;

static void put(const char *s)
{
	fputs(s, out);
}

static void putf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void putf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
}

/* Escape one byte for a C string literal into buf; returns its length.
 * Non-printable bytes use 3-digit octal escapes, which never absorb the
 * following character.  '?' is escaped so no trigraph can form. */
static size_t escape_byte(unsigned char c, char buf[5])
{
	switch (c) {
	case '"':
	case '\\':
	case '?':
		buf[0] = '\\';
		buf[1] = (char)c;
		return 2;
	case '\n':
		buf[0] = '\\';
		buf[1] = 'n';
		return 2;
	case '\t':
		buf[0] = '\\';
		buf[1] = 't';
		return 2;
	default:
		if (c >= 0x20 && c < 0x7f) {
			buf[0] = (char)c;
			return 1;
		}
		buf[0] = '\\';
		buf[1] = (char)('0' + ((c >> 6) & 7));
		buf[2] = (char)('0' + ((c >> 3) & 7));
		buf[3] = (char)('0' + (c & 7));
		return 4;
	}
}

/* A short string (path, type) as one C literal. */
static void put_cstring(const char *s)
{
	char buf[5];

	fputc('"', out);
	for (; *s; s++) {
		size_t k = escape_byte((unsigned char)*s, buf);

		fwrite(buf, 1, k, out);
	}
	fputc('"', out);
}

/* File contents as a series of adjacent literals, one per output line.
 * A line also ends after "\n" in the data so text stays readable. */
static void put_data(const unsigned char *p, size_t n)
{
	char line[CHUNK_COLS + 8];
	size_t used = 0, i;

	if (n == 0) {
		put("\t\"\"");
		return;
	}
	for (i = 0; i < n; i++) {
		char buf[5];
		size_t k = escape_byte(p[i], buf);

		memcpy(line + used, buf, k);
		used += k;
		if (used >= CHUNK_COLS || p[i] == '\n' || i + 1 == n) {
			fputs("\t\"", out);
			fwrite(line, 1, used, out);
			fputs(i + 1 == n ? "\"" : "\"\n", out);
			used = 0;
		}
	}
}

static void make_temp(const char *dest)
{
	mode_t mask;
	int fd;

	tmp_path = join(dest, "", ".tmp.XXXXXX");
	fd = mkstemp(tmp_path);
	if (fd < 0) {
		int e = errno;
		char *p = tmp_path;

		tmp_path = NULL;
		die("cannot create %s: %s", p, strerror(e));
	}
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) != 0)
		die("cannot chmod %s: %s", tmp_path, strerror(errno));
	out = fdopen(fd, "w");
	if (!out)
		die("cannot open %s: %s", tmp_path, strerror(errno));
}

static void finish(const char *dest)
{
	if (fflush(out) != 0 || ferror(out))
		die("cannot write %s: %s", tmp_path, strerror(errno));
	if (fsync(fileno(out)) != 0 && errno != EINVAL)
		die("cannot sync %s: %s", tmp_path, strerror(errno));
	if (fclose(out) != 0) {
		out = NULL;
		die("cannot write %s: %s", tmp_path, strerror(errno));
	}
	out = NULL;
	if (rename(tmp_path, dest) != 0)
		die("cannot rename %s to %s: %s", tmp_path, dest, strerror(errno));
	free(tmp_path);
	tmp_path = NULL;
}

int main(int argc, char **argv)
{
	const char *dir, *dest;
	size_t i;
	struct stat st;

	if (argc > 0 && argv[0] && *argv[0])
		prog = argv[0];
	if (argc != 3) {
		fprintf(stderr, "usage: %s DIR OUT.c\n", prog);
		return 1;
	}
	dir = argv[1];
	dest = argv[2];

	if (stat(dir, &st) != 0)
		die("cannot access %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die("%s: not a directory", dir);
	walk(dir, "", 0);
	if (n_entries == 0)
		die("%s: no files to embed", dir);
	qsort(entries, n_entries, sizeof *entries, cmp_entry);

	make_temp(dest);
	put("/*\n"
	    " * Generated by tools/embed.c -- do not edit.\n"
	    " *\n"
	    " * The built web UI (web/dist), embedded into the fusion binary.\n"
	    " * Entries are sorted by strcmp on the path; see src/http/webui.h.\n"
	    " */\n"
	    "#include \"http/webui.h\"\n\n");

	for (i = 0; i < n_entries; i++) {
		struct entry *e = &entries[i];
		unsigned char *data = read_file(e->fs_path, &e->len);

		total_size += e->len;
		if (total_size > MAX_TOTAL_SIZE)
			die("%s: total size exceeds %zu bytes", dir, MAX_TOTAL_SIZE);
		snprintf(e->etag, sizeof e->etag, "\"%016" PRIx64 "\"", fnv1a64(data, e->len));
		putf("/* %zu bytes */\nstatic const unsigned char webui_data_%zu[] =\n", e->len, i);
		put_data(data, e->len);
		put(";\n\n");
		free(data);
	}

	put("const struct webui_asset webui_assets[] = {\n");
	for (i = 0; i < n_entries; i++) {
		const char *p = entries[i].web_path;

		put("\t{");
		put_cstring(p);
		put(", ");
		put_cstring(content_type(p));
		putf(", webui_data_%zu, %zu, ", i, entries[i].len);
		put_cstring(entries[i].etag);
		putf(", %d},\n", strncmp(p, "/assets/", 8) == 0);
	}
	put("};\n\n");
	putf("const size_t webui_assets_count = %zu;\n", n_entries);
	finish(dest);

	for (i = 0; i < n_entries; i++) {
		free(entries[i].fs_path);
		free(entries[i].web_path);
	}
	free(entries);
	return 0;
}
