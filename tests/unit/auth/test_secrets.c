/*
 * test_secrets.c — unit tests for src/auth/secrets.c.
 *
 * Each test gets its own directory from mkdtemp (made in .init, removed
 * in .fini) with a database path inside it, so key files from different
 * tests never meet.  Keys given through the "environment" are passed
 * straight to secrets_open() (the caller does the getenv).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "testutil.h"
#include <sodium.h>

#include "auth/secrets.h"
#include "util/log.h"

#define ENV_ERR "FUSION_SECRET_KEY must be 32 bytes as 64 hex digits or base64"

static char g_dir[64];
static char g_db[128];
static char g_keyfile[160];

static void setup(void)
{
	alarm(30); /* per-test time limit in place of .timeout (see test_token.c) */
	cr_assert_geq(sodium_init(), 0, "sodium_init failed");
	log_setup(LOG_WARN, LOG_TEXT); /* keep "created master key file" out of the output */
	testutil_mkdtemp(g_dir, sizeof(g_dir), "secrets");
	snprintf(g_db, sizeof(g_db), "%s/fusion.db", g_dir);
	snprintf(g_keyfile, sizeof(g_keyfile), "%s/fusion.db.key", g_dir);
}

static void teardown(void)
{
	testutil_rmdir(g_dir);
}

/* No .timeout (alarm() in .init instead): see test_token.c. */
TestSuite(secrets, .init = setup, .fini = teardown);

/* ---- helpers ----------------------------------------------------------- */

static struct secrets *open_env(const char *env)
{
	struct secrets *s = NULL;
	char err[256];

	cr_assert_eq(secrets_open(g_db, env, &s, err, sizeof(err)), 0, "open with env key: %s", err);
	cr_assert_not_null(s);
	return s;
}

static struct secrets *open_file(void)
{
	struct secrets *s = NULL;
	char err[512];

	cr_assert_eq(secrets_open(g_db, NULL, &s, err, sizeof(err)), 0, "open with key file: %s", err);
	cr_assert_not_null(s);
	return s;
}

/* Open must fail; returns the message (static buffer). */
static const char *open_fails(const char *env)
{
	static char err[512];
	struct secrets *s = (struct secrets *)&err; /* must be reset to NULL */

	cr_assert_eq(secrets_open(g_db, env, &s, err, sizeof(err)), -1, "open unexpectedly succeeded");
	cr_assert_null(s);
	cr_assert_neq(err[0], '\0', "no error message");
	return err;
}

static void random_hex_key(char hex[65], unsigned char raw[32])
{
	randombytes_buf(raw, 32);
	sodium_bin2hex(hex, 65, raw, 32);
}

static void write_file(const char *path, const char *content, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void encrypt_ok(const struct secrets *s, const char *text, unsigned char **ct, size_t *ctlen)
{
	cr_assert_eq(secrets_encrypt(s, text, strlen(text), ct, ctlen), 0);
	cr_assert_not_null(*ct);
	cr_assert_eq(*ctlen, strlen(text) + SECRETS_OVERHEAD);
}

static void decrypts_to(const struct secrets *s, const unsigned char *ct, size_t ctlen, const char *want)
{
	char *p = NULL;
	size_t n = 99;

	cr_assert_eq(secrets_decrypt(s, ct, ctlen, &p, &n), 0, "decrypt failed");
	cr_assert_eq(n, strlen(want));
	cr_assert_str_eq(p, want);
	sodium_memzero(p, n);
	free(p);
}

static void decrypt_fails(const struct secrets *s, const unsigned char *ct, size_t ctlen, const char *why)
{
	char *p = (char *)"sentinel";
	size_t n = 99;

	cr_assert_eq(secrets_decrypt(s, ct, ctlen, &p, &n), -1, "decrypt accepted: %s", why);
	cr_assert_null(p);
	cr_assert_eq(n, 0);
}

/* ---- encryption -------------------------------------------------------- */

Test(secrets, round_trip)
{
	char hex[65];
	unsigned char raw[32], *ct = NULL;
	size_t ctlen = 0;
	struct secrets *s;

	random_hex_key(hex, raw);
	s = open_env(hex);
	encrypt_ok(s, "sk-ant-api03-very-secret", &ct, &ctlen);
	cr_assert_eq(ct[0], SECRETS_VERSION);
	cr_assert_null(memmem(ct, ctlen, "very-secret", 11), "plaintext visible in ciphertext");
	decrypts_to(s, ct, ctlen, "sk-ant-api03-very-secret");
	free(ct);

	/* Empty plaintext, and binary bytes with an embedded NUL. */
	encrypt_ok(s, "", &ct, &ctlen);
	decrypts_to(s, ct, ctlen, "");
	free(ct);
	cr_assert_eq(secrets_encrypt(s, NULL, 0, &ct, &ctlen), 0);
	decrypts_to(s, ct, ctlen, "");
	free(ct);

	const unsigned char bin[5] = { 1, 0, 2, 0xff, 0 };
	char *p = NULL;
	size_t n = 0;
	cr_assert_eq(secrets_encrypt(s, bin, sizeof(bin), &ct, &ctlen), 0);
	cr_assert_eq(secrets_decrypt(s, ct, ctlen, &p, &n), 0);
	cr_assert_eq(n, sizeof(bin));
	cr_assert_eq(memcmp(p, bin, n), 0);
	cr_assert_eq(p[n], '\0');
	free(p);
	free(ct);
	secrets_close(s);
}

Test(secrets, every_tampered_byte_fails)
{
	char hex[65];
	unsigned char raw[32], *ct = NULL;
	size_t ctlen = 0;
	struct secrets *s;

	random_hex_key(hex, raw);
	s = open_env(hex);
	encrypt_ok(s, "sk-abcdef1234567890wxyz", &ct, &ctlen);
	for (size_t i = 0; i < ctlen; i++) {
		ct[i] ^= 0x01;
		decrypt_fails(s, ct, ctlen, "tampered byte");
		ct[i] ^= 0x01;
	}
	decrypts_to(s, ct, ctlen, "sk-abcdef1234567890wxyz");

	ct[0] = 2;
	decrypt_fails(s, ct, ctlen, "unknown version");
	free(ct);
	secrets_close(s);
}

Test(secrets, truncated_and_extended_fail)
{
	char hex[65];
	unsigned char raw[32], *ct = NULL, *longer;
	size_t ctlen = 0;
	struct secrets *s;

	random_hex_key(hex, raw);
	s = open_env(hex);
	encrypt_ok(s, "provider-key", &ct, &ctlen);
	for (size_t n = 0; n < ctlen; n++)
		decrypt_fails(s, ct, n, "truncated");
	longer = malloc(ctlen + 1);
	memcpy(longer, ct, ctlen);
	longer[ctlen] = 'x';
	decrypt_fails(s, longer, ctlen + 1, "extra byte");
	free(longer);
	free(ct);
	secrets_close(s);
}

Test(secrets, wrong_key_fails)
{
	char hex1[65], hex2[65];
	unsigned char raw[32], *ct = NULL;
	size_t ctlen = 0;
	struct secrets *a, *b;

	random_hex_key(hex1, raw);
	random_hex_key(hex2, raw);
	a = open_env(hex1);
	b = open_env(hex2);
	encrypt_ok(a, "provider-key", &ct, &ctlen);
	decrypt_fails(b, ct, ctlen, "other key");
	decrypts_to(a, ct, ctlen, "provider-key");
	free(ct);
	secrets_close(a);
	secrets_close(b);
}

Test(secrets, nonce_differs_between_encryptions)
{
	char hex[65];
	unsigned char raw[32], *c1 = NULL, *c2 = NULL;
	size_t l1 = 0, l2 = 0;
	struct secrets *s;

	random_hex_key(hex, raw);
	s = open_env(hex);
	encrypt_ok(s, "same text", &c1, &l1);
	encrypt_ok(s, "same text", &c2, &l2);
	cr_assert_eq(l1, l2);
	cr_assert_neq(memcmp(c1 + 1, c2 + 1, 24), 0, "nonce reused");
	cr_assert_neq(memcmp(c1 + 25, c2 + 25, l1 - 25), 0, "ciphertext repeated");
	free(c1);
	free(c2);
	secrets_close(s);
}

Test(secrets, bad_arguments)
{
	char hex[65];
	unsigned char raw[32], *ct = (unsigned char *)"x";
	size_t ctlen = 5;
	char *p = NULL;
	size_t n;
	struct secrets *s;

	random_hex_key(hex, raw);
	s = open_env(hex);
	cr_assert_eq(secrets_encrypt(NULL, "a", 1, &ct, &ctlen), -1);
	cr_assert_null(ct);
	cr_assert_eq(ctlen, 0);
	cr_assert_eq(secrets_encrypt(s, NULL, 3, &ct, &ctlen), -1);
	cr_assert_eq(secrets_encrypt(s, "a", 1, NULL, &ctlen), -1);
	cr_assert_eq(secrets_decrypt(NULL, raw, sizeof(raw), &p, &n), -1);
	cr_assert_eq(secrets_decrypt(s, NULL, 50, &p, &n), -1);
	cr_assert_eq(secrets_open(g_db, hex, NULL, NULL, 0), -1);
	secrets_close(NULL);
	secrets_close(s);
}

/* ---- FUSION_SECRET_KEY ------------------------------------------------- */

Test(secrets, env_key_forms_accepted)
{
	char hex[65], upper[65], b64[64];
	unsigned char raw[32], *ct = NULL;
	size_t ctlen = 0;
	struct secrets *ref, *s;
	static const int variants[] = { sodium_base64_VARIANT_ORIGINAL,
		                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		                        sodium_base64_VARIANT_URLSAFE,
		                        sodium_base64_VARIANT_URLSAFE_NO_PADDING };

	/* Make sure the key has bytes that differ between the standard and URL-safe alphabets. */
	do {
		random_hex_key(hex, raw);
		sodium_bin2base64(b64, sizeof(b64), raw, 32, sodium_base64_VARIANT_ORIGINAL);
	} while (!strpbrk(b64, "+/"));

	ref = open_env(hex);
	encrypt_ok(ref, "provider-key", &ct, &ctlen);

	for (size_t i = 0; i < 4; i++) {
		sodium_bin2base64(b64, sizeof(b64), raw, 32, variants[i]);
		s = open_env(b64);
		decrypts_to(s, ct, ctlen, "provider-key");
		secrets_close(s);
	}
	for (size_t i = 0; i < 64; i++)
		upper[i] = (hex[i] >= 'a' && hex[i] <= 'f') ? (char)(hex[i] - 'a' + 'A') : hex[i];
	upper[64] = '\0';
	s = open_env(upper);
	decrypts_to(s, ct, ctlen, "provider-key");
	secrets_close(s);

	cr_assert_eq(access(g_keyfile, F_OK), -1, "an env key must not create a key file");
	free(ct);
	secrets_close(ref);
}

Test(secrets, env_key_wrong_forms_refused)
{
	char hex[65], buf[128], b64[80];
	unsigned char raw[40];

	random_hex_key(hex, raw);
	cr_assert_str_eq(open_fails(""), ENV_ERR);
	snprintf(buf, sizeof(buf), "%.62s", hex); /* 31 bytes of hex */
	cr_assert_str_eq(open_fails(buf), ENV_ERR);
	snprintf(buf, sizeof(buf), "%.63s", hex);
	cr_assert_str_eq(open_fails(buf), ENV_ERR);
	snprintf(buf, sizeof(buf), "%sab", hex); /* 33 bytes */
	cr_assert_str_eq(open_fails(buf), ENV_ERR);
	snprintf(buf, sizeof(buf), "%s\n", hex); /* no trimming */
	cr_assert_str_eq(open_fails(buf), ENV_ERR);
	snprintf(buf, sizeof(buf), " %s", hex);
	cr_assert_str_eq(open_fails(buf), ENV_ERR);
	snprintf(buf, sizeof(buf), "%.63sg", hex); /* non-hex digit */
	cr_assert_str_eq(open_fails(buf), ENV_ERR);

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(b64, sizeof(b64), raw, 31, sodium_base64_VARIANT_ORIGINAL);
	cr_assert_str_eq(open_fails(b64), ENV_ERR);
	sodium_bin2base64(b64, sizeof(b64), raw, 33, sodium_base64_VARIANT_ORIGINAL);
	cr_assert_str_eq(open_fails(b64), ENV_ERR);
	sodium_bin2base64(b64, sizeof(b64), raw, 16, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	cr_assert_str_eq(open_fails(b64), ENV_ERR);
	cr_assert_str_eq(open_fails("correct horse battery staple"), ENV_ERR);
	/* Valid base64 characters, but the padding is wrong. */
	sodium_bin2base64(b64, sizeof(b64), raw, 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(buf, sizeof(buf), "%s=", b64);
	cr_assert_str_eq(open_fails(buf), ENV_ERR);

	/* The message never echoes the value. */
	cr_assert_null(strstr(open_fails(hex + 2), hex + 2));
	cr_assert_eq(access(g_keyfile, F_OK), -1, "a bad env key must not fall back to a key file");
}

/* ---- key file ---------------------------------------------------------- */

Test(secrets, key_file_created_0600_and_reused)
{
	unsigned char *ct = NULL;
	size_t ctlen = 0;
	struct stat st;
	struct secrets *s;
	char content[100];

	cr_assert_eq(access(g_keyfile, F_OK), -1);
	s = open_file();
	cr_assert(secrets_key_created(s));
	cr_assert_eq(lstat(g_keyfile, &st), 0, "key file not created");
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", (unsigned)(st.st_mode & 07777));
	cr_assert_eq(st.st_uid, geteuid());
	cr_assert_eq(st.st_size, 65, "64 hex digits and a newline");

	FILE *f = fopen(g_keyfile, "r");
	cr_assert_not_null(f);
	size_t n = fread(content, 1, sizeof(content), f);
	fclose(f);
	cr_assert_eq(n, 65);
	cr_assert_eq(content[64], '\n');
	for (int i = 0; i < 64; i++)
		cr_assert((content[i] >= '0' && content[i] <= '9') ||
		          (content[i] >= 'a' && content[i] <= 'f'));

	encrypt_ok(s, "provider-key", &ct, &ctlen);
	secrets_close(s);

	s = open_file();
	cr_assert_not(secrets_key_created(s), "second open must reuse the file");
	decrypts_to(s, ct, ctlen, "provider-key");
	secrets_close(s);

	/* The same key given through the environment also decrypts it. */
	content[64] = '\0';
	s = open_env(content);
	decrypts_to(s, ct, ctlen, "provider-key");
	secrets_close(s);

	/* No temporary files left behind. */
	DIR *d = opendir(g_dir);
	struct dirent *e;
	int entries = 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			entries++;
	closedir(d);
	cr_assert_eq(entries, 1, "only the key file should be in the directory");
	free(ct);
}

Test(secrets, key_file_created_0600_whatever_the_umask)
{
	static const mode_t masks[] = { 0, 0277 };
	struct stat st;

	for (size_t i = 0; i < 2; i++) {
		mode_t old = umask(masks[i]);
		struct secrets *s = open_file();
		umask(old);
		cr_assert(secrets_key_created(s));
		cr_assert_eq(stat(g_keyfile, &st), 0);
		cr_assert_eq(st.st_mode & 07777, 0600, "umask %04o gave mode %04o", (unsigned)masks[i],
		             (unsigned)(st.st_mode & 07777));
		secrets_close(s);
		cr_assert_eq(unlink(g_keyfile), 0);
	}
}

Test(secrets, key_file_without_newline_and_0400_accepted)
{
	char hex[65];
	unsigned char raw[32], *ct = NULL;
	size_t ctlen = 0;
	struct secrets *ref, *s;

	random_hex_key(hex, raw);
	ref = open_env(hex);
	encrypt_ok(ref, "provider-key", &ct, &ctlen);

	write_file(g_keyfile, hex, 64, 0400);
	s = open_file();
	cr_assert_not(secrets_key_created(s));
	decrypts_to(s, ct, ctlen, "provider-key");
	secrets_close(s);
	free(ct);
	secrets_close(ref);
}

Test(secrets, key_file_group_or_world_readable_refused)
{
	char hex[65], content[66];
	unsigned char raw[32];
	const char *msg;

	random_hex_key(hex, raw);
	snprintf(content, sizeof(content), "%s\n", hex);
	write_file(g_keyfile, content, 65, 0644);
	msg = open_fails(NULL);
	cr_assert_not_null(strstr(msg, g_keyfile), "message should name the file: %s", msg);
	cr_assert_not_null(strstr(msg, "chmod 600"), "message should say how to fix: %s", msg);
	cr_assert_null(strstr(msg, hex), "message must not contain the key");

	cr_assert_eq(chmod(g_keyfile, 0640), 0);
	open_fails(NULL);
	cr_assert_eq(chmod(g_keyfile, 0602), 0);
	cr_assert_not_null(strstr(open_fails(NULL), "group or others"));
	cr_assert_eq(chmod(g_keyfile, 0700), 0); /* not 0600 or stricter */
	open_fails(NULL);

	/* Owned by someone else (only root can hand the file over to test this). */
	if (geteuid() == 0) {
		cr_assert_eq(chmod(g_keyfile, 0600), 0);
		cr_assert_eq(chown(g_keyfile, 12345, (gid_t)-1), 0);
		cr_assert_not_null(strstr(open_fails(NULL), "owned by uid 12345"));
		cr_assert_eq(chown(g_keyfile, 0, (gid_t)-1), 0);
	}

	/* The refused file is left alone, and works once fixed. */
	cr_assert_eq(chmod(g_keyfile, 0600), 0);
	struct secrets *s = open_file();
	cr_assert_not(secrets_key_created(s));
	secrets_close(s);
}

Test(secrets, key_file_garbage_refused)
{
	char hex[65], buf[160];
	unsigned char raw[32];
	struct stat st;
	const char *bad[6];
	size_t badlen[6];
	int nbad = 0;

	random_hex_key(hex, raw);
	bad[nbad] = "";
	badlen[nbad++] = 0;
	bad[nbad] = "not a key\n";
	badlen[nbad++] = 10;
	bad[nbad] = hex; /* 63 digits + newline */
	badlen[nbad++] = 63;
	static char more[3][80];
	snprintf(more[0], sizeof(more[0]), "%s\n\n", hex);
	snprintf(more[1], sizeof(more[1]), "%.63sz\n", hex);
	snprintf(more[2], sizeof(more[2]), "%s00\n", hex);
	for (int i = 0; i < 3; i++) {
		bad[nbad] = more[i];
		badlen[nbad++] = strlen(more[i]);
	}
	for (int i = 0; i < nbad; i++) {
		write_file(g_keyfile, bad[i], badlen[i], 0600);
		const char *msg = open_fails(NULL);
		cr_assert_not_null(strstr(msg, "64 hex digits"), "case %d: %s", i, msg);
		/* Never replaced by a fresh key. */
		cr_assert_eq(stat(g_keyfile, &st), 0);
		cr_assert_eq((size_t)st.st_size, badlen[i], "case %d: key file was rewritten", i);
	}

	/* A long file is refused without reading it all. */
	memset(buf, 'a', sizeof(buf));
	write_file(g_keyfile, buf, sizeof(buf), 0600);
	open_fails(NULL);
}

Test(secrets, key_file_symlink_directory_fifo_refused)
{
	char hex[65], content[66], target[200];
	unsigned char raw[32];

	random_hex_key(hex, raw);
	snprintf(content, sizeof(content), "%s\n", hex);
	snprintf(target, sizeof(target), "%s/real.key", g_dir);
	write_file(target, content, 65, 0600);
	cr_assert_eq(symlink(target, g_keyfile), 0);
	cr_assert_not_null(strstr(open_fails(NULL), "symbolic link"));
	unlink(g_keyfile);

	/* A dangling symlink is not followed to create a file elsewhere. */
	snprintf(target, sizeof(target), "%s/elsewhere.key", g_dir);
	cr_assert_eq(symlink(target, g_keyfile), 0);
	open_fails(NULL);
	cr_assert_eq(access(target, F_OK), -1, "created a file through a symlink");
	unlink(g_keyfile);

	cr_assert_eq(mkdir(g_keyfile, 0600), 0);
	cr_assert_not_null(strstr(open_fails(NULL), "not a regular file"));
	rmdir(g_keyfile);

	/* A FIFO must neither hang the start nor be taken for an empty file. */
	cr_assert_eq(mkfifo(g_keyfile, 0600), 0);
	cr_assert_not_null(strstr(open_fails(NULL), "not a regular file"));
	unlink(g_keyfile);
}

Test(secrets, key_file_in_missing_directory_fails_cleanly)
{
	struct secrets *s = (struct secrets *)g_db;
	char err[512], db[200];

	snprintf(db, sizeof(db), "%s/no/such/dir/fusion.db", g_dir);
	cr_assert_eq(secrets_open(db, NULL, &s, err, sizeof(err)), -1);
	cr_assert_null(s);
	cr_assert_not_null(strstr(err, "cannot create master key file"), "%s", err);
	cr_assert_eq(secrets_open("", NULL, &s, err, sizeof(err)), -1);
	cr_assert_eq(secrets_open(NULL, NULL, &s, NULL, 0), -1);
}

/* ---- key check --------------------------------------------------------- */

Test(secrets, check_round_trip_and_mismatch)
{
	char hex1[65], hex2[65];
	unsigned char raw[32];
	char *c1 = NULL, *c2 = NULL;
	struct secrets *a, *b;

	random_hex_key(hex1, raw);
	random_hex_key(hex2, raw);
	a = open_env(hex1);
	b = open_env(hex2);
	cr_assert_eq(secrets_make_check(a, &c1), 0);
	cr_assert_not_null(c1);
	cr_assert_eq(secrets_verify_check(a, c1), 0);
	cr_assert_eq(secrets_verify_check(b, c1), -1, "another key must not pass the check");

	cr_assert_eq(secrets_make_check(a, &c2), 0);
	cr_assert_str_neq(c1, c2, "checks use fresh nonces");
	cr_assert_eq(secrets_verify_check(a, c2), 0);

	/* A ciphertext of other text under the right key is not a valid check. */
	unsigned char *ct = NULL;
	size_t ctlen = 0;
	char b64[256];
	encrypt_ok(a, "something else entirely", &ct, &ctlen);
	sodium_bin2base64(b64, sizeof(b64), ct, ctlen, sodium_base64_VARIANT_ORIGINAL);
	cr_assert_eq(secrets_verify_check(a, b64), -1);
	free(ct);

	/* Damaged or absent checks. */
	c1[10] = c1[10] == 'A' ? 'B' : 'A';
	cr_assert_eq(secrets_verify_check(a, c1), -1);
	cr_assert_eq(secrets_verify_check(a, ""), -1);
	cr_assert_eq(secrets_verify_check(a, "!!!not base64!!!"), -1);
	cr_assert_eq(secrets_verify_check(a, NULL), -1);
	cr_assert_eq(secrets_verify_check(NULL, c2), -1);

	free(c1);
	free(c2);
	secrets_close(a);
	secrets_close(b);
}

/* ---- threads ----------------------------------------------------------- */

static void *crypt_thread(void *arg)
{
	const struct secrets *s = arg;
	char text[32];

	for (int i = 0; i < 200; i++) {
		unsigned char *ct = NULL;
		char *p = NULL;
		size_t ctlen = 0, n = 0;
		snprintf(text, sizeof(text), "key-%d", i);
		if (secrets_encrypt(s, text, strlen(text), &ct, &ctlen) != 0 ||
		    secrets_decrypt(s, ct, ctlen, &p, &n) != 0 || strcmp(p, text) != 0) {
			free(ct);
			free(p);
			return (void *)1;
		}
		free(ct);
		free(p);
	}
	return NULL;
}

Test(secrets, one_handle_shared_by_threads)
{
	pthread_t th[4];
	void *res;
	struct secrets *s = open_file();

	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, crypt_thread, s), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pthread_join(th[i], &res), 0);
		cr_assert_null(res, "thread %d failed a round trip", i);
	}
	secrets_close(s);
}
