/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_sbxd.c - sbxd with real microVMs (TCG where KVM cannot run a
 * guest; never skipped for want of KVM): two sandboxes are created through
 * the API, sbxd is killed with SIGKILL and started again, and both
 * sandboxes must come back ready with their guest agents answering; then
 * they are deleted and nothing may be left behind.
 *
 * Binaries: ../sbxd next to this test's directory. Image: $SBX_TEST_IMAGE,
 * else ../images/default next to it. State: a fresh directory under /tmp.
 */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "host/agent/agent_client.h"
#include "base/log.h"

LOG_DEFINE_STATE("check_sbxd");

static char bindir[1024];
static char image[1100];
static char state[128];
static char key[128];
static int port;
static pid_t sbxd_pid = -1;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), p;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

struct resp {
	long status;
	char *body;
	size_t len;
	json_t *json;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct resp *r = ud;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (!nb)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

/* 0 on a response (any status), -1 when the server cannot be reached. */
static int http(struct resp *r, const char *method, const char *path, const char *body)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[256], kh[160];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	snprintf(kh, sizeof(kh), "X-Api-Key: %s", key);
	h = curl_slist_append(h, kh);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 100L);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (r->body)
		r->json = json_loads(r->body, 0, NULL);
	return rc == CURLE_OK ? 0 : -1;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static const char *jstr(struct resp *r, const char *k)
{
	const char *s = json_string_value(json_object_get(r->json, k));

	return s ? s : "";
}

static void start_sbxd(void)
{
	char bin[PATH_MAX + 16], listen_arg[64], log[PATH_MAX + 16];
	struct resp r;

	snprintf(bin, sizeof(bin), "%s/../sbxd", bindir);
	snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", port);
	snprintf(log, sizeof(log), "%s/sbxd.log", state);
	sbxd_pid = fork();
	ck_assert_int_ge(sbxd_pid, 0);
	if (sbxd_pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, "sbxd", "serve", "--state-dir", state, "--listen", listen_arg, "--image",
		      image, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		if (http(&r, "GET", "/healthz", NULL) == 0 && r.status == 200) {
			resp_free(&r);
			return;
		}
		resp_free(&r);
		ck_assert_msg(waitpid(sbxd_pid, NULL, WNOHANG) == 0, "sbxd exited (see %s)", log);
		sleep_ms(100);
	}
	ck_abort_msg("sbxd did not answer /healthz within 30 s (see %s)", log);
}

static void create_key(void)
{
	char cmd[1400];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s/../sbxd key create --name test --state-dir %s 2>/dev/null",
		 bindir, state);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(fgets(key, sizeof(key), p));
	ck_assert_int_eq(pclose(p), 0);
	key[strcspn(key, "\n")] = '\0';
	ck_assert_int_eq(strncmp(key, "sbx_", 4), 0);
}

/* The guest agent of the VM behind sandbox id answers a ping. */
static void agent_answers(const char *id)
{
	char addr[PATH_MAX + 64];
	agent_client *c = NULL;
	uint64_t rtt = 0;
	int r;

	snprintf(addr, sizeof(addr), "unix:%s/vms/%s/agent.sock", state, id);
	r = agent_client_connect(addr, 30000, &c);
	ck_assert_msg(r == 0, "connect %s: %s", addr, err_msg());
	ck_assert_int_eq(agent_ping(c, &rtt), 0);
	agent_client_free(c);
}

static void wait_ready(const char *name)
{
	char path[128];
	struct resp r;

	snprintf(path, sizeof(path), "/api/v2/sandboxes/boxes/%s/status", name);
	for (int i = 0; i < 600; i++) {
		ck_assert_int_eq(http(&r, "GET", path, NULL), 0);
		ck_assert_int_eq(r.status, 200);
		if (!strcmp(jstr(&r, "status"), "ready")) {
			resp_free(&r);
			return;
		}
		ck_assert_msg(strcmp(jstr(&r, "status"), "failed"), "%s failed: %s", name,
			      jstr(&r, "status_message"));
		resp_free(&r);
		sleep_ms(100);
	}
	ck_abort_msg("%s did not become ready again within 60 s", name);
}

static bool path_exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

START_TEST(test_sbxd_sandboxes_survive_kill_9)
{
	char ids[2][40], path[256];
	const char *names[2] = {"one", "two"};
	struct resp r;
	int status;

	create_key();
	start_sbxd();
	for (int i = 0; i < 2; i++) {
		char body[128];

		snprintf(body, sizeof(body),
			 "{\"name\":\"%s\",\"wait_for_ready\":true,\"timeout\":90}", names[i]);
		ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes", body), 0);
		ck_assert_msg(r.status == 201, "create %s: %ld %s", names[i], r.status, r.body);
		ck_assert_str_eq(jstr(&r, "status"), "ready");
		snprintf(ids[i], sizeof(ids[i]), "%s", jstr(&r, "id"));
		resp_free(&r);
	}

	ck_assert_int_eq(kill(sbxd_pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(sbxd_pid, &status, 0), sbxd_pid);
	sbxd_pid = -1;
	start_sbxd();
	for (int i = 0; i < 2; i++) {
		wait_ready(names[i]);
		agent_answers(ids[i]);
	}

	/* kill -9 of one sandbox's QEMU: it is reported failed with the
	 * reason and its VM's files go; the other one is untouched */
	{
		char pidfile[PATH_MAX], buf[32] = "", p[128];
		FILE *f;
		long qpid;
		bool failed = false;

		snprintf(pidfile, sizeof(pidfile), "%s/libvirt/run/qemu/sbx-%s.pid", state, ids[0]);
		f = fopen(pidfile, "r");
		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
		fclose(f);
		qpid = strtol(buf, NULL, 10);
		ck_assert_int_gt(qpid, 1);
		ck_assert_int_eq(kill((pid_t)qpid, SIGKILL), 0);
		snprintf(p, sizeof(p), "/api/v2/sandboxes/boxes/%s/status", names[0]);
		for (int i = 0; i < 200 && !failed; i++) {
			ck_assert_int_eq(http(&r, "GET", p, NULL), 0);
			failed = !strcmp(jstr(&r, "status"), "failed");
			if (failed)
				ck_assert_msg(
				    strstr(jstr(&r, "status_message"), "QEMU exited unexpectedly"),
				    "status_message: %s", jstr(&r, "status_message"));
			resp_free(&r);
			if (!failed)
				sleep_ms(100);
		}
		ck_assert_msg(failed, "a sandbox whose QEMU was killed is not reported failed");
		snprintf(path, sizeof(path), "%s/vms/%s", state, ids[0]);
		for (int i = 0; i < 50 && path_exists(path); i++)
			sleep_ms(100);
		ck_assert_msg(!path_exists(path), "%s is left behind after its QEMU died", path);
		agent_answers(ids[1]);
	}

	for (int i = 0; i < 2; i++) {
		char p[128];

		snprintf(p, sizeof(p), "/api/v2/sandboxes/boxes/%s", names[i]);
		ck_assert_int_eq(http(&r, "DELETE", p, NULL), 0);
		ck_assert_int_eq(r.status, 204);
		resp_free(&r);
		snprintf(path, sizeof(path), "%s/vms/%s", state, ids[i]);
		ck_assert_msg(!path_exists(path), "%s is left behind", path);
	}
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes", NULL), 0);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "sandboxes")), 0);
	resp_free(&r);

	ck_assert_int_eq(kill(sbxd_pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(sbxd_pid, &status, 0), sbxd_pid);
	sbxd_pid = -1;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sbxd did not stop cleanly");
}
END_TEST

static void setup(void)
{
	snprintf(state, sizeof(state), "/tmp/check_sbxd.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(state));
	port = free_port();
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Whatever a failed test left: stop sbxd, then delete every sandbox with a
 * fresh sbxd so that no QEMU outlives the run. */
static void teardown(void)
{
	char cmd[256];
	struct resp r;

	if (sbxd_pid > 0) {
		kill(sbxd_pid, SIGKILL);
		waitpid(sbxd_pid, NULL, 0);
		sbxd_pid = -1;
	}
	if (key[0]) {
		start_sbxd();
		if (http(&r, "GET", "/api/v2/sandboxes/boxes", NULL) == 0 && r.json) {
			json_t *arr = json_object_get(r.json, "sandboxes"), *b;
			size_t i;

			json_array_foreach(arr, i, b)
			{
				char p[200];
				struct resp d;

				snprintf(p, sizeof(p), "/api/v2/sandboxes/boxes/%s",
					 json_string_value(json_object_get(b, "id")));
				http(&d, "DELETE", p, NULL);
				resp_free(&d);
			}
		}
		resp_free(&r);
		kill(sbxd_pid, SIGTERM);
		waitpid(sbxd_pid, NULL, 0);
		sbxd_pid = -1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
	(void)!system(cmd);
	curl_global_cleanup();
}

int main(int argc, char **argv)
{
	Suite *s = suite_create("sbxd");
	TCase *tc = tcase_create("vm");
	SRunner *sr;
	const char *img = getenv("SBX_TEST_IMAGE");
	char *slash;
	int failed;

	(void)argc;
	{
		char real[PATH_MAX];

		if (!realpath(argv[0], real))
			snprintf(real, sizeof(real), "%s", argv[0]);
		snprintf(bindir, sizeof(bindir), "%.1000s", real);
	}
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	if (img)
		snprintf(image, sizeof(image), "%s", img);
	else
		snprintf(image, sizeof(image), "%s/../images/default", bindir);

	tcase_set_tags(tc, "vm");
	tcase_set_timeout(tc, 240);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_sbxd_sandboxes_survive_kill_9);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
