/* Unit tests for config.c: defaults, precedence, validation messages. */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"

static enum config_result load(struct config *cfg, char **env, int argc, char **argv, char *err)
{
	return config_load(cfg, argc, argv, env, err, 256);
}

Test(config, defaults)
{
	struct config cfg;
	char err[256] = "";
	char *env[] = { NULL };
	char *argv[] = { "fusion", NULL };
	cr_assert_eq(load(&cfg, env, 1, argv, err), CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.port, 8080);
	cr_assert_str_eq(cfg.db_path, "fusion.db");
	cr_assert_str_eq(cfg.listen_addr, "0.0.0.0");
	cr_assert_eq(cfg.max_body_bytes, 32u << 20);
	cr_assert_eq(cfg.log_level, LOG_INFO);
	cr_assert_eq(cfg.log_format, LOG_TEXT);
	cr_assert_geq(cfg.workers, 1);
	config_free(&cfg);
}

Test(config, env_then_flag_precedence)
{
	struct config cfg;
	char err[256] = "";
	char *env[] = { "PORT=9000", "DB_PATH=/tmp/a.db", "LOG_FORMAT=json", "WORKERS=3", NULL };
	char *argv[] = { "fusion", "--port=9100", "--db-path", "/tmp/b.db", NULL };
	cr_assert_eq(load(&cfg, env, 4, argv, err), CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.port, 9100);
	cr_assert_str_eq(cfg.db_path, "/tmp/b.db");
	cr_assert_eq(cfg.log_format, LOG_JSON);
	cr_assert_eq(cfg.workers, 3);
	config_free(&cfg);
}

Test(config, only_the_value_in_effect_is_validated)
{
	struct config cfg;
	char err[256] = "";
	char *env[] = { "PORT=not-a-port", NULL };
	char *argv[] = { "fusion", "--port=1", NULL };
	cr_assert_eq(load(&cfg, env, 2, argv, err), CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.port, 1);
	config_free(&cfg);
}

Test(config, invalid_values_name_the_setting)
{
	static const char *bad[][2] = {
		{ "PORT=70000", "invalid PORT '70000' (from environment)" },
		{ "WORKERS=abc", "invalid WORKERS" },
		{ "LOG_LEVEL=verbose", "invalid LOG_LEVEL" },
		{ "MAX_BODY_BYTES=99999999999999999999", "invalid MAX_BODY_BYTES" },
		{ "LISTEN_ADDR=localhost", "invalid LISTEN_ADDR" },
		{ "IDLE_TIMEOUT_MS=5", "invalid IDLE_TIMEOUT_MS" },
		{ "PORT= 80", "invalid PORT" },
		{ "PORT=80 ", "invalid PORT" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config cfg;
		char err[256] = "";
		char *env[] = { (char *)bad[i][0], NULL };
		char *argv[] = { "fusion", NULL };
		cr_assert_eq(load(&cfg, env, 1, argv, err), CONFIG_ERROR, "%s accepted", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]) != NULL, "%s: got '%s'", bad[i][0], err);
		config_free(&cfg);
	}
}

Test(config, flag_errors)
{
	struct config cfg;
	char err[256] = "";
	char *env[] = { NULL };
	char *argv1[] = { "fusion", "--bogus=1", NULL };
	cr_assert_eq(load(&cfg, env, 2, argv1, err), CONFIG_ERROR);
	cr_assert(strstr(err, "unknown flag") != NULL);
	config_free(&cfg);
	char *argv2[] = { "fusion", "--port", NULL };
	cr_assert_eq(load(&cfg, env, 2, argv2, err), CONFIG_ERROR);
	cr_assert(strstr(err, "needs a value") != NULL);
	config_free(&cfg);
}

Test(config, byte_sizes)
{
	uint64_t v;
	cr_assert_eq(config_parse_bytes("1024", &v), 0);
	cr_assert_eq(v, 1024);
	cr_assert_eq(config_parse_bytes("32m", &v), 0);
	cr_assert_eq(v, 32u << 20);
	cr_assert_eq(config_parse_bytes("4KiB", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(config_parse_bytes("1G", &v), 0);
	cr_assert_eq(v, 1u << 30);
	cr_assert_eq(config_parse_bytes("1gb", &v), 0);
	cr_assert_eq(config_parse_bytes("", &v), -1);
	cr_assert_eq(config_parse_bytes("-1", &v), -1);
	cr_assert_eq(config_parse_bytes("12x", &v), -1);
	cr_assert_eq(config_parse_bytes("1mm", &v), -1);
	cr_assert_eq(config_parse_bytes("17179869184g", &v), -1); /* overflows 64 bits */
}
