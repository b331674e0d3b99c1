/*
 * test_app.c - unit tests of src/common/app.c: module resolution, dlopen and ABI
 * checks, app_load's unknown-key rule, and pf_config_* errors raised by an
 * app. Runs in-process (each test in its own forked child, Check's default),
 * with modules from $PREFORKD_APPS and $PREFORKD_TEST_APPS. Log output is
 * captured in a temporary file per test and the messages matched verbatim.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "paths.h"

/* Every temporary file lives in tmp_dir, made and removed by main: a
 * failing test (its child exits at once) leaves nothing behind. */
static char tmp_dir[] = "/tmp/preforkd-test-app.XXXXXX";
static char log_path[128];
static char ini_path[128];
static struct config cfg;
static int cfg_loaded;

static void setup(void)
{
    int fd;

    snprintf(log_path, sizeof log_path, "%s/log-XXXXXX", tmp_dir);
    snprintf(ini_path, sizeof ini_path, "%s/ini-XXXXXX", tmp_dir);
    fd = mkstemp(log_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(log_open(log_path, LOG_DEBUG), 0);
    fd = mkstemp(ini_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    cfg_loaded = 0;
}

static void teardown(void)
{
    log_open("stderr", LOG_INFO);
    if (cfg_loaded)
        config_free(&cfg);
    unlink(log_path);
    unlink(ini_path);
}

/* Everything logged so far; the caller frees. */
static char *log_text(void)
{
    FILE *f = fopen(log_path, "r");
    char *text = calloc(1, 65536);
    size_t n;

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(text);
    n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void assert_logged(const char *needle)
{
    char *text = log_text();

    ck_assert_msg(strstr(text, needle) != NULL, "expected \"%s\" in the log, got:\n%s",
                  needle, text);
    free(text);
}

static void assert_not_logged(const char *needle)
{
    char *text = log_text();

    ck_assert_msg(strstr(text, needle) == NULL,
                  "did not expect \"%s\" in the log, got:\n%s", needle, text);
    free(text);
}

/* app_open that must succeed; on failure shows what was logged. */
static void open_ok(struct app *a, const char *module)
{
    if (app_open(a, module) != 0)
        ck_abort_msg("app_open(\"%s\") failed; log:\n%s", module, log_text());
}

/* dir ("PREFORKD_APPS" / "PREFORKD_TEST_APPS") "/" file, static buffer. */
static const char *module_path(const char *env, const char *file)
{
    static char buf[4][4096];
    static int next;
    const char *dir = getenv(env);
    char *p = buf[next++ % 4];

    ck_assert_msg(dir != NULL, "%s is not set (run through make check)", env);
    snprintf(p, sizeof buf[0], "%s/%s", dir, file);
    return p;
}

/* Writes an INI whose [app] section (line 4) names module on line 5, the
 * app_keys lines following from line 6, and loads it into cfg. */
static void load_ini(const char *module, const char *app_keys)
{
    FILE *f = fopen(ini_path, "w");
    char *errors = NULL;

    ck_assert_ptr_nonnull(f);
    fprintf(f, "[server]\nlisten = 127.0.0.1:0\n\n[app]\nmodule = %s\n%s", module,
            app_keys);
    fclose(f);
    ck_assert_msg(config_load(ini_path, &cfg, &errors) == 0, "config_load: %s",
                  errors != NULL ? errors : "?");
    cfg_loaded = 1;
}

START_TEST(open_by_path)
{
    struct app a;

    open_ok(&a, module_path("PREFORKD_APPS", "hello.so"));
    ck_assert_ptr_nonnull(a.dl);
    ck_assert_ptr_nonnull(a.api);
    ck_assert_str_eq(a.api->name, "hello");
    ck_assert_uint_eq(a.api->abi_version, PF_ABI_VERSION);
    ck_assert_ptr_nonnull(a.api->handle);
    ck_assert_str_eq(a.path, module_path("PREFORKD_APPS", "hello.so"));
    ck_assert(!a.loaded);
    app_close(&a);
    ck_assert_ptr_null(a.dl);
    ck_assert_ptr_null(a.api);
    ck_assert_ptr_null(a.path);
}
END_TEST

START_TEST(hello_life_cycle)
{
    struct app a;

    load_ini(module_path("PREFORKD_APPS", "hello.so"), "");
    open_ok(&a, cfg.app.module);
    ck_assert_int_eq(app_load(&a, &cfg), 0);
    ck_assert(a.loaded);
    ck_assert_int_eq(app_worker_init(&a), 0);
    app_worker_exit(&a);
    app_close(&a);
    ck_assert(!a.loaded);
}
END_TEST

START_TEST(echo_by_path)
{
    struct app a;

    open_ok(&a, module_path("PREFORKD_APPS", "echo.so"));
    ck_assert_str_eq(a.api->name, "echo");
    app_close(&a);
}
END_TEST

START_TEST(missing_file)
{
    const char *path = module_path("PREFORKD_TEST_APPS", "nosuch.so");
    char want[4200];
    struct app a;

    ck_assert_int_eq(app_open(&a, path), -1);
    ck_assert_ptr_null(a.dl);
    ck_assert_ptr_null(a.api);
    ck_assert_ptr_null(a.path);
    snprintf(want, sizeof want, "app: %s: cannot open shared object file", path);
    assert_logged(want);
}
END_TEST

START_TEST(bad_abi)
{
    const char *path = module_path("PREFORKD_TEST_APPS", "badabi.so");
    char want[4300];
    struct app a;

    ck_assert_int_eq(app_open(&a, path), -1);
    ck_assert_ptr_null(a.dl);
    snprintf(want, sizeof want,
             "app: %s: ABI version 999, this preforkd speaks %d: rebuild the "
             "module against this preforkd's preforkd.h",
             path, PF_ABI_VERSION);
    assert_logged(want);
}
END_TEST

START_TEST(not_a_module)
{
    static const char *const candidates[] = {
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
        "/usr/lib/libm.so.6",
    };
    const char *path = NULL;
    char want[256];
    struct app a;
    size_t i;

    for (i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (access(candidates[i], R_OK) == 0) {
            path = candidates[i];
            break;
        }
    ck_assert_msg(path != NULL, "no libm.so.6 found to try");
    ck_assert_int_eq(app_open(&a, path), -1);
    ck_assert_ptr_null(a.dl);
    snprintf(want, sizeof want, "app: %s: no symbol pf_app_entry: not a preforkd module",
             path);
    assert_logged(want);
}
END_TEST

static const char *const bad_names[] = {
    "Hello", "he llo", "hello.world", "hel$lo", "HELLO_1", "h\xc3\xa9llo",
};

START_TEST(builtin_bad_name)
{
    struct app a;
    char want[128];

    ck_assert_int_eq(app_open(&a, bad_names[_i]), -1);
    ck_assert_ptr_null(a.dl);
    snprintf(want, sizeof want, "app: module \"%s\": a built-in name is", bad_names[_i]);
    assert_logged(want);
    assert_not_logged("not found");
}
END_TEST

START_TEST(empty_module)
{
    struct app a;

    ck_assert_int_eq(app_open(&a, ""), -1);
    ck_assert_int_eq(app_open(&a, NULL), -1);
    assert_logged("app: no module given");
}
END_TEST

START_TEST(builtin_not_found)
{
    struct app a;
    char want[4300];

    ck_assert_int_eq(app_open(&a, "no-such_app0"), -1);
    ck_assert_ptr_null(a.dl);
    snprintf(want, sizeof want,
             "app: module \"no-such_app0\": not found "
             "(tried ");
    assert_logged(want);
    snprintf(want, sizeof want, "/apps/no-such_app0.so, %s/no-such_app0.so)", PF_APPDIR);
    assert_logged(want);
}
END_TEST

/* A built-in name is looked up in <dir of the executable>/apps first. This
 * binary is build/tests/test_app, and build/tests/apps holds the test
 * modules: so the built-in name "appkeys" must find that file. */
START_TEST(builtin_next_to_executable)
{
    char want[4096], got[4096];
    struct app a;

    open_ok(&a, "appkeys");
    ck_assert_str_eq(a.api->name, "appkeys");
    ck_assert_ptr_nonnull(realpath(a.path, got));
    ck_assert_ptr_nonnull(
        realpath(module_path("PREFORKD_TEST_APPS", "appkeys.so"), want));
    ck_assert_str_eq(got, want);
    app_close(&a);
}
END_TEST

/* "x.so" without a '/' is a path in the current directory, not a library
 * name for dlopen to search: it must not be found elsewhere. */
START_TEST(relative_so_is_a_path)
{
    struct app a;

    ck_assert_int_eq(chdir(getenv("PREFORKD_TEST_APPS")), 0);
    open_ok(&a, "appkeys.so");
    ck_assert_str_eq(a.path, "./appkeys.so");
    app_close(&a);
    ck_assert_int_eq(chdir("/"), 0);
    ck_assert_int_eq(app_open(&a, "appkeys.so"), -1);
    assert_logged("app: ./appkeys.so: cannot open shared object file");
}
END_TEST

START_TEST(load_reads_keys)
{
    struct app a;

    load_ini(module_path("PREFORKD_TEST_APPS", "appkeys.so"),
             "greeting = good day\nsize = 64K\n");
    open_ok(&a, cfg.app.module);
    ck_assert_int_eq(app_load(&a, &cfg), 0);
    ck_assert(a.loaded);
    ck_assert_ptr_nonnull(a.state);
    assert_logged("appkeys: greeting=\"good day\" size=65536");
    app_close(&a);
    assert_logged("appkeys: unload");
}
END_TEST

START_TEST(load_defaults)
{
    struct app a;

    load_ini(module_path("PREFORKD_TEST_APPS", "appkeys.so"), "");
    open_ok(&a, cfg.app.module);
    ck_assert_int_eq(app_load(&a, &cfg), 0);
    assert_logged("appkeys: greeting=\"hello\" size=4096");
    app_close(&a);
}
END_TEST

/* Lines of the INI written by load_ini: [app] is line 4, module line 5. */
START_TEST(unknown_key)
{
    char want[4300];
    struct app a;

    load_ini(module_path("PREFORKD_TEST_APPS", "appkeys.so"),
             "greeting = hi\ncolour = blue\nsize = 1K\n");
    open_ok(&a, cfg.app.module);
    ck_assert_int_eq(app_load(&a, &cfg), -1);
    ck_assert(!a.loaded);
    snprintf(want, sizeof want,
             "config: %s:7: [app] colour: unknown key (module %s does not "
             "use it)",
             ini_path, cfg.app.module);
    assert_logged(want);
    assert_not_logged("[app] greeting:");
    assert_not_logged("[app] size:");
    /* load succeeded, so unload ran before app_load returned -1. */
    assert_logged("appkeys: unload");
    app_close(&a);
}
END_TEST

/* hello reads no key: every key is unknown, each with its line. */
START_TEST(unknown_keys_hello)
{
    char want[4300];
    struct app a;

    load_ini(module_path("PREFORKD_APPS", "hello.so"), "a = 1\nb = 2\n");
    open_ok(&a, cfg.app.module);
    ck_assert_int_eq(app_load(&a, &cfg), -1);
    snprintf(want, sizeof want, "config: %s:6: [app] a: unknown key", ini_path);
    assert_logged(want);
    snprintf(want, sizeof want, "config: %s:7: [app] b: unknown key", ini_path);
    assert_logged(want);
    app_close(&a);
}
END_TEST

START_TEST(size_too_large)
{
    char want[4300];
    struct app a;

    load_ini(module_path("PREFORKD_TEST_APPS", "appkeys.so"), "size = 2M\n");
    open_ok(&a, cfg.app.module);
    ck_assert_int_eq(app_load(&a, &cfg), -1);
    ck_assert(!a.loaded);
    snprintf(want, sizeof want, "config: %s:6: [app] size: at most 1M, got 2097152",
             ini_path);
    assert_logged(want);
    assert_logged("load failed");
    assert_not_logged("unknown key");
    assert_not_logged("appkeys: unload");
    app_close(&a);
}
END_TEST

START_TEST(size_malformed)
{
    char want[4300];
    struct app a;

    load_ini(module_path("PREFORKD_TEST_APPS", "appkeys.so"),
             "greeting = hi\nsize = lots\n");
    open_ok(&a, cfg.app.module);
    ck_assert_int_eq(app_load(&a, &cfg), -1);
    snprintf(want, sizeof want,
             "config: %s:7: [app] size: expected a size (bytes, or with K, M, "
             "G), got \"lots\"",
             ini_path);
    assert_logged(want);
    app_close(&a);
}
END_TEST

/* The used marks are reset by each app_load: a second load (the master,
 * then a worker with preload = false) judges the keys afresh. */
START_TEST(load_twice)
{
    struct app a, b;

    load_ini(module_path("PREFORKD_TEST_APPS", "appkeys.so"), "greeting = hi\n");
    open_ok(&a, cfg.app.module);
    ck_assert_int_eq(app_load(&a, &cfg), 0);
    open_ok(&b, module_path("PREFORKD_APPS", "hello.so"));
    ck_assert_int_eq(app_load(&b, &cfg), -1);
    assert_logged("[app] greeting: unknown key");
    app_close(&b);
    app_close(&a);
}
END_TEST

START_TEST(close_empty)
{
    struct app a;

    memset(&a, 0, sizeof a);
    app_close(&a);
    ck_assert_int_eq(app_open(&a, "Bad"), -1);
    app_close(&a);
    ck_assert_int_eq(app_load(&a, &cfg), -1);
    ck_assert_int_eq(app_worker_init(&a), -1);
    app_worker_exit(&a);
}
END_TEST

static Suite *app_suite(void)
{
    Suite *s = suite_create("app");
    TCase *tc = tcase_create("open");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, open_by_path);
    tcase_add_test(tc, hello_life_cycle);
    tcase_add_test(tc, echo_by_path);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, bad_abi);
    tcase_add_test(tc, not_a_module);
    tcase_add_loop_test(tc, builtin_bad_name, 0,
                        (int)(sizeof bad_names / sizeof bad_names[0]));
    tcase_add_test(tc, empty_module);
    tcase_add_test(tc, builtin_not_found);
    tcase_add_test(tc, builtin_next_to_executable);
    tcase_add_test(tc, relative_so_is_a_path);
    tcase_add_test(tc, close_empty);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, load_reads_keys);
    tcase_add_test(tc, load_defaults);
    tcase_add_test(tc, unknown_key);
    tcase_add_test(tc, unknown_keys_hello);
    tcase_add_test(tc, size_too_large);
    tcase_add_test(tc, size_malformed);
    tcase_add_test(tc, load_twice);
    suite_add_tcase(s, tc);
    return s;
}

static void remove_tmp_dir(void)
{
    DIR *d = opendir(tmp_dir);
    struct dirent *e;
    char path[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmp_dir);
}

int main(void)
{
    SRunner *sr;
    int failed;

    if (mkdtemp(tmp_dir) == NULL) {
        perror("test_app: mkdtemp");
        return EXIT_FAILURE;
    }
    sr = srunner_create(app_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tmp_dir();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
