/*
 * secrets.c — see secrets.h.
 *
 * Where the key comes from, in order: FUSION_SECRET_KEY (parsed by
 * parse_env_key) or the key file (read_key_file; on ENOENT
 * create_key_file, then read again if another process won the race).
 * The key is written once into sodium_malloc'd memory, which is then made
 * read-only; everything afterwards only reads it, which is what makes a
 * handle safe to share between threads.
 *
 * The key file is created under a random temporary name and hard-linked
 * into place, so the final name never exists half-written (a crash
 * leaves at most a stray "<path>.tmp-*" file) and an existing key is
 * never replaced.  On file systems without hard links it falls back to
 * O_CREAT|O_EXCL on the final name directly.
 */
#include "auth/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/alloc.h"
#include "util/log.h"
#include "util/str.h"

#define KEY_BYTES crypto_secretbox_KEYBYTES
#define KEY_HEX_LEN (KEY_BYTES * 2)
#define NONCE_BYTES crypto_secretbox_NONCEBYTES
#define HDR_BYTES (1 + NONCE_BYTES)
#define ENV_KEY_ERROR "FUSION_SECRET_KEY must be 32 bytes as 64 hex digits or base64"
#define CHECK_PLAINTEXT "fusion secrets check v1"
#define CHECK_B64_MAX 1024
#define ERR_SCRATCH 512

_Static_assert(KEY_BYTES == 32, "secretbox key is 32 bytes");
_Static_assert(SECRETS_OVERHEAD == 1 + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES,
               "SECRETS_OVERHEAD must match the format");

struct secrets {
	unsigned char *key; /* owned: sodium_malloc'd KEY_BYTES, read-only once open */
	bool created;       /* secrets_open made a new key file */
};

/* ---- key parsing ------------------------------------------------------- */

static bool hex_key(const char *s, size_t n, unsigned char *key)
{
	size_t bin_len = 0;
	const char *end = NULL;

	if (n != KEY_HEX_LEN)
		return false;
	return sodium_hex2bin(key, KEY_BYTES, s, n, NULL, &bin_len, &end) == 0 && bin_len == KEY_BYTES &&
	       end == s + n;
}

static bool b64_key(const char *s, size_t n, unsigned char *key)
{
	static const int variants[] = { sodium_base64_VARIANT_ORIGINAL,
		                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		                        sodium_base64_VARIANT_URLSAFE,
		                        sodium_base64_VARIANT_URLSAFE_NO_PADDING };

	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		size_t bin_len = 0;
		const char *end = NULL;
		if (sodium_base642bin(key, KEY_BYTES, s, n, NULL, &bin_len, &end, variants[i]) == 0 &&
		    bin_len == KEY_BYTES && end == s + n)
			return true;
	}
	return false;
}

static bool parse_env_key(const char *s, unsigned char *key)
{
	/* 64 hex digits or 43/44 base64 characters; bound the scan for absurd values. */
	size_t n = strnlen(s, KEY_HEX_LEN + 1);

	return hex_key(s, n, key) || b64_key(s, n, key);
}

/* ---- key file ---------------------------------------------------------- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	const char *d = ".";
	int fd, rc = -1;

	if (slash == dir)
		d = "/";
	else if (slash) {
		*slash = '\0';
		d = dir;
	}
	fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	free(dir);
	return rc;
}

/* Returns 0 with the key loaded, 1 if the file does not exist, -1 with a message in err. */
static int read_key_file(const char *path, unsigned char *key, char *err, size_t errlen)
{
	char buf[KEY_HEX_LEN + 16];
	size_t total = 0;
	struct stat st;
	mode_t mode;
	int fd, rc = -1;

	/* O_NONBLOCK: a FIFO planted at the path must not hang the start-up; fstat refuses it below. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		if (errno == ELOOP)
			snprintf(err, errlen, "master key file %s is a symbolic link; refusing to use it",
			         path);
		else
			snprintf(err, errlen, "cannot open master key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot stat master key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "master key file %s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
		         "master key file %s is owned by uid %u, not by the user running Fusion (uid %u)",
		         path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	mode = st.st_mode & 07777;
	if (mode & 077) {
		snprintf(err, errlen,
		         "master key file %s can be accessed by group or others (mode %04o); "
		         "it must be 0600 or stricter: chmod 600 %s",
		         path, (unsigned)mode, path);
		goto out;
	}
	if (mode & ~(mode_t)0600) {
		snprintf(err, errlen,
		         "master key file %s has mode %04o; it must be 0600 or stricter: chmod 600 %s", path,
		         (unsigned)mode, path);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + total, sizeof(buf) - total);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "cannot read master key file %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		total += (size_t)r;
		if (total == sizeof(buf))
			break; /* too long: refused below */
	}
	if (!((total == KEY_HEX_LEN || (total == KEY_HEX_LEN + 1 && buf[KEY_HEX_LEN] == '\n')) &&
	      hex_key(buf, KEY_HEX_LEN, key))) {
		snprintf(err, errlen,
		         "master key file %s is not valid: it must hold exactly 64 hex digits "
		         "(and an optional newline)",
		         path);
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

/* Create `path` exclusively and write hex into it.  0, 1 if it already exists, -1 with errno set. */
static int write_new_file(const char *path, const char *hex, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int saved;

	if (fd < 0)
		return errno == EEXIST ? 1 : -1;
	/* The umask can only have removed bits; set exactly 0600 so that we can read it back. */
	if (fchmod(fd, 0600) != 0 || write_all(fd, hex, len) != 0 || fsync(fd) != 0) {
		saved = errno;
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	if (close(fd) != 0) {
		saved = errno;
		unlink(path);
		errno = saved;
		return -1;
	}
	return 0;
}

/* Make a new key in `key` and publish it at path.  0 created, 1 someone else's file is there, -1 error. */
static int create_key_file(const char *path, unsigned char *key, char *err, size_t errlen)
{
	char hex[KEY_HEX_LEN + 2];
	unsigned char rnd[8];
	char rnd_hex[sizeof(rnd) * 2 + 1];
	size_t tmplen = strlen(path) + sizeof(rnd_hex) + 8;
	char *tmp = xmalloc(tmplen);
	int rc = -1, r;

	randombytes_buf(key, KEY_BYTES);
	sodium_bin2hex(hex, sizeof(hex), key, KEY_BYTES);
	hex[KEY_HEX_LEN] = '\n';
	hex[KEY_HEX_LEN + 1] = '\0';
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(rnd_hex, sizeof(rnd_hex), rnd, sizeof(rnd));
	snprintf(tmp, tmplen, "%s.tmp-%s", path, rnd_hex);

	r = write_new_file(tmp, hex, KEY_HEX_LEN + 1);
	if (r != 0) {
		snprintf(err, errlen, "cannot create master key file %s (via %s): %s", path, tmp,
		         r > 0 ? "temporary file exists" : strerror(errno));
		goto out;
	}
	if (link(tmp, path) == 0) {
		unlink(tmp);
	} else {
		int e = errno;
		unlink(tmp);
		if (e == EEXIST) {
			rc = 1;
			goto out;
		}
		if (e != EPERM && e != EOPNOTSUPP && e != ENOSYS && e != EMLINK) {
			snprintf(err, errlen, "cannot create master key file %s: %s", path, strerror(e));
			goto out;
		}
		/* No hard links here: exclusive create on the final name. */
		r = write_new_file(path, hex, KEY_HEX_LEN + 1);
		if (r == 1) {
			rc = 1;
			goto out;
		}
		if (r < 0) {
			snprintf(err, errlen, "cannot create master key file %s: %s", path, strerror(errno));
			goto out;
		}
	}
	if (fsync_dir_of(path) != 0) {
		/* The file is there and complete; only its directory entry may not be durable yet. */
		log_warn(NULL, "cannot fsync the directory of %s: %s", path, strerror(errno));
	}
	rc = 0;
out:
	sodium_memzero(hex, sizeof(hex));
	free(tmp);
	return rc;
}

/* ---- public API -------------------------------------------------------- */

int secrets_open(const char *db_path, const char *env_key, struct secrets **out, char *err, size_t errlen)
{
	char scratch[ERR_SCRATCH];
	struct secrets *s = NULL;
	char *path = NULL;
	size_t pathlen;
	int rc = -1;

	if (!err || errlen == 0) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	err[0] = '\0';
	if (!out) {
		snprintf(err, errlen, "secrets_open: out is NULL");
		return -1;
	}
	*out = NULL;

	s = xcalloc(1, sizeof(*s));
	s->key = sodium_malloc(KEY_BYTES);
	if (!s->key) {
		snprintf(err, errlen, "cannot allocate protected memory for the master key");
		goto out;
	}
	/* sodium_malloc already tries to lock the page; a failure (RLIMIT_MEMLOCK) is not fatal. */
	(void)sodium_mlock(s->key, KEY_BYTES);

	if (env_key) {
		if (!parse_env_key(env_key, s->key)) {
			str_copy(err, errlen, ENV_KEY_ERROR);
			goto out;
		}
	} else {
		if (!db_path || !*db_path) {
			snprintf(err, errlen,
			         "no database path to put the master key file beside; set FUSION_SECRET_KEY");
			goto out;
		}
		pathlen = strlen(db_path) + sizeof(".key");
		path = xmalloc(pathlen);
		snprintf(path, pathlen, "%s.key", db_path);
		/* Two rounds: if another process creates the file between our read and create, read theirs.
		 */
		for (int round = 0;; round++) {
			int r = read_key_file(path, s->key, err, errlen);
			if (r == 0)
				break;
			if (r < 0)
				goto out;
			if (round == 1) {
				snprintf(err, errlen, "master key file %s keeps appearing and disappearing",
				         path);
				goto out;
			}
			r = create_key_file(path, s->key, err, errlen);
			if (r < 0)
				goto out;
			if (r == 0) {
				s->created = true;
				log_info(NULL, "created master key file %s", path);
				break;
			}
		}
	}
	(void)sodium_mprotect_readonly(s->key);
	*out = s;
	s = NULL;
	rc = 0;
out:
	secrets_close(s);
	free(path);
	return rc;
}

void secrets_close(struct secrets *s)
{
	if (!s)
		return;
	sodium_free(s->key); /* wipes; NULL is a no-op */
	free(s);
}

bool secrets_key_created(const struct secrets *s)
{
	return s && s->created;
}

int secrets_encrypt(const struct secrets *s, const void *plain, size_t len, unsigned char **out,
                    size_t *outlen)
{
	unsigned char *buf;

	if (out)
		*out = NULL;
	if (outlen)
		*outlen = 0;
	if (!s || !out || !outlen || (!plain && len > 0))
		return -1;
	if (len > SIZE_MAX - SECRETS_OVERHEAD || len > crypto_secretbox_MESSAGEBYTES_MAX)
		return -1;
	if (!plain)
		plain = ""; /* len == 0: keep a valid pointer for libsodium's memmove */
	buf = xmalloc(len + SECRETS_OVERHEAD);
	buf[0] = SECRETS_VERSION;
	randombytes_buf(buf + 1, NONCE_BYTES);
	crypto_secretbox_easy(buf + HDR_BYTES, plain, len, buf + 1, s->key);
	*out = buf;
	*outlen = len + SECRETS_OVERHEAD;
	return 0;
}

int secrets_decrypt(const struct secrets *s, const unsigned char *in, size_t inlen, char **plain_out,
                    size_t *plainlen)
{
	unsigned char *p;
	size_t mlen;

	if (plain_out)
		*plain_out = NULL;
	if (plainlen)
		*plainlen = 0;
	if (!s || !in || !plain_out || !plainlen)
		return -1;
	if (inlen < SECRETS_OVERHEAD || in[0] != SECRETS_VERSION)
		return -1;
	mlen = inlen - SECRETS_OVERHEAD;
	p = xmalloc(mlen + 1);
	/* The MAC is checked before anything is written to p. */
	if (crypto_secretbox_open_easy(p, in + HDR_BYTES, inlen - HDR_BYTES, in + 1, s->key) != 0) {
		free(p);
		return -1;
	}
	p[mlen] = '\0';
	*plain_out = (char *)p;
	*plainlen = mlen;
	return 0;
}

int secrets_make_check(const struct secrets *s, char **check_b64_out)
{
	unsigned char *ct = NULL;
	size_t ctlen = 0, b64len;
	char *b64;

	if (!check_b64_out)
		return -1;
	*check_b64_out = NULL;
	if (secrets_encrypt(s, CHECK_PLAINTEXT, sizeof(CHECK_PLAINTEXT) - 1, &ct, &ctlen) != 0)
		return -1;
	b64len = sodium_base64_ENCODED_LEN(ctlen, sodium_base64_VARIANT_ORIGINAL);
	b64 = xmalloc(b64len);
	sodium_bin2base64(b64, b64len, ct, ctlen, sodium_base64_VARIANT_ORIGINAL);
	free(ct);
	*check_b64_out = b64;
	return 0;
}

int secrets_verify_check(const struct secrets *s, const char *check_b64)
{
	unsigned char *ct = NULL;
	char *plain = NULL;
	size_t n, ctlen = 0, plainlen = 0;
	const char *end = NULL;
	int rc = -1;

	if (!s || !check_b64)
		return -1;
	n = strnlen(check_b64, CHECK_B64_MAX + 1);
	if (n == 0 || n > CHECK_B64_MAX)
		return -1;
	ct = xmalloc(n);
	if (sodium_base642bin(ct, n, check_b64, n, NULL, &ctlen, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != check_b64 + n)
		goto out;
	if (secrets_decrypt(s, ct, ctlen, &plain, &plainlen) != 0)
		goto out;
	if (plainlen == sizeof(CHECK_PLAINTEXT) - 1 && memcmp(plain, CHECK_PLAINTEXT, plainlen) == 0)
		rc = 0;
out:
	free(plain);
	free(ct);
	return rc;
}
