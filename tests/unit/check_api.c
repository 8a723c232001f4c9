/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_api.c - sbxd's API without VMs.
 *
 *  - "routes", "validation", "config": the pure parsers of untrusted
 *    request data (api_req.c) and of settings (config.c);
 *  - "server": a real sbxd HTTP server on a loopback port, driven with
 *    libcurl, over a fake VM backend whose "boot" takes a few hundred ms;
 *  - "reconcile": the manager's start-up comparison of rows and VMs, and
 *    of snapshot rows and manifests;
 *  - "snapshots": capture, build from an image, create from a snapshot
 *    (restore_memory, run_config layers), list, delete;
 *  - "pools": prewarmed VMs handed out once, refilled, health-checked,
 *    drained, never trusted across restarts; /metrics.
 */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/wait.h>

#include "base/clock.h"
#include "sbxd/api/api_req.h"
#include "sbxd/http/http_server.h"
#include "base/log.h"
#include "sbxd/api/api.h"
#include "sbxd/config.h"
#include "sbxd/api/dataplane.h"
#include "sbxd/common/key.h"
#include "sbxd/common/metrics.h"
#include "sbxd/mgr/mgr.h"
#include "sbxd/store/store.h"

LOG_DEFINE_STATE("check_api");

/* ======================= routes ======================= */

static struct api_route route(const char *path, int expect)
{
	struct api_route r = {0};

	ck_assert_msg(api_route_parse(path, &r) == expect, "route %s", path);
	return r;
}

START_TEST(test_route_serves_both_prefixes)
{
	struct api_route r;

	r = route("/api/v2/sandboxes/boxes", 0);
	ck_assert_int_eq(r.kind, ROUTE_BOXES);
	r = route("/v2/sandboxes/boxes", 0);
	ck_assert_int_eq(r.kind, ROUTE_BOXES);
	r = route("/v2/sandboxes/boxes/", 0);
	ck_assert_int_eq(r.kind, ROUTE_BOXES);
	r = route("/api/v2/sandboxes/boxes/my-box", 0);
	ck_assert_int_eq(r.kind, ROUTE_BOX);
	ck_assert_str_eq(r.target, "my-box");
	r = route("/v2/sandboxes/boxes/my-box/status", 0);
	ck_assert_int_eq(r.kind, ROUTE_BOX_STATUS);
	ck_assert_str_eq(r.target, "my-box");
	ck_assert_int_eq(route("/api/v2/sandboxes/boxes/b/stop", 0).kind, ROUTE_BOX_STOP);
	ck_assert_int_eq(route("/api/v2/sandboxes/boxes/b/start", 0).kind, ROUTE_BOX_START);
	ck_assert_int_eq(route("/api/v2/sandboxes/boxes/b/snapshot", 0).kind, ROUTE_BOX_SNAPSHOT);
	ck_assert_int_eq(route("/api/v2/sandboxes/boxes/b/service-url", 0).kind,
			 ROUTE_BOX_SERVICE_URL);
	ck_assert_int_eq(route("/api/v2/sandboxes/boxes/b/download-url", 0).kind,
			 ROUTE_BOX_DOWNLOAD_URL);
	ck_assert_int_eq(route("/api/v2/sandboxes/snapshots", 0).kind, ROUTE_SNAPSHOTS);
	r = route("/v2/sandboxes/snapshots/abc", 0);
	ck_assert_int_eq(r.kind, ROUTE_SNAPSHOT);
	ck_assert_str_eq(r.target, "abc");
	ck_assert_int_eq(route("/healthz", 0).kind, ROUTE_HEALTHZ);
}
END_TEST

START_TEST(test_route_dataplane_needs_a_uuid_and_a_known_op)
{
	struct api_route r;
	const char *id = "0b9c2d4e-1f00-4a2b-8c3d-4e5f60718293";
	char p[200];

	snprintf(p, sizeof(p), "/dataplane/%s/execute/ws", id);
	r = route(p, 0);
	ck_assert_int_eq(r.kind, ROUTE_DATAPLANE);
	ck_assert_int_eq(r.dp_op, DP_EXECUTE_WS);
	ck_assert_str_eq(r.target, id);
	snprintf(p, sizeof(p), "/dataplane/%s/download", id);
	ck_assert_int_eq(route(p, 0).dp_op, DP_DOWNLOAD);
	snprintf(p, sizeof(p), "/dataplane/%s/upload", id);
	ck_assert_int_eq(route(p, 0).dp_op, DP_UPLOAD);
	snprintf(p, sizeof(p), "/dataplane/%s/nope", id);
	route(p, -ENOENT);
	snprintf(p, sizeof(p), "/dataplane/%s", id);
	route(p, -ENOENT);
	route("/dataplane/not-a-uuid/execute", -ENOENT);
	route("/dataplane/0B9C2D4E-1F00-4A2B-8C3D-4E5F60718293/execute", -ENOENT);
}
END_TEST

START_TEST(test_route_rejects_unknown_and_malformed_paths)
{
	char longp[400];

	route("", -ENOENT);
	route("relative", -ENOENT);
	route("/", -ENOENT);
	route("/api/v1/sandboxes/boxes", -ENOENT);
	route("/api/v2/sandboxes", -ENOENT);
	route("/api/v2/sandboxes/boxes//status", -ENOENT);
	route("/api/v2/sandboxes/boxes/b/status/extra", -ENOENT);
	route("/api/v2/sandboxes/boxes/b/unknown", -ENOENT);
	route("/api/v2/sandboxes/boxes/a\x01/status", -ENOENT);
	route("/api/v2/sandboxes/snapshots/a/b", -ENOENT);
	memset(longp, 'a', sizeof(longp));
	memcpy(longp, "/api/v2/sandboxes/boxes/", 24);
	longp[sizeof(longp) - 1] = '\0';
	route(longp, -ENOENT);
}
END_TEST

START_TEST(test_route_methods_and_allow_lists)
{
	struct api_route r = route("/api/v2/sandboxes/boxes/x", 0);
	const char *allow = NULL;

	ck_assert(api_route_allows(&r, HTTP_GET, &allow));
	ck_assert(api_route_allows(&r, HTTP_HEAD, NULL));
	ck_assert(api_route_allows(&r, HTTP_PATCH, NULL));
	ck_assert(api_route_allows(&r, HTTP_DELETE, NULL));
	ck_assert(!api_route_allows(&r, HTTP_POST, &allow));
	ck_assert_str_eq(allow, "GET, HEAD, PATCH, DELETE");
	r = route("/api/v2/sandboxes/boxes", 0);
	ck_assert(api_route_allows(&r, HTTP_POST, NULL));
	ck_assert(!api_route_allows(&r, HTTP_DELETE, &allow));
	ck_assert_str_eq(allow, "GET, HEAD, POST");
	r = route("/api/v2/sandboxes/boxes/x/stop", 0);
	ck_assert(!api_route_allows(&r, HTTP_GET, &allow));
	ck_assert_str_eq(allow, "POST");
	ck_assert(!api_route_allows(&r, HTTP_METHOD_INVALID, NULL));
	ck_assert(!api_route_needs_key(&(struct api_route){.kind = ROUTE_HEALTHZ}));
	ck_assert(api_route_needs_key(&r));
}
END_TEST

/* ======================= validation ======================= */

START_TEST(test_names_follow_the_documented_rule)
{
	static const char *const good[] = {"a", "0", "my-box", "a1-b2-c3", "x-y"};
	static const char *const bad[] = {"", "-a", "a-", "A", "my_box", "a.b", "a b", "é", "a/b"};
	char n63[64], n64[65];
	struct api_error e;

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		ck_assert_msg(api_name_is_valid(good[i]), "%s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(!api_name_is_valid(bad[i]), "%s", bad[i]);
	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'a', 64);
	n64[64] = '\0';
	ck_assert(api_name_is_valid(n63));
	ck_assert(!api_name_is_valid(n64));
	ck_assert_int_eq(api_name_check("Bad'Name\n", &e), -EINVAL);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.type, "ValidationError");
	ck_assert_ptr_nonnull(strstr(e.message, "'Bad?Name?'"));
}
END_TEST

START_TEST(test_api_key_header_is_trimmed_and_bounded)
{
	char buf[SBXD_KEY_HEADER_MAX + 1], big[SBXD_KEY_HEADER_MAX + 2];

	ck_assert_int_eq(api_key_header_parse("  sbx_abc\t", 10, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "sbx_abc");
	ck_assert_int_eq(api_key_header_parse("", 0, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(api_key_header_parse("   ", 3, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(api_key_header_parse("a b", 3, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(api_key_header_parse("a\x01", 2, buf, sizeof(buf)), -EINVAL);
	memset(big, 'k', sizeof(big));
	ck_assert_int_eq(api_key_header_parse(big, sizeof(big), buf, sizeof(buf)), -EINVAL);
}
END_TEST

START_TEST(test_host_header_and_dataplane_url)
{
	char url[256];
	const char *id = "0b9c2d4e-1f00-4a2b-8c3d-4e5f60718293";

	ck_assert(api_host_is_valid("localhost"));
	ck_assert(api_host_is_valid("127.0.0.1:8080"));
	ck_assert(api_host_is_valid("[::1]:8080"));
	ck_assert(api_host_is_valid("sbx.example.com"));
	ck_assert(!api_host_is_valid(""));
	ck_assert(!api_host_is_valid("a b"));
	ck_assert(!api_host_is_valid("evil.com/x"));
	ck_assert(!api_host_is_valid("h:99999"));
	ck_assert(!api_host_is_valid("h:"));
	ck_assert(!api_host_is_valid("h:8x"));
	ck_assert(!api_host_is_valid("[zz]:1"));
	ck_assert_int_eq(api_dataplane_url(NULL, "127.0.0.1:8080", id, url, sizeof(url)), 0);
	ck_assert_str_eq(url,
			 "http://127.0.0.1:8080/dataplane/0b9c2d4e-1f00-4a2b-8c3d-4e5f60718293");
	ck_assert_int_eq(
	    api_dataplane_url("https://sbx.example.com/", "ignored", id, url, sizeof(url)), 0);
	ck_assert_str_eq(url, "https://sbx.example.com/dataplane/"
			      "0b9c2d4e-1f00-4a2b-8c3d-4e5f60718293");
	ck_assert_int_eq(api_dataplane_url("", "bad host", id, url, sizeof(url)), -EINVAL);
	ck_assert_int_eq(api_dataplane_url(NULL, "h", id, url, 20), -ENAMETOOLONG);
}
END_TEST

static int create(const char *json, struct api_create_req *q, struct api_error *e)
{
	memset(e, 0, sizeof(*e));
	return api_parse_create(json, strlen(json), q, e);
}

START_TEST(test_create_defaults_and_full_body)
{
	struct api_create_req q;
	struct api_error e;

	ck_assert_int_eq(api_parse_create(NULL, 0, &q, &e), 0);
	ck_assert(q.wait_for_ready);
	ck_assert_int_eq(q.timeout_s, 30);
	ck_assert_ptr_null(q.name);
	ck_assert_int_eq(q.vcpus, 0);
	ck_assert_int_eq(q.idle_ttl_seconds, -1);
	api_create_req_release(&q);

	ck_assert_int_eq(
	    create("{\"wait_for_ready\":false,\"timeout\":45,\"name\":\"box-1\","
		   "\"persistent\":false,\"idle_ttl_seconds\":600,"
		   "\"delete_after_stop_seconds\":0,\"vcpus\":2,\"mem_bytes\":1073741824,"
		   "\"fs_capacity_bytes\":4294967296.0,\"labels\":{\"team\":\"x\"},"
		   "\"run_config\":{\"user\":\"root\",\"work_dir\":\"/tmp\","
		   "\"env_vars\":{\"A\":\"1\"}},\"proxy_config\":{\"rules\":[]},"
		   "\"mount_config\":{\"mounts\":[]},\"access_delegation\":{\"mode\":"
		   "\"INHERIT\"},\"unknown_key\":[1,2,3],\"snapshot_id\":null}",
		   &q, &e),
	    0);
	ck_assert(!q.wait_for_ready);
	ck_assert_int_eq(q.timeout_s, 45);
	ck_assert_str_eq(q.name, "box-1");
	ck_assert_int_eq(q.persistent, 0);
	ck_assert_int_eq(q.idle_ttl_seconds, 600);
	ck_assert_int_eq(q.delete_after_stop_seconds, 0);
	ck_assert_int_eq(q.vcpus, 2);
	ck_assert_int_eq(q.mem_bytes, 1073741824LL);
	ck_assert_int_eq(q.fs_capacity_bytes, 4294967296LL);
	ck_assert_str_eq(q.labels, "{\"team\":\"x\"}");
	ck_assert_ptr_nonnull(strstr(q.run_config, "\"work_dir\":\"/tmp\""));
	ck_assert_str_eq(q.proxy_config, "{\"rules\":[]}");
	ck_assert_str_eq(q.access_delegation, "{\"mode\":\"INHERIT\"}");
	ck_assert_ptr_null(q.snapshot_id);
	api_create_req_release(&q);
}
END_TEST

START_TEST(test_create_rejects_wrong_types_with_the_field_name)
{
	static const struct {
		const char *body, *field;
		int status;
	} cases[] = {
	    {"{\"wait_for_ready\":\"yes\"}", "wait_for_ready", 422},
	    {"{\"timeout\":0}", "timeout", 422},
	    {"{\"timeout\":1.5}", "timeout", 422},
	    {"{\"timeout\":100000}", "timeout", 422},
	    {"{\"name\":5}", "name", 422},
	    {"{\"name\":\"UPPER\"}", "UPPER", 422},
	    {"{\"vcpus\":0}", "vcpus", 422},
	    {"{\"vcpus\":\"2\"}", "vcpus", 422},
	    {"{\"mem_bytes\":-1}", "mem_bytes", 422},
	    {"{\"idle_ttl_seconds\":\"61\"}", "idle_ttl_seconds", 422},
	    {"{\"idle_ttl_seconds\":-60}", "idle_ttl_seconds", 422},
	    {"{\"labels\":[]}", "labels", 422},
	    {"{\"labels\":{\"a\":1}}", "labels", 422},
	    {"{\"labels\":{\"\":\"x\"}}", "labels", 422},
	    {"{\"run_config\":{\"work_dir\":\"relative\"}}", "run_config.work_dir", 422},
	    {"{\"run_config\":{\"env_vars\":{\"A\":1}}}", "run_config.env_vars", 422},
	    {"{\"run_config\":[]}", "run_config", 422},
	    {"{\"proxy_config\":\"x\"}", "proxy_config", 422},
	    {"{\"snapshot_id\":\"a\",\"snapshot_name\":\"b\"}", "snapshot_name", 422},
	    {"[1,2]", "JSON object", 422},
	    {"\"str\"", "JSON object", 422},
	    {"{\"a\":1,\"a\":2}", "not valid JSON", 400},
	    {"{\"name\":\"x\"", "not valid JSON", 400},
	    {"{\"name\":\"a\\u0000b\"}", "not valid JSON", 400},
	};
	struct api_create_req q;
	struct api_error e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		ck_assert_msg(create(cases[i].body, &q, &e) == -EINVAL, "%s", cases[i].body);
		ck_assert_msg(e.status == cases[i].status, "%s: %d", cases[i].body, e.status);
		ck_assert_msg(strstr(e.message, cases[i].field), "%s: %s", cases[i].body,
			      e.message);
	}
}
END_TEST

START_TEST(test_create_bounds_labels_and_body_size)
{
	char *big = malloc(API_MAX_BODY + 2), labels[64 * 20 + 64];
	struct api_create_req q;
	struct api_error e;
	size_t n = 0;

	memset(big, ' ', API_MAX_BODY + 1);
	big[API_MAX_BODY + 1] = '\0';
	ck_assert_int_eq(api_parse_create(big, API_MAX_BODY + 1, &q, &e), -EINVAL);
	ck_assert_int_eq(e.status, 413);
	free(big);
	n += (size_t)snprintf(labels + n, sizeof(labels) - n, "{\"labels\":{");
	for (int i = 0; i <= API_MAX_LABELS; i++)
		n += (size_t)snprintf(labels + n, sizeof(labels) - n, "%s\"k%d\":\"v\"",
				      i ? "," : "", i);
	snprintf(labels + n, sizeof(labels) - n, "}}");
	ck_assert_int_eq(create(labels, &q, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.message, "more than"));
}
END_TEST

static const struct api_limits test_limits = {
    .default_vcpus = 1,
    .max_vcpus = 4,
    .default_mem_bytes = 512ull << 20,
    .max_mem_bytes = 4096ull << 20,
    .default_disk_bytes = 2ull << 30,
    .min_disk_bytes = 2ull << 30,
    .max_disk_bytes = 16ull << 30,
    .max_sandboxes = 3,
    .max_total_mem_bytes = 1024ull << 20,
};

START_TEST(test_resources_defaults_rounding_and_bounds)
{
	struct api_create_req q = {.vcpus = 0};
	struct api_resources res;
	struct api_error e;

	ck_assert_int_eq(api_resolve_resources(&test_limits, &q, &res, &e), 0);
	ck_assert_int_eq(res.vcpus, 1);
	ck_assert_int_eq(res.mem_bytes, 512ull << 20);
	ck_assert_int_eq(res.fs_capacity_bytes, 2ull << 30);
	q.mem_bytes = 300000000;
	ck_assert_int_eq(api_resolve_resources(&test_limits, &q, &res, &e), 0);
	ck_assert_int_eq(res.mem_bytes, 287ull << 20);
	q.vcpus = 5;
	ck_assert_int_eq(api_resolve_resources(&test_limits, &q, &res, &e), -EINVAL);
	ck_assert_int_eq(e.status, 422);
	ck_assert_ptr_nonnull(strstr(e.message, "vcpus"));
	q.vcpus = 4;
	q.mem_bytes = 8ll << 30;
	ck_assert_int_eq(api_resolve_resources(&test_limits, &q, &res, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.message, "mem_bytes"));
	q.mem_bytes = 1 << 20;
	ck_assert_int_eq(api_resolve_resources(&test_limits, &q, &res, &e), -EINVAL);
	q.mem_bytes = 0;
	q.fs_capacity_bytes = 1 << 30;
	ck_assert_int_eq(api_resolve_resources(&test_limits, &q, &res, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.message, "smaller than the image"));
	q.fs_capacity_bytes = 32ll << 30;
	ck_assert_int_eq(api_resolve_resources(&test_limits, &q, &res, &e), -EINVAL);
}
END_TEST

START_TEST(test_quota_messages_name_what_ran_out)
{
	struct api_resources res = {.vcpus = 1, .mem_bytes = 512ull << 20};
	struct api_error e;

	ck_assert_int_eq(api_check_quota(&test_limits, 0, 0, &res, &e), 0);
	ck_assert_int_eq(api_check_quota(&test_limits, 3, 0, &res, &e), -EINVAL);
	ck_assert_int_eq(e.status, 429);
	/* the langsmith client picks quotaType from these words */
	ck_assert_ptr_nonnull(strstr(e.message, "sandbox count limit"));
	ck_assert_int_eq(api_check_quota(&test_limits, 1, 768ull << 20, &res, &e), -EINVAL);
	ck_assert_int_eq(e.status, 429);
	ck_assert_ptr_nonnull(strstr(e.message, "memory"));
}
END_TEST

START_TEST(test_key_quota_messages_name_the_key_and_what_ran_out)
{
	struct api_resources res = {.vcpus = 1, .mem_bytes = 512ull << 20};
	struct api_error e;

	/* 0: no quota of its own */
	ck_assert_int_eq(api_check_key_quota("ci", 0, 0, 1000, 1ull << 40, &res, &e), 0);
	ck_assert_int_eq(api_check_key_quota("ci", 2, 0, 1, 0, &res, &e), 0);
	ck_assert_int_eq(api_check_key_quota("ci", 2, 0, 2, 0, &res, &e), -EINVAL);
	ck_assert_int_eq(e.status, 429);
	ck_assert_str_eq(e.type, "QuotaExceeded");
	ck_assert_ptr_nonnull(strstr(e.message, "sandbox count limit"));
	ck_assert_ptr_nonnull(strstr(e.message, "'ci' may have 2"));
	/* exactly at the memory quota is allowed; one MiB over is not */
	ck_assert_int_eq(api_check_key_quota("ci", 0, 1024ull << 20, 1, 512ull << 20, &res, &e), 0);
	ck_assert_int_eq(api_check_key_quota("ci", 0, 1024ull << 20, 1, 513ull << 20, &res, &e),
			 -EINVAL);
	ck_assert_int_eq(e.status, 429);
	ck_assert_ptr_nonnull(strstr(e.message, "memory"));
	ck_assert_ptr_nonnull(strstr(e.message, "1024 MiB"));
}
END_TEST

START_TEST(test_lifetime_default_cap_and_bounds)
{
	struct api_create_req q;
	struct api_limits l = test_limits;
	struct api_error e;
	int64_t v = -7;

	ck_assert_int_eq(create("{}", &q, &e), 0);
	ck_assert_int_eq(q.max_lifetime_seconds, -1);
	ck_assert_int_eq(api_resolve_lifetime(&l, &q, &v, &e), 0);
	ck_assert_int_eq(v, 0); /* no cap, none asked: none */
	api_create_req_release(&q);
	ck_assert_int_eq(create("{\"max_lifetime_seconds\":30}", &q, &e), 0);
	ck_assert_int_eq(q.max_lifetime_seconds, 30);
	ck_assert_int_eq(api_resolve_lifetime(&l, &q, &v, &e), 0);
	ck_assert_int_eq(v, 30);
	l.max_lifetime_seconds = 60;
	ck_assert_int_eq(api_resolve_lifetime(&l, &q, &v, &e), 0);
	ck_assert_int_eq(v, 30);
	q.max_lifetime_seconds = -1; /* left out: the cap */
	ck_assert_int_eq(api_resolve_lifetime(&l, &q, &v, &e), 0);
	ck_assert_int_eq(v, 60);
	q.max_lifetime_seconds = 61;
	ck_assert_int_eq(api_resolve_lifetime(&l, &q, &v, &e), -EINVAL);
	ck_assert_int_eq(e.status, 422);
	ck_assert_ptr_nonnull(strstr(e.message, "at most 60 seconds"));
	q.max_lifetime_seconds = 0; /* "never" is over any cap */
	ck_assert_int_eq(api_resolve_lifetime(&l, &q, &v, &e), -EINVAL);
	api_create_req_release(&q);
	ck_assert_int_eq(create("{\"max_lifetime_seconds\":-5}", &q, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.message, "max_lifetime_seconds"));
	ck_assert_int_eq(create("{\"max_lifetime_seconds\":\"60\"}", &q, &e), -EINVAL);
}
END_TEST

START_TEST(test_update_parse_and_run_config_merge)
{
	struct api_update_req u;
	struct api_error e;
	char *m = NULL;
	const char *body = "{\"name\":\"new-name\",\"idle_ttl_seconds\":0,"
			   "\"run_config\":{\"env_vars\":{\"B\":\"2\"},\"user\":\"app\"}}";

	ck_assert_int_eq(api_parse_update(body, strlen(body), &u, &e), 0);
	ck_assert_str_eq(u.name, "new-name");
	ck_assert_int_eq(u.idle_ttl_seconds, 0);
	ck_assert_int_eq(u.delete_after_stop_seconds, -1);
	ck_assert_int_eq(api_merge_run_config("{\"user\":\"root\",\"work_dir\":\"/w\","
					      "\"env_vars\":{\"A\":\"1\",\"B\":\"1\"}}",
					      u.run_config, &m),
			 0);
	ck_assert_str_eq(m, "{\"user\":\"app\",\"work_dir\":\"/w\",\"env_vars\":{\"A\":\"1\","
			    "\"B\":\"2\"}}");
	free(m);
	ck_assert_int_eq(api_merge_run_config(NULL, u.run_config, &m), 0);
	ck_assert_str_eq(m, "{\"env_vars\":{\"B\":\"2\"},\"user\":\"app\"}");
	free(m);
	api_update_req_release(&u);
	ck_assert_int_eq(api_parse_update("{\"name\":\"-x\"}", 13, &u, &e), -EINVAL);
	ck_assert_int_eq(e.status, 422);
	ck_assert_int_eq(api_parse_update("{}", 2, &u, &e), 0);
	ck_assert_ptr_null(u.name);
	api_update_req_release(&u);
}
END_TEST

/* ======================= config ======================= */

START_TEST(test_config_file_keys_comments_quotes)
{
	struct sbxd_config c;
	const char *text = "# sbxd\n"
			   "listen = 0.0.0.0:9000\n"
			   "\n"
			   "  state_dir = \"/srv/sbx state\"  \r\n"
			   "max-vcpus=8\n"
			   "MAX_MEM_MIB = 2048 \n"
			   "accel = tcg";

	sbxd_config_defaults(&c);
	ck_assert_int_eq(sbxd_config_parse_text(&c, text, strlen(text), "t.conf"), 0);
	ck_assert_str_eq(c.listen_host, "0.0.0.0");
	ck_assert_int_eq(c.listen_port, 9000);
	ck_assert_str_eq(c.state_dir, "/srv/sbx state");
	ck_assert_int_eq(c.max_vcpus, 8);
	ck_assert_int_eq(c.max_mem_mib, 2048);
	ck_assert_str_eq(c.accel, "tcg");
	ck_assert_int_eq(sbxd_config_check(&c), 0);
}
END_TEST

START_TEST(test_config_errors_name_file_line_and_key)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"bogus = 1", "t.conf:1: unknown setting 'bogus'"},
	    {"\n\nmax-vcpus = lots", "t.conf:3: max-vcpus must be a whole number"},
	    {"max-vcpus = -1", "whole number"},
	    {"max-vcpus = 99999999999999999999", "whole number"},
	    {"listen = nowhere", "not an address to listen on"},
	    {"listen = [::1]", "not an address"},
	    {"accel = fast", "not a valid accel"},
	    {"just words", "expected 'name = value'"},
	    {"state-dir = \"/x", "no closing"},
	};
	struct sbxd_config c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		sbxd_config_defaults(&c);
		ck_assert_msg(
		    sbxd_config_parse_text(&c, cases[i].text, strlen(cases[i].text), "t.conf") < 0,
		    "%s", cases[i].text);
		ck_assert_msg(strstr(err_msg(), cases[i].want), "%s -> %s", cases[i].text,
			      err_msg());
	}
	sbxd_config_defaults(&c);
	c.default_vcpus = 8;
	c.max_vcpus = 2;
	ck_assert_int_eq(sbxd_config_check(&c), -EINVAL);
	sbxd_config_defaults(&c);
	snprintf(c.state_dir, sizeof(c.state_dir), "relative");
	ck_assert_int_eq(sbxd_config_check(&c), -EINVAL);
}
END_TEST

START_TEST(test_config_env_overrides_file_and_flag_overrides_env)
{
	struct sbxd_config c;
	char *env[] = {"HOME=/root", "SBX_MAX_VCPUS=3", "SBX_LISTEN=127.0.0.1:7000",
		       "SBX_STATE_DIRX=/ignored", NULL};
	const char *file = "max-vcpus = 6\nmax-sandboxes = 9\n";

	sbxd_config_defaults(&c);
	ck_assert_int_eq(sbxd_config_parse_text(&c, file, strlen(file), "f"), 0);
	ck_assert_int_eq(sbxd_config_apply_env(&c, env), 0);
	ck_assert_int_eq(sbxd_config_set(&c, "listen", "[::1]:7001", "--listen"), 0);
	ck_assert_int_eq(c.max_vcpus, 3);
	ck_assert_int_eq(c.max_sandboxes, 9);
	ck_assert_str_eq(c.listen_host, "::1");
	ck_assert_int_eq(c.listen_port, 7001);
	ck_assert_str_eq(c.state_dir, SBXD_DEFAULT_STATE_DIR);
	env[1] = "SBX_MAX_VCPUS=zero";
	ck_assert_int_eq(sbxd_config_apply_env(&c, env), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err_msg(), "SBX_MAX_VCPUS"));
	ck_assert(sbxd_config_has("max_mem_mib"));
	ck_assert(!sbxd_config_has("name"));
}
END_TEST

START_TEST(test_config_dump_lists_every_setting)
{
	struct sbxd_config c;
	char buf[4096];

	sbxd_config_defaults(&c);
	sbxd_config_dump(&c, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "listen = 127.0.0.1:8080\n"));
	ck_assert_ptr_nonnull(strstr(buf, "state-dir = /var/lib/sbx\n"));
	ck_assert_ptr_nonnull(strstr(buf, "max-vcpus = 4\n"));
}
END_TEST

/* ======================= fake VM backend ======================= */

#define FAKE_MAX 64

static struct {
	pthread_mutex_t lock;
	char *vms[FAKE_MAX]; /* names of "running" VMs */
	int boot_ms;
	int capture_ms;
	unsigned destroyed;
	unsigned starts; /* start() calls */
	char last_start_snapshot[80];
	bool last_start_restore;
	char last_start_hostname[80];
	unsigned fixups;
	char last_fixup_vm[80], last_fixup_hostname[80];
	bool fixup_fails;
	char dead[80];	       /* a VM whose agent stopped answering */
	char *snaps[FAKE_MAX]; /* snapshot ids with a "manifest" */
	char last_capture_vm[80];
	bool last_capture_memory;
	char last_capture_parent[80];
	unsigned snap_deletes;
	unsigned zygotes;
	unsigned captures_begun, captures_done; /* snap_capture() entered, returned */
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER, .boot_ms = 300};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void strv_add(char **v, const char *name)
{
	pthread_mutex_lock(&fake.lock);
	for (int i = 0; i < FAKE_MAX; i++) {
		if (!v[i]) {
			v[i] = strdup(name);
			break;
		}
	}
	pthread_mutex_unlock(&fake.lock);
}

static bool strv_has_locked(char **v, const char *name)
{
	for (int i = 0; i < FAKE_MAX; i++)
		if (v[i] && !strcmp(v[i], name))
			return true;
	return false;
}

static bool strv_del(char **v, const char *name)
{
	bool found = false;

	pthread_mutex_lock(&fake.lock);
	for (int i = 0; i < FAKE_MAX; i++) {
		if (v[i] && !strcmp(v[i], name)) {
			free(v[i]);
			v[i] = NULL;
			found = true;
		}
	}
	pthread_mutex_unlock(&fake.lock);
	return found;
}

static void fake_add(const char *name)
{
	strv_add(fake.vms, name);
}

static bool fake_has(const char *name)
{
	bool found;

	pthread_mutex_lock(&fake.lock);
	found = strv_has_locked(fake.vms, name);
	pthread_mutex_unlock(&fake.lock);
	return found;
}

static unsigned fake_count(void)
{
	unsigned n = 0;

	pthread_mutex_lock(&fake.lock);
	for (int i = 0; i < FAKE_MAX; i++)
		n += fake.vms[i] != NULL;
	pthread_mutex_unlock(&fake.lock);
	return n;
}

/* How many captures the fake has begun and finished. */
static void fake_captures(unsigned *begun, unsigned *done)
{
	pthread_mutex_lock(&fake.lock);
	*begun = fake.captures_begun;
	*done = fake.captures_done;
	pthread_mutex_unlock(&fake.lock);
}

static void fake_reset(void)
{
	pthread_mutex_lock(&fake.lock);
	for (int i = 0; i < FAKE_MAX; i++) {
		free(fake.vms[i]);
		free(fake.snaps[i]);
		fake.vms[i] = fake.snaps[i] = NULL;
	}
	fake.destroyed = fake.starts = fake.fixups = fake.snap_deletes = fake.zygotes = 0;
	fake.captures_begun = fake.captures_done = 0;
	fake.fixup_fails = false;
	fake.dead[0] = fake.last_start_snapshot[0] = fake.last_fixup_vm[0] = '\0';
	fake.boot_ms = 300;
	fake.capture_ms = 100;
	pthread_mutex_unlock(&fake.lock);
}

static int fake_start(void *ctx, const struct sbxd_vm_spec *s, const char **how)
{
	(void)ctx;
	if (!strcmp(s->hostname, "boom")) {
		return err_set(-EIO, "QEMU exited right after starting (fake)");
	}
	pthread_mutex_lock(&fake.lock);
	fake.starts++;
	snprintf(fake.last_start_snapshot, sizeof(fake.last_start_snapshot), "%s",
		 s->snapshot_id ? s->snapshot_id : "");
	fake.last_start_restore = s->restore_memory;
	snprintf(fake.last_start_hostname, sizeof(fake.last_start_hostname), "%s", s->hostname);
	if (s->snapshot_id && !strv_has_locked(fake.snaps, s->snapshot_id)) {
		pthread_mutex_unlock(&fake.lock);
		return err_set(-ENOENT, "snapshot %s: no manifest (fake)", s->snapshot_id);
	}
	pthread_mutex_unlock(&fake.lock);
	fake_add(s->name);
	*how = s->snapshot_id ? (s->restore_memory ? "fork" : "zygote-fork") : "zygote-fork";
	return 0;
}

static int fake_wait(void *ctx, const char *name, int timeout_ms, bool (*cancelled)(void *),
		     void *cud)
{
	(void)ctx;
	pthread_mutex_lock(&fake.lock);
	if (fake.dead[0] && !strcmp(fake.dead, name)) {
		pthread_mutex_unlock(&fake.lock);
		return err_set(-ETIMEDOUT, "the guest agent did not answer (fake)");
	}
	pthread_mutex_unlock(&fake.lock);
	for (int t = 0; t < fake.boot_ms; t += 10) {
		if (cancelled && cancelled(cud))
			return -ECANCELED;
		if (t >= timeout_ms) {
			return err_set(-ETIMEDOUT, "the guest agent did not answer within %d s",
				       timeout_ms / 1000);
		}
		sleep_ms(10);
	}
	return fake_has(name) ? 0 : -ECHILD;
}

static int fake_destroy(void *ctx, const char *name)
{
	(void)ctx;
	if (strv_del(fake.vms, name)) {
		pthread_mutex_lock(&fake.lock);
		fake.destroyed++;
		pthread_mutex_unlock(&fake.lock);
	}
	return 0;
}

static int fake_list(void *ctx, char ***ret)
{
	char **v = calloc(FAKE_MAX + 1, sizeof(char *));
	int n = 0;

	(void)ctx;
	pthread_mutex_lock(&fake.lock);
	for (int i = 0; i < FAKE_MAX; i++)
		if (fake.vms[i])
			v[n++] = strdup(fake.vms[i]);
	pthread_mutex_unlock(&fake.lock);
	*ret = v;
	return 0;
}

static void fake_free_list(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static int fake_is_running(void *ctx, const char *name)
{
	(void)ctx;
	return fake_has(name) ? 1 : 0;
}

static int fake_addr(void *ctx, const char *name, char *buf, size_t len)
{
	(void)ctx;
	snprintf(buf, len, "unix:/fake/%s/agent.sock", name);
	return 0;
}

static int fake_fixup(void *ctx, const char *vm, const char *hostname)
{
	(void)ctx;
	pthread_mutex_lock(&fake.lock);
	fake.fixups++;
	snprintf(fake.last_fixup_vm, sizeof(fake.last_fixup_vm), "%s", vm);
	snprintf(fake.last_fixup_hostname, sizeof(fake.last_fixup_hostname), "%s", hostname);
	if (fake.fixup_fails) {
		pthread_mutex_unlock(&fake.lock);
		return err_set(-EPERM, "agent: fixup: cannot set the hostname (fake)");
	}
	pthread_mutex_unlock(&fake.lock);
	return fake_has(vm) ? 0 : -ENOENT;
}

static int fake_snap_capture(void *ctx, const char *vm, const struct sbxd_snap_capture *c,
			     struct sbxd_snap_info *ret)
{
	(void)ctx;
	pthread_mutex_lock(&fake.lock);
	fake.captures_begun++;
	pthread_mutex_unlock(&fake.lock);
	sleep_ms(fake.capture_ms);
	pthread_mutex_lock(&fake.lock);
	fake.captures_done++;
	snprintf(fake.last_capture_vm, sizeof(fake.last_capture_vm), "%s", vm);
	fake.last_capture_memory = c->include_memory;
	snprintf(fake.last_capture_parent, sizeof(fake.last_capture_parent), "%s",
		 c->parent ? c->parent : "");
	pthread_mutex_unlock(&fake.lock);
	if (!strncmp(c->name, "bad", 3)) {
		return err_set(-EBADMSG, "part ram: SHA-256 mismatch (fake)");
	}
	if (!fake_has(vm)) {
		return err_set(-ENOENT, "no VM %s (fake)", vm);
	}
	strv_add(fake.snaps, c->id);
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->kind, sizeof(ret->kind), "%s", c->include_memory ? "memory" : "fs");
	ret->vcpus = 0; /* unknown: the row keeps the sandbox's */
	ret->memory_bytes = c->include_memory ? 4242 : 0;
	snprintf(ret->image_digest, sizeof(ret->image_digest), "sha256:fake");
	return 0;
}

static int fake_snap_from_image(void *ctx, const char *id, const char *name, const char *image,
				uint64_t disk, struct sbxd_snap_info *ret)
{
	(void)ctx;
	(void)name;
	(void)disk;
	strv_add(fake.snaps, id);
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->kind, sizeof(ret->kind), "fs");
	snprintf(ret->image_dir, sizeof(ret->image_dir), "%s", image);
	snprintf(ret->image_digest, sizeof(ret->image_digest), "sha256:image");
	return 0;
}

static bool fake_has_snap(const char *id)
{
	bool found;

	pthread_mutex_lock(&fake.lock);
	found = strv_has_locked(fake.snaps, id);
	pthread_mutex_unlock(&fake.lock);
	return found;
}

static int fake_snap_info(void *ctx, const char *id, struct sbxd_snap_info *ret)
{
	(void)ctx;
	if (!fake_has_snap(id)) {
		return err_set(-ENOENT, "no manifest (fake)");
	}
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->kind, sizeof(ret->kind), "fs");
	return 0;
}

static int fake_snap_delete(void *ctx, const char *id)
{
	(void)ctx;
	strv_del(fake.snaps, id);
	pthread_mutex_lock(&fake.lock);
	fake.snap_deletes++;
	pthread_mutex_unlock(&fake.lock);
	return 0;
}

static int fake_snap_gc(void *ctx, bool dead_building)
{
	(void)ctx;
	(void)dead_building;
	return 0;
}

static int fake_zygote(void *ctx, const char *image, unsigned vcpus, unsigned mem, uint64_t disk)
{
	(void)ctx;
	(void)image;
	(void)vcpus;
	(void)mem;
	(void)disk;
	sleep_ms(200);
	pthread_mutex_lock(&fake.lock);
	fake.zygotes++;
	pthread_mutex_unlock(&fake.lock);
	return 0;
}

static const struct sbxd_vm_ops fake_ops = {
    .start = fake_start,
    .wait_agent = fake_wait,
    .destroy = fake_destroy,
    .list = fake_list,
    .free_list = fake_free_list,
    .is_running = fake_is_running,
    .agent_address = fake_addr,
    .fixup = fake_fixup,
    .snap_capture = fake_snap_capture,
    .snap_from_image = fake_snap_from_image,
    .snap_info = fake_snap_info,
    .snap_delete = fake_snap_delete,
    .snap_gc = fake_snap_gc,
    .zygote_ensure = fake_zygote,
};

/* ======================= the server under test ======================= */

static struct {
	char dir[128];
	char image[200]; /* DIR/images/default: a fake image */
	store *st;
	sbxd_api *api;
	http_server *srv;
	sbxd_mgr *mgr;
	pthread_t thread;
	int port;
	char alice[SBXD_KEY_LEN + 1], bob[SBXD_KEY_LEN + 1], admin[SBXD_KEY_LEN + 1];
	char revoked[SBXD_KEY_LEN + 1];
} t;

static void make_key(const char *name, bool admin, char *out)
{
	char hash[SBXD_KEY_HASH_LEN + 1];

	ck_assert_int_eq(sbxd_key_generate(out, SBXD_KEY_LEN + 1), 0);
	sbxd_key_hash(out, strlen(out), hash);
	ck_assert_int_eq(store_key_create(t.st, name, hash, admin, NULL), 0);
}

static void *serve_thread(void *arg)
{
	(void)arg;
	http_server_run(t.srv, NULL);
	return NULL;
}

static void server_start(unsigned max_sandboxes)
{
	char db[200];
	char cmd[600];
	struct sbxd_api_config ac = {.image_dir = t.image, .version = "test"};
	struct http_server_config hc = {
	    .host = "127.0.0.1", .app = &sbxd_api_http_app, .log_fd = -1};
	struct sbxd_mgr_config mc = {.vm = &fake_ops,
				     .boot_timeout_s = 30,
				     .notify = sbxd_api_mgr_notify,
				     .pool_check_s = 1,
				     .ttl_check_ms = 100,
				     .release_box = sbxd_api_release_box,
				     .box_busy = sbxd_api_box_busy};

	snprintf(t.dir, sizeof(t.dir), "/tmp/check_api.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t.dir));
	snprintf(t.image, sizeof(t.image), "%s/images/default", t.dir);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p '%s' && cd '%s' && touch vmlinuz initrd.img && truncate -s 1M "
		 "rootfs.ext4",
		 t.image, t.image);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(db, sizeof(db), "%s/sbxd.db", t.dir);
	ck_assert_int_eq(store_open(db, &t.st), 0);
	make_key("alice", false, t.alice);
	make_key("bob", false, t.bob);
	make_key("root", true, t.admin);
	make_key("old", false, t.revoked);
	ck_assert_int_eq(store_key_revoke(t.st, "old"), 0);

	ac.st = t.st;
	ac.limits = test_limits;
	ac.limits.max_sandboxes = max_sandboxes;
	ac.limits.max_total_mem_bytes = 0;
	ck_assert_int_eq(sbxd_api_new(&ac, &t.api), 0);
	hc.app_ud = t.api;
	ck_assert_int_eq(http_server_new(&hc, &t.srv), 0);
	t.port = http_server_port(t.srv);
	ck_assert_int_gt(t.port, 0);
	mc.st = t.st;
	mc.notify_ud = t.api;
	ck_assert_int_eq(sbxd_mgr_new(&mc, &t.mgr), 0);
	sbxd_api_attach(t.api, t.srv, t.mgr);
	ck_assert_int_eq(sbxd_mgr_reconcile(t.mgr), 0);
	ck_assert_int_eq(sbxd_mgr_reconcile_snapshots(t.mgr), 0);
	ck_assert_int_eq(pthread_create(&t.thread, NULL, serve_thread, NULL), 0);
}

static void setup_server(void)
{
	fake_reset();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	server_start(8);
}

static void teardown_server(void)
{
	char cmd[200];

	http_server_stop(t.srv);
	pthread_join(t.thread, NULL);
	t.mgr = sbxd_mgr_free(t.mgr);
	t.srv = http_server_free(t.srv);
	t.api = sbxd_api_free(t.api);
	t.st = store_close(t.st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t.dir);
	(void)!system(cmd);
	curl_global_cleanup();
}

struct resp {
	long status;
	char *body;
	size_t len;
	char headers[2048];
	size_t hlen;
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

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct resp *r = ud;
	size_t l = size * n;

	if (r->hlen + l < sizeof(r->headers)) {
		memcpy(r->headers + r->hlen, p, l);
		r->hlen += l;
		r->headers[r->hlen] = '\0';
	}
	return l;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

/* method path [key-header-line] [body]: fills r (json parsed when it is). */
static long http(struct resp *r, const char *method, const char *path, const char *keyhdr,
		 const char *body)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", t.port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (keyhdr)
		h = curl_slist_append(h, keyhdr);
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	rc = curl_easy_perform(c);
	ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (r->body)
		r->json = json_loads(r->body, 0, NULL);
	return r->status;
}

static char *key_hdr(const char *key)
{
	static char buf[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "X-Api-Key: %s", key);
	return buf[i];
}

static const char *jstr(const struct resp *r, const char *key)
{
	return json_string_value(json_object_get(r->json, key));
}

static const char *detail(const struct resp *r, const char *key)
{
	return json_string_value(json_object_get(json_object_get(r->json, "detail"), key));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Poll a sandbox's status until it is `want` (or 10 s pass). */
static void wait_status(const char *name, const char *key, const char *want)
{
	char path[200];
	struct resp r;

	snprintf(path, sizeof(path), "/api/v2/sandboxes/boxes/%s/status", name);
	for (int i = 0; i < 200; i++) {
		ck_assert_int_eq(http(&r, "GET", path, key_hdr(key), NULL), 200);
		if (!strcmp(jstr(&r, "status"), want)) {
			resp_free(&r);
			return;
		}
		resp_free(&r);
		sleep_ms(50);
	}
	ck_abort_msg("sandbox %s never became %s", name, want);
}

/* Send METHOD /boxes/NAME every 50 ms until it is 404 (a PATCH "{}" is
 * activity; a GET is not); abort after 5 s. */
static void wait_gone(const char *method, const char *name, const char *key)
{
	char path[200];
	struct resp r;

	snprintf(path, sizeof(path), "/api/v2/sandboxes/boxes/%s", name);
	for (int i = 0; i < 100; i++) {
		long st = http(&r, method, path, key_hdr(key), strcmp(method, "GET") ? "{}" : NULL);

		resp_free(&r);
		if (st == 404)
			return;
		sleep_ms(50);
	}
	ck_abort_msg("sandbox %s is still there", name);
}

/* Poll until a sandbox's row exists (a create in flight elsewhere has
 * reached the server; abort after 10 s) and return its status then. The
 * HTTP loop runs a create's handler to its end (row written, request
 * deferred until ready) before it serves another request, so once the
 * row is seen, that create is waiting. */
/* A request sent by a second client from another thread: it blocks (on
 * wait_for_ready, a capture...) while the test acts. A thread, not fork():
 * a child forked from this multi-threaded process can deadlock on a lock
 * another thread held at the fork (seen under ASan). */
struct bg_req {
	pthread_t th;
	const char *method, *path, *body;
	char hdr[128];
	struct resp r;
};

static void *bg_run(void *arg)
{
	struct bg_req *b = arg;

	http(&b->r, b->method, b->path, b->hdr, b->body);
	return NULL;
}

static void bg_start(struct bg_req *b, const char *method, const char *path, const char *key,
		     const char *body)
{
	memset(b, 0, sizeof(*b));
	b->method = method;
	b->path = path;
	b->body = body;
	snprintf(b->hdr, sizeof(b->hdr), "X-Api-Key: %s", key);
	ck_assert_int_eq(pthread_create(&b->th, NULL, bg_run, b), 0);
}

/* Waits for the request's answer: its status (b->r holds the reply). */
static long bg_finish(struct bg_req *b)
{
	ck_assert_int_eq(pthread_join(b->th, NULL), 0);
	return b->r.status;
}

static void wait_exists(const char *name, const char *key, char *status, size_t len)
{
	char path[200];
	struct resp r;

	snprintf(path, sizeof(path), "/api/v2/sandboxes/boxes/%s/status", name);
	for (int i = 0; i < 200; i++) {
		long st = http(&r, "GET", path, key_hdr(key), NULL);

		if (st == 200) {
			snprintf(status, len, "%s", jstr(&r, "status"));
			resp_free(&r);
			return;
		}
		ck_assert_int_eq(st, 404);
		resp_free(&r);
		sleep_ms(50);
	}
	ck_abort_msg("sandbox %s never appeared", name);
}

START_TEST(test_server_healthz_needs_no_key)
{
	struct resp r;

	ck_assert_int_eq(http(&r, "GET", "/healthz", NULL, NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "ok");
	ck_assert_ptr_nonnull(strstr(r.headers, "x-request-id:"));
	resp_free(&r);
}
END_TEST

START_TEST(test_server_refuses_missing_wrong_and_revoked_keys)
{
	struct resp r;

	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes", NULL, NULL), 401);
	ck_assert_str_eq(detail(&r, "error"), "Unauthorized");
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "X-Api-Key"));
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes", "X-Api-Key: sbx_wrong", NULL),
			 401);
	ck_assert_str_eq(detail(&r, "message"), "the API key is not valid");
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/v2/sandboxes/boxes", key_hdr(t.revoked), NULL), 401);
	ck_assert_str_eq(detail(&r, "message"), "this API key was revoked");
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes", "X-Api-Key: ", "{}"), 401);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_key_header_name_is_case_insensitive)
{
	char h[128];
	struct resp r;

	snprintf(h, sizeof(h), "x-api-key: %s", t.alice);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes", h, NULL), 200);
	resp_free(&r);
	snprintf(h, sizeof(h), "X-API-KEY: %s", t.alice);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes", h, NULL), 200);
	ck_assert(json_is_array(json_object_get(r.json, "sandboxes")));
	ck_assert(json_is_array(json_object_get(r.json, "items")));
	ck_assert(json_is_null(json_object_get(r.json, "next_cursor")));
	resp_free(&r);
}
END_TEST

START_TEST(test_server_create_waits_for_ready_and_returns_the_sandbox)
{
	struct resp r;
	char want[200];
	json_t *j;

	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice),
			      "{\"wait_for_ready\":true,\"timeout\":30,\"name\":\"t1\","
			      "\"idle_ttl_seconds\":600,\"labels\":{\"k\":\"v\"}}"),
			 201);
	j = r.json;
	ck_assert_str_eq(jstr(&r, "name"), "t1");
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	ck_assert(api_uuid_is_valid(jstr(&r, "id")));
	snprintf(want, sizeof(want), "http://127.0.0.1:%d/dataplane/%s", t.port, jstr(&r, "id"));
	ck_assert_str_eq(jstr(&r, "dataplane_url"), want);
	ck_assert(json_is_null(json_object_get(j, "status_message")));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "vcpus")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "mem_bytes")), 512 << 20);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "fs_capacity_bytes")), 2ll << 30);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "idle_ttl_seconds")), 600);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "delete_after_stop_seconds")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "labels"), "k")),
			 "v");
	ck_assert_ptr_nonnull(strstr(jstr(&r, "created_at"), "Z"));
	ck_assert(json_is_null(json_object_get(j, "snapshot_id")));
	resp_free(&r);

	ck_assert_int_eq(http(&r, "GET", "/v2/sandboxes/boxes/t1", key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/boxes/t1/status", key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	resp_free(&r);
}
END_TEST

START_TEST(test_server_create_without_wait_answers_provisioning_at_once)
{
	struct resp r;
	const char *name;

	fake.boot_ms = 800;
	ck_assert_int_eq(
	    http(&r, "POST", "/v2/sandboxes/boxes", key_hdr(t.bob), "{\"wait_for_ready\":false}"),
	    201);
	ck_assert_str_eq(jstr(&r, "status"), "provisioning");
	name = jstr(&r, "name");
	ck_assert_int_eq(strncmp(name, "sandbox-", 8), 0);
	ck_assert(api_name_is_valid(name));
	wait_status(name, t.bob, "ready");
	resp_free(&r);
}
END_TEST

START_TEST(test_server_keeps_serving_while_a_vm_boots)
{
	struct resp r, h;
	struct bg_req slow;
	double t0;

	fake.boot_ms = 1500;
	/* a separate client blocks on wait_for_ready */
	bg_start(&slow, "POST", "/api/v2/sandboxes/boxes", t.alice, "{\"name\":\"slow\"}");
	/* the child's create is in: its boot has begun */
	{
		char status[32];

		wait_exists("slow", t.alice, status, sizeof(status));
		ck_assert_str_eq(status, "provisioning");
	}
	t0 = now_s();
	ck_assert_int_eq(http(&h, "GET", "/healthz", NULL, NULL), 200);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/boxes/slow/status", key_hdr(t.alice), NULL), 200);
	ck_assert_msg(now_s() - t0 < 0.5, "the server stalled while a VM booted");
	ck_assert_str_eq(jstr(&r, "status"), "provisioning");
	resp_free(&r);
	resp_free(&h);
	ck_assert_int_eq(bg_finish(&slow), 201);
	resp_free(&slow.r);
}
END_TEST

START_TEST(test_server_create_times_out_with_408_and_boot_goes_on)
{
	struct resp r;
	double t0 = now_s();

	fake.boot_ms = 2500;
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice),
			      "{\"name\":\"late\",\"timeout\":1}"),
			 408);
	ck_assert_msg(now_s() - t0 < 2.0, "408 came late");
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "did not become ready within 1 s"));
	resp_free(&r);
	wait_status("late", t.alice, "ready");
}
END_TEST

START_TEST(test_server_boot_failure_is_503_and_status_failed)
{
	struct resp r;

	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{\"name\":\"boom\"}"),
	    503);
	ck_assert_str_eq(detail(&r, "error"), "SandboxBootFailed");
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "QEMU exited"));
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/boxes/boom/status", key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "failed");
	ck_assert_ptr_nonnull(strstr(jstr(&r, "status_message"), "could not start"));
	resp_free(&r);
}
END_TEST

START_TEST(test_server_owner_isolation_and_admin_sees_all)
{
	struct resp r;

	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{\"name\":\"alices\"}"),
	    201);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes/alices", key_hdr(t.bob), NULL),
			 404);
	ck_assert_str_eq(detail(&r, "message"), "sandbox 'alices' not found");
	resp_free(&r);
	ck_assert_int_eq(http(&r, "DELETE", "/api/v2/sandboxes/boxes/alices", key_hdr(t.bob), NULL),
			 404);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "PATCH", "/api/v2/sandboxes/boxes/alices", key_hdr(t.bob),
			      "{\"name\":\"stolen\"}"),
			 404);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes", key_hdr(t.bob), NULL), 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "sandboxes")), 0);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes", key_hdr(t.admin), NULL), 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "sandboxes")), 1);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes/alices", key_hdr(t.admin), NULL),
			 200);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_rename_conflict_and_validation)
{
	struct resp r;

	http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{\"name\":\"one\"}");
	resp_free(&r);
	http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{\"name\":\"two\"}");
	resp_free(&r);
	ck_assert_int_eq(http(&r, "PATCH", "/api/v2/sandboxes/boxes/one", key_hdr(t.alice),
			      "{\"name\":\"two\"}"),
			 409);
	ck_assert_str_eq(detail(&r, "error"), "Conflict");
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "PATCH", "/api/v2/sandboxes/boxes/one", key_hdr(t.alice), "{\"name\":\"No\"}"),
	    422);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "PATCH", "/api/v2/sandboxes/boxes/one", key_hdr(t.alice),
			      "{\"name\":\"uno\",\"idle_ttl_seconds\":120}"),
			 200);
	ck_assert_str_eq(jstr(&r, "name"), "uno");
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "idle_ttl_seconds")), 120);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes/one", key_hdr(t.alice), NULL),
			 404);
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.bob), "{\"name\":\"two\"}"), 409);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_delete_destroys_the_vm_and_rows)
{
	struct resp r;
	unsigned before;

	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{\"name\":\"gone\"}"),
	    201);
	ck_assert(fake_has(jstr(&r, "id")));
	before = fake.destroyed;
	{
		char id[40];

		snprintf(id, sizeof(id), "%s", jstr(&r, "id"));
		resp_free(&r);
		ck_assert_int_eq(
		    http(&r, "DELETE", "/api/v2/sandboxes/boxes/gone", key_hdr(t.alice), NULL),
		    204);
		ck_assert_int_eq(r.len, 0);
		ck_assert(!fake_has(id));
	}
	ck_assert_int_eq(fake.destroyed, before + 1);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes/gone", key_hdr(t.alice), NULL),
			 404);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_delete_during_boot_cancels_it)
{
	struct resp r;
	struct bg_req doomed;

	fake.boot_ms = 3000;
	bg_start(&doomed, "POST", "/api/v2/sandboxes/boxes", t.alice, "{\"name\":\"doomed\"}");
	/* the other client's create is in and waits for a boot that takes 3 s */
	{
		char state[32];

		wait_exists("doomed", t.alice, state, sizeof(state));
		ck_assert_str_eq(state, "provisioning");
	}
	ck_assert_int_eq(
	    http(&r, "DELETE", "/api/v2/sandboxes/boxes/doomed", key_hdr(t.alice), NULL), 204);
	resp_free(&r);
	ck_assert_msg(bg_finish(&doomed) == 409, "the waiting create got %ld, not 409",
		      doomed.r.status);
	resp_free(&doomed.r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes/doomed", key_hdr(t.alice), NULL),
			 404);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_errors_use_the_detail_body)
{
	struct resp r;
	char *big = malloc(2 * API_MAX_BODY);

	ck_assert_int_eq(http(&r, "GET", "/nope", key_hdr(t.alice), NULL), 404);
	ck_assert_str_eq(detail(&r, "error"), "NotFound");
	resp_free(&r);
	ck_assert_int_eq(http(&r, "PUT", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{}"), 405);
	ck_assert_ptr_nonnull(strstr(r.headers, "allow: GET, HEAD, POST"));
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{oops"),
			 400);
	ck_assert_str_eq(detail(&r, "error"), "InvalidJSON");
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{\"vcpus\":99}"), 422);
	ck_assert_str_eq(detail(&r, "error"), "ValidationError");
	resp_free(&r);
	memset(big, ' ', 2 * API_MAX_BODY - 1);
	big[0] = '{';
	big[2 * API_MAX_BODY - 2] = '}';
	big[2 * API_MAX_BODY - 1] = '\0';
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), big), 413);
	ck_assert_str_eq(detail(&r, "error"), "PayloadTooLarge");
	resp_free(&r);
	free(big);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice),
			      "{\"snapshot_id\":\"nope\"}"),
			 404);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/snapshots", key_hdr(t.alice), NULL),
			 200);
	ck_assert(json_is_array(json_object_get(r.json, "snapshots")));
	resp_free(&r);
	/* the server is still fine after all that */
	ck_assert_int_eq(http(&r, "GET", "/healthz", NULL, NULL), 200);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_quota_is_429)
{
	struct resp r;
	char body[64];

	teardown_server();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	server_start(2);
	for (int i = 0; i < 2; i++) {
		snprintf(body, sizeof(body), "{\"name\":\"q%d\"}", i);
		ck_assert_int_eq(
		    http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), body), 201);
		resp_free(&r);
	}
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.bob), "{}"), 429);
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "sandbox count limit"));
	resp_free(&r);
}
END_TEST

/* ---- the data plane hook ---- */

static void dp_request(void *ud, http_req *r, enum api_dp_op op, const struct sbxd_dp_box *box,
		       const struct sbxd_principal *who)
{
	(void)ud;
	if (op == DP_EXECUTE)
		return; /* let the body arrive: dp_body answers */
	http_reply_json(r, 200,
			json_pack("{s:s, s:s, s:s, s:s}", "op", api_dp_op_to_string(op), "box",
				  box->name, "agent", box->agent_addr, "key", who->key_name));
}

static void dp_body(void *ud, http_req *r, enum api_dp_op op, const struct sbxd_dp_box *box,
		    const struct sbxd_principal *who)
{
	size_t len;
	const char *body = http_req_body(r, &len);

	(void)ud;
	(void)op;
	(void)who;
	http_reply_json(r, 200, json_pack("{s:s, s:s#}", "box", box->name, "echo", body, len));
}

static const struct sbxd_dataplane_ops test_dp = {.on_request = dp_request, .on_body = dp_body};

/* A data plane where a command runs while dp_running is set, and that
 * counts the sandboxes it was asked to let go of, and how often it was
 * asked whether a command runs (the idle TTL asks once a sandbox's idle
 * time is up, before it stops it). Its callbacks run on the HTTP loop's
 * thread: busy_asked is read with atomics. */
static struct {
	bool running;
	unsigned released;
	char last_released[64];
	unsigned busy_asked;
} dpx;

static bool dp_busy(void *ud, const char *box_id)
{
	(void)ud;
	(void)box_id;
	__atomic_add_fetch(&dpx.busy_asked, 1, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&dpx.running, __ATOMIC_SEQ_CST);
}

static void dp_release(void *ud, const char *box_id)
{
	(void)ud;
	dpx.released++;
	snprintf(dpx.last_released, sizeof(dpx.last_released), "%s", box_id);
}

static const struct sbxd_dataplane_ops test_dp_cmds = {
    .on_request = dp_request, .on_body = dp_body, .release_box = dp_release, .box_busy = dp_busy};

START_TEST(test_server_dataplane_routes_to_the_registered_handler)
{
	struct resp r;
	char path[200], id[40];

	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{\"name\":\"dp\"}"),
	    201);
	snprintf(id, sizeof(id), "%s", jstr(&r, "id"));
	resp_free(&r);

	snprintf(path, sizeof(path), "/dataplane/%s/download?path=/etc/hostname", id);
	ck_assert_int_eq(http(&r, "GET", path, key_hdr(t.alice), NULL), 501);
	ck_assert_str_eq(detail(&r, "error"), "NotImplemented");
	resp_free(&r);

	sbxd_api_set_dataplane(t.api, &test_dp, NULL);
	ck_assert_int_eq(http(&r, "GET", path, key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "op"), "download");
	ck_assert_str_eq(jstr(&r, "box"), "dp");
	ck_assert_str_eq(jstr(&r, "key"), "alice");
	ck_assert_ptr_nonnull(strstr(jstr(&r, "agent"), id));
	resp_free(&r);
	snprintf(path, sizeof(path), "/dataplane/%s/execute", id);
	ck_assert_int_eq(http(&r, "POST", path, key_hdr(t.alice), "{\"command\":\"true\"}"), 200);
	ck_assert_str_eq(jstr(&r, "echo"), "{\"command\":\"true\"}");
	resp_free(&r);

	ck_assert_int_eq(http(&r, "GET", path, key_hdr(t.alice), NULL), 405);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", path, key_hdr(t.bob), "{}"), 404);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", path, NULL, "{}"), 401);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", "/dataplane/00000000-0000-4000-8000-000000000000/execute",
			      key_hdr(t.alice), "{}"),
			 404);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_dataplane_of_a_booting_sandbox_is_not_ready)
{
	struct resp r;
	char path[200];

	fake.boot_ms = 3000;
	sbxd_api_set_dataplane(t.api, &test_dp, NULL);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice),
			      "{\"name\":\"nr\",\"wait_for_ready\":false}"),
			 201);
	snprintf(path, sizeof(path), "/dataplane/%s/download?path=/x", jstr(&r, "id"));
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", path, key_hdr(t.alice), NULL), 400);
	/* mapped to LangSmithSandboxNotReadyError by the client */
	ck_assert_str_eq(detail(&r, "error"), "NotReady");
	resp_free(&r);
}
END_TEST

START_TEST(test_server_websocket_upgrade_is_checked_and_501_without_handler)
{
	struct resp r;
	char path[200], id[40];
	CURL *c;
	struct curl_slist *h = NULL;
	char url[300];
	long code = 0;

	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{\"name\":\"ws\"}"),
	    201);
	snprintf(id, sizeof(id), "%s", jstr(&r, "id"));
	resp_free(&r);
	snprintf(path, sizeof(path), "/dataplane/%s/execute/ws", id);
	for (int pass = 0; pass < 3; pass++) {
		memset(&r, 0, sizeof(r));
		c = curl_easy_init();
		h = NULL;
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", t.port,
			 pass == 2 ? "/api/v2/sandboxes/boxes" : path);
		h = curl_slist_append(h, "Connection: Upgrade");
		h = curl_slist_append(h, "Upgrade: websocket");
		h = curl_slist_append(h, "Sec-WebSocket-Version: 13");
		h = curl_slist_append(h, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==");
		h = curl_slist_append(h, key_hdr(pass == 1 ? "sbx_wrong" : t.alice));
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
		ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		ck_assert_int_eq(code, pass == 0 ? 501 : pass == 1 ? 401 : 404);
		ck_assert_ptr_nonnull(strstr(r.body, "\"detail\""));
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
		free(r.body);
	}
}
END_TEST

/* ======================= reconcile ======================= */

START_TEST(test_reconcile_adopts_fails_and_cleans_up)
{
	struct store_box b[4], got;
	const char *names[] = {"adopt-me", "vm-gone", "half-deleted", "failed-old"};
	struct resp r;
	int64_t owner;
	struct store_key k;
	char hash[SBXD_KEY_HASH_LEN + 1];

	/* Stop the fixture's server: build the "previous life" first. */
	teardown_server();
	snprintf(t.dir, sizeof(t.dir), "/tmp/check_api.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t.dir));
	{
		char db[200];

		snprintf(db, sizeof(db), "%s/sbxd.db", t.dir);
		ck_assert_int_eq(store_open(db, &t.st), 0);
	}
	sbxd_key_hash("k", 1, hash);
	ck_assert_int_eq(store_key_create(t.st, "k", hash, false, &owner), 0);
	for (int i = 0; i < 4; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		ck_assert_int_eq(sbxd_uuid4(b[i].id), 0);
		b[i].name = (char *)names[i];
		b[i].owner = owner;
		b[i].state = i == 2 ? BOX_DELETING : i == 3 ? BOX_FAILED : BOX_READY;
		b[i].vcpus = 1;
		b[i].mem_bytes = 512 << 20;
		b[i].fs_capacity_bytes = 1 << 30;
		b[i].image = (char *)"/img";
		b[i].vm_name = b[i].id;
		ck_assert_int_eq(store_box_insert(t.st, &b[i]), 0);
	}
	fake_add(b[0].id);     /* running, has a row: adopted */
	fake_add(b[2].id);     /* row is deleting: finished */
	fake_add("orphan-vm"); /* no row: destroyed */
	t.st = store_close(t.st);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	fake.boot_ms = 100;
	{
		/* server_start() opens the same database again */
		char db[200], keep[128];
		struct sbxd_api_config ac = {
		    .image_dir = "/img", .version = "test", .limits = test_limits};
		struct http_server_config hc = {
		    .host = "127.0.0.1", .app = &sbxd_api_http_app, .log_fd = -1};
		struct sbxd_mgr_config mc = {.vm = &fake_ops, .notify = sbxd_api_mgr_notify};

		snprintf(keep, sizeof(keep), "%s", t.dir);
		snprintf(db, sizeof(db), "%s/sbxd.db", keep);
		ck_assert_int_eq(store_open(db, &t.st), 0);
		ac.st = t.st;
		ck_assert_int_eq(sbxd_api_new(&ac, &t.api), 0);
		hc.app_ud = t.api;
		ck_assert_int_eq(http_server_new(&hc, &t.srv), 0);
		t.port = http_server_port(t.srv);
		mc.st = t.st;
		mc.notify_ud = t.api;
		ck_assert_int_eq(sbxd_mgr_new(&mc, &t.mgr), 0);
		sbxd_api_attach(t.api, t.srv, t.mgr);
		ck_assert_int_eq(sbxd_mgr_reconcile(t.mgr), 0);
		ck_assert_int_eq(pthread_create(&t.thread, NULL, serve_thread, NULL), 0);
	}
	ck_assert(!fake_has("orphan-vm"));
	for (int i = 0; i < 100 && sbxd_mgr_jobs(t.mgr); i++)
		sleep_ms(20);
	ck_assert_int_eq(sbxd_mgr_jobs(t.mgr), 0);

	ck_assert_int_eq(store_box_get(t.st, "adopt-me", STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, BOX_READY);
	store_box_release(&got);
	ck_assert_int_eq(store_box_get(t.st, "vm-gone", STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, BOX_FAILED);
	ck_assert_str_eq(got.status_message, "the VM was not running when sbxd started");
	store_box_release(&got);
	ck_assert_int_eq(store_box_get(t.st, "half-deleted", STORE_OWNER_ANY, &got), -ENOENT);
	ck_assert(!fake_has(b[2].id));
	ck_assert_int_eq(store_box_get(t.st, "failed-old", STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, BOX_FAILED);
	store_box_release(&got);
	ck_assert(fake_has(b[0].id));

	/* and the API shows it */
	sbxd_key_hash("k", 1, hash);
	ck_assert_int_eq(store_key_find(t.st, hash, &k), 0);
	store_key_release(&k);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/boxes/vm-gone/status", "X-Api-Key: k", NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "failed");
	resp_free(&r);
}
END_TEST

START_TEST(test_reconcile_finishes_or_rolls_back_stops_and_starts)
{
	struct store_box b[5], x, got;
	const char *names[] = {"stopped", "stop-saved", "stop-unsaved", "stop-unsaved-gone",
			       "starting"};
	int64_t owner;
	char hash[SBXD_KEY_HASH_LEN + 1];

	teardown_server();
	snprintf(t.dir, sizeof(t.dir), "/tmp/check_api.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t.dir));
	{
		char db[200];

		snprintf(db, sizeof(db), "%s/sbxd.db", t.dir);
		ck_assert_int_eq(store_open(db, &t.st), 0);
	}
	sbxd_key_hash("k", 1, hash);
	ck_assert_int_eq(store_key_create(t.st, "k", hash, false, &owner), 0);
	for (int i = 0; i < 5; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		ck_assert_int_eq(sbxd_uuid4(b[i].id), 0);
		b[i].name = (char *)names[i];
		b[i].owner = owner;
		b[i].state = i == 0 ? BOX_STOPPED : i == 4 ? BOX_STARTING : BOX_STOPPING;
		b[i].vcpus = 1;
		b[i].mem_bytes = 512 << 20;
		b[i].fs_capacity_bytes = 1 << 30;
		b[i].image = (char *)"/img";
		b[i].vm_name = b[i].id;
		if (i == 0 || i == 1 || i == 4)
			b[i].stop_snapshot_id = (char *)"snap-x";
		ck_assert_int_eq(store_box_insert(t.st, &b[i]), 0);
	}
	/* ready, past its hard TTL while sbxd was down: deleted at start */
	memset(&x, 0, sizeof(x));
	ck_assert_int_eq(sbxd_uuid4(x.id), 0);
	x.name = (char *)"expired";
	x.owner = owner;
	x.state = BOX_READY;
	x.vcpus = 1;
	x.mem_bytes = 512 << 20;
	x.fs_capacity_bytes = 1 << 30;
	x.image = (char *)"/img";
	x.vm_name = x.id;
	x.created_ms = clock_wall_ms() - 60000;
	x.max_lifetime_seconds = 30;
	ck_assert_int_eq(store_box_insert(t.st, &x), 0);
	fake_add(x.id);
	fake_add(b[1].id); /* saved, VM not destroyed yet: finished */
	fake_add(b[2].id); /* not saved, VM runs: adopted, ready */
	fake_add(b[4].id); /* starting: rolled back to stopped */
	t.st = store_close(t.st);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	fake.boot_ms = 100;
	{
		char db[200];
		struct sbxd_api_config ac = {
		    .image_dir = "/img", .version = "test", .limits = test_limits};
		struct http_server_config hc = {
		    .host = "127.0.0.1", .app = &sbxd_api_http_app, .log_fd = -1};
		struct sbxd_mgr_config mc = {.vm = &fake_ops, .notify = sbxd_api_mgr_notify};

		snprintf(db, sizeof(db), "%s/sbxd.db", t.dir);
		ck_assert_int_eq(store_open(db, &t.st), 0);
		ac.st = t.st;
		ck_assert_int_eq(sbxd_api_new(&ac, &t.api), 0);
		hc.app_ud = t.api;
		ck_assert_int_eq(http_server_new(&hc, &t.srv), 0);
		t.port = http_server_port(t.srv);
		mc.st = t.st;
		mc.notify_ud = t.api;
		ck_assert_int_eq(sbxd_mgr_new(&mc, &t.mgr), 0);
		sbxd_api_attach(t.api, t.srv, t.mgr);
		ck_assert_int_eq(sbxd_mgr_reconcile(t.mgr), 0);
		ck_assert_int_eq(pthread_create(&t.thread, NULL, serve_thread, NULL), 0);
	}
	for (int i = 0; i < 100 && sbxd_mgr_jobs(t.mgr); i++)
		sleep_ms(20);
	ck_assert_int_eq(sbxd_mgr_jobs(t.mgr), 0);
	ck_assert_int_eq(store_box_get(t.st, "stopped", STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, BOX_STOPPED); /* no VM expected: not failed */
	store_box_release(&got);
	ck_assert_int_eq(store_box_get(t.st, "stop-saved", STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, BOX_STOPPED);
	store_box_release(&got);
	ck_assert(!fake_has(b[1].id));
	ck_assert_int_eq(store_box_get(t.st, "stop-unsaved", STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, BOX_READY);
	store_box_release(&got);
	ck_assert(fake_has(b[2].id));
	ck_assert_int_eq(store_box_get(t.st, "stop-unsaved-gone", STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, BOX_FAILED);
	store_box_release(&got);
	ck_assert_int_eq(store_box_get(t.st, "starting", STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, BOX_STOPPED);
	ck_assert_str_eq(got.stop_snapshot_id, "snap-x");
	ck_assert_ptr_nonnull(strstr(got.status_message, "start it again"));
	store_box_release(&got);
	ck_assert(!fake_has(b[4].id));
	/* the TTLs are read from the rows: one that expired meanwhile goes */
	for (int i = 0; i < 150 && fake_has(x.id); i++)
		sleep_ms(20);
	ck_assert(!fake_has(x.id));
	for (int i = 0; i < 150 && store_box_get(t.st, "expired", STORE_OWNER_ANY, &got) == 0;
	     i++) {
		store_box_release(&got);
		sleep_ms(20);
	}
	ck_assert_int_eq(store_box_get(t.st, "expired", STORE_OWNER_ANY, &got), -ENOENT);
}
END_TEST

/* ======================= snapshots and pools ======================= */

static long create_box(const char *key, const char *body, struct resp *r)
{
	return http(r, "POST", "/api/v2/sandboxes/boxes", key_hdr(key), body);
}

/* ======================= stop, start and TTLs ======================= */

/* The stop snapshot a sandbox's row names ("" when none). */
static void stop_snapshot_of(const char *name, char *buf, size_t len)
{
	struct store_box b;

	ck_assert_int_eq(store_box_get(t.st, name, STORE_OWNER_ANY, &b), 0);
	snprintf(buf, len, "%s", b.stop_snapshot_id ? b.stop_snapshot_id : "");
	store_box_release(&b);
}

START_TEST(test_server_stop_saves_and_start_restores_the_same_vm)
{
	struct resp r;
	char id[64], snap[64], path[200];

	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes/none/stop", key_hdr(t.alice), "{}"), 404);
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes", key_hdr(t.alice), "{\"name\":\"s\"}"), 201);
	snprintf(id, sizeof(id), "%s", jstr(&r, "id"));
	ck_assert(json_is_null(json_object_get(r.json, "stopped_at")));
	resp_free(&r);
	ck_assert(fake_has(id));

	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/s/stop", key_hdr(t.alice), "{}"),
			 200);
	ck_assert_str_eq(jstr(&r, "status"), "stopped");
	ck_assert_ptr_nonnull(strstr(jstr(&r, "stopped_at"), "Z"));
	resp_free(&r);
	ck_assert(!fake_has(id)); /* no VM while stopped */
	ck_assert(!fake.last_capture_memory);
	stop_snapshot_of("s", snap, sizeof(snap));
	ck_assert(snap[0]);
	ck_assert(fake_has_snap(snap));
	/* internal: not a snapshot of the API */
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/snapshots", key_hdr(t.alice), NULL),
			 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "snapshots")), 0);
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/boxes/s/status", key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "stopped");
	resp_free(&r);
	/* stopping a stopped sandbox does nothing */
	ck_assert_int_eq(http(&r, "POST", "/v2/sandboxes/boxes/s/stop", key_hdr(t.alice), "{}"),
			 200);
	ck_assert_str_eq(jstr(&r, "status"), "stopped");
	resp_free(&r);
	/* the data plane says so */
	sbxd_api_set_dataplane(t.api, &test_dp, NULL);
	snprintf(path, sizeof(path), "/dataplane/%s/download?path=/x", id);
	ck_assert_int_eq(http(&r, "GET", path, key_hdr(t.alice), NULL), 409);
	ck_assert_ptr_nonnull(
	    strstr(detail(&r, "message"), "sandbox s is stopped: start it first"));
	resp_free(&r);
	/* another key sees nothing */
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/s/start", key_hdr(t.bob), "{}"),
			 404);
	resp_free(&r);

	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes/s/start", key_hdr(t.alice), "{}"), 200);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	ck_assert(json_is_null(json_object_get(r.json, "stopped_at")));
	ck_assert_ptr_nonnull(strstr(jstr(&r, "dataplane_url"), id));
	resp_free(&r);
	ck_assert(fake_has(id)); /* the same VM name */
	ck_assert_str_eq(fake.last_start_snapshot, snap);
	ck_assert(!fake.last_start_restore);
	ck_assert(!fake_has_snap(snap)); /* dropped once it runs */
	stop_snapshot_of("s", path, sizeof(path));
	ck_assert_str_eq(path, "");
	/* starting a ready sandbox does nothing */
	ck_assert_int_eq(http(&r, "POST", "/v2/sandboxes/boxes/s/start", key_hdr(t.alice), "{}"),
			 200);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	resp_free(&r);
}
END_TEST

START_TEST(test_server_stop_with_memory_resumes_it)
{
	struct resp r;

	ck_assert_int_eq(
	    create_box(t.alice, "{\"name\":\"m\",\"preserve_memory_on_stop\":true}", &r), 201);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/m/stop", key_hdr(t.alice), "{}"),
			 200);
	resp_free(&r);
	ck_assert(fake.last_capture_memory);
	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes/m/start", key_hdr(t.alice), "{}"), 200);
	resp_free(&r);
	ck_assert(fake.last_start_restore);
}
END_TEST

START_TEST(test_server_stop_start_conflicts_and_delete_of_a_stopped_box)
{
	struct resp r;
	char snap[64];

	fake.boot_ms = 2000;
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"p\",\"wait_for_ready\":false}", &r), 201);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/p/stop", key_hdr(t.alice), "{}"),
			 409);
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "is provisioning"));
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes/p/start", key_hdr(t.alice), "{}"), 409);
	resp_free(&r);
	wait_status("p", t.alice, "ready");
	fake.boot_ms = 100;
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/p/stop", key_hdr(t.alice), "{}"),
			 200);
	resp_free(&r);
	stop_snapshot_of("p", snap, sizeof(snap));
	ck_assert(fake_has_snap(snap));
	/* a capture of a stopped sandbox is refused */
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/p/snapshot", key_hdr(t.alice),
			      "{\"name\":\"x\"}"),
			 409);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "DELETE", "/api/v2/sandboxes/boxes/p", key_hdr(t.alice), NULL),
			 204);
	resp_free(&r);
	ck_assert(!fake_has_snap(snap));
}
END_TEST

START_TEST(test_server_idle_ttl_stops_and_delete_after_stop_deletes)
{
	struct resp r;
	char snap[64];
	double t0;

	/* below the client's multiple-of-60 rule: sbxd accepts seconds */
	ck_assert_int_eq(create_box(t.alice,
				    "{\"name\":\"idle\",\"idle_ttl_seconds\":1,"
				    "\"delete_after_stop_seconds\":1}",
				    &r),
			 201);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "idle_ttl_seconds")), 1);
	resp_free(&r);
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"keep\",\"idle_ttl_seconds\":0}", &r),
			 201);
	resp_free(&r);
	t0 = now_s();
	wait_status("idle", t.alice, "stopped");
	ck_assert(now_s() - t0 > 0.5);
	stop_snapshot_of("idle", snap, sizeof(snap));
	ck_assert(fake_has_snap(snap));
	wait_gone("GET", "idle", t.alice);
	ck_assert(!fake_has_snap(snap));
	/* TTL 0: never */
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/boxes/keep/status", key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	resp_free(&r);
}
END_TEST

START_TEST(test_server_max_lifetime_deletes_ready_and_stopped_sandboxes)
{
	struct resp r;
	char snap[64];
	double t0;

	t0 = now_s();
	ck_assert_int_eq(create_box(t.alice,
				    "{\"name\":\"short\",\"idle_ttl_seconds\":0,"
				    "\"max_lifetime_seconds\":2}",
				    &r),
			 201);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "max_lifetime_seconds")), 2);
	ck_assert_ptr_nonnull(strstr(jstr(&r, "expires_at"), "T"));
	resp_free(&r);
	ck_assert_int_eq(create_box(t.alice,
				    "{\"name\":\"parked\",\"idle_ttl_seconds\":0,"
				    "\"max_lifetime_seconds\":2}",
				    &r),
			 201);
	resp_free(&r);
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"long\",\"idle_ttl_seconds\":0}", &r),
			 201);
	ck_assert(json_is_null(json_object_get(r.json, "expires_at")));
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes/parked/stop", key_hdr(t.alice), "{}"), 200);
	resp_free(&r);
	wait_status("parked", t.alice, "stopped");
	stop_snapshot_of("parked", snap, sizeof(snap));
	ck_assert(fake_has_snap(snap));
	/* activity (a PATCH every 50 ms) does not postpone a hard TTL */
	wait_gone("PATCH", "short", t.alice);
	ck_assert(now_s() - t0 > 1.9);
	wait_gone("GET", "parked", t.alice);
	ck_assert(!fake_has_snap(snap)); /* its stop snapshot went with it */
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/boxes/long/status", key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	resp_free(&r);
}
END_TEST

START_TEST(test_server_activity_postpones_the_idle_ttl)
{
	struct resp r;
	char path[200];

	sbxd_api_set_dataplane(t.api, &test_dp, NULL);
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"busy\",\"idle_ttl_seconds\":2}", &r),
			 201);
	snprintf(path, sizeof(path), "/dataplane/%s/download?path=/x", jstr(&r, "id"));
	resp_free(&r);
	/* data-plane requests every 0.5 s for 3.5 s keep it running */
	for (int i = 0; i < 7; i++) {
		sleep_ms(500);
		http(&r, "GET", path, key_hdr(t.alice), NULL);
		resp_free(&r);
		ck_assert_int_eq(
		    http(&r, "GET", "/api/v2/sandboxes/boxes/busy/status", key_hdr(t.alice), NULL),
		    200);
		ck_assert_str_eq(jstr(&r, "status"), "ready");
		resp_free(&r);
	}
	wait_status("busy", t.alice, "stopped");
}
END_TEST

START_TEST(test_server_a_running_command_keeps_a_sandbox_from_its_idle_ttl)
{
	struct resp r;
	char id[64];

	memset(&dpx, 0, sizeof(dpx));
	dpx.running = true;
	sbxd_api_set_dataplane(t.api, &test_dp_cmds, NULL);
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"cmd\",\"idle_ttl_seconds\":1}", &r), 201);
	snprintf(id, sizeof(id), "%s", jstr(&r, "id"));
	resp_free(&r);
	/* Observe the TTL thread's own decisions rather than sleep past them:
	 * it asks whether a command runs only for a ready sandbox whose idle
	 * time is up, and, told yes, counts that as activity. A second
	 * question (a further idle_ttl_seconds later) means the first one
	 * ended without a stop: the sandbox was still ready to be asked about. */
	for (int i = 0; i < 500 && __atomic_load_n(&dpx.busy_asked, __ATOMIC_SEQ_CST) < 2; i++)
		sleep_ms(20);
	ck_assert_uint_ge(__atomic_load_n(&dpx.busy_asked, __ATOMIC_SEQ_CST), 2);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/boxes/cmd/status", key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	resp_free(&r);
	ck_assert_int_eq(dpx.released, 0);
	__atomic_store_n(&dpx.running, false, __ATOMIC_SEQ_CST); /* the command ended */
	wait_status("cmd", t.alice, "stopped");
	/* the data plane let go of it before the capture */
	ck_assert_int_eq(dpx.released, 1);
	ck_assert_str_eq(dpx.last_released, id);
	ck_assert(!fake_has(id));
}
END_TEST

/* Poll a snapshot until its status is `want` (or 10 s pass). */
static void wait_snapshot(const char *id, const char *key, const char *want)
{
	char path[200];
	struct resp r;

	snprintf(path, sizeof(path), "/api/v2/sandboxes/snapshots/%s", id);
	for (int i = 0; i < 200; i++) {
		ck_assert_int_eq(http(&r, "GET", path, key_hdr(key), NULL), 200);
		if (!strcmp(jstr(&r, "status"), want)) {
			resp_free(&r);
			return;
		}
		resp_free(&r);
		sleep_ms(50);
	}
	ck_abort_msg("snapshot %s never became %s", id, want);
}

/* Capture box into a snapshot called name; its id (static buffer). */
static const char *capture(const char *key, const char *box, const char *body)
{
	static char id[80];
	char path[200];
	struct resp r;

	snprintf(path, sizeof(path), "/api/v2/sandboxes/boxes/%s/snapshot", box);
	ck_assert_int_eq(http(&r, "POST", path, key_hdr(key), body), 201);
	ck_assert_msg(jstr(&r, "id"), "no id in %s", r.body);
	snprintf(id, sizeof(id), "%s", jstr(&r, "id"));
	resp_free(&r);
	wait_snapshot(id, key, "ready");
	return id;
}

/* The value of a sample of /metrics ("sbx_pool_ready{source=\"x\"}"), or -1. */
static long metric(const char *sample)
{
	struct resp r;
	const char *p;
	long v = -1;
	size_t n = strlen(sample);

	ck_assert_int_eq(http(&r, "GET", "/metrics", NULL, NULL), 200);
	for (p = r.body; p && (p = strstr(p, sample)); p += n) {
		if ((p == r.body || p[-1] == '\n') && p[n] == ' ') {
			v = strtol(p + n + 1, NULL, 10);
			break;
		}
	}
	resp_free(&r);
	return v;
}

static void wait_metric(const char *sample, long want)
{
	for (int i = 0; i < 200; i++) {
		if (metric(sample) == want)
			return;
		sleep_ms(50);
	}
	ck_abort_msg("%s never became %ld (it is %ld)", sample, want, metric(sample));
}

START_TEST(test_route_snapshot_pool_and_metrics)
{
	struct api_route r = route("/api/v2/sandboxes/snapshots/abc/pool", 0);
	const char *allow = NULL;

	ck_assert_int_eq(r.kind, ROUTE_SNAPSHOT_POOL);
	ck_assert_str_eq(r.target, "abc");
	ck_assert(api_route_allows(&r, HTTP_PUT, NULL));
	ck_assert(api_route_allows(&r, HTTP_GET, NULL));
	ck_assert(!api_route_allows(&r, HTTP_POST, &allow));
	ck_assert_str_eq(allow, "GET, HEAD, PUT");
	r = route("/metrics", 0);
	ck_assert_int_eq(r.kind, ROUTE_METRICS);
	ck_assert(!api_route_needs_key(&r));
	ck_assert(api_route_allows(&r, HTTP_GET, NULL));
	route("/api/v2/sandboxes/snapshots/abc/pool/x", -ENOENT);
	route("/metrics/x", -ENOENT);
}
END_TEST

#define S(lit) lit, sizeof(lit) - 1

START_TEST(test_snapshot_bodies_are_checked)
{
	struct api_capture_req c;
	struct api_snapshot_req s;
	struct api_error e = {0};
	unsigned n, lim, off;

	ck_assert_int_eq(api_parse_capture(S("{\"name\":\"s1\",\"include_memory\":true,"
					     "\"run_config\":{\"work_dir\":\"/w\"}}"),
					   &c, &e),
			 0);
	ck_assert_str_eq(c.name, "s1");
	ck_assert_int_eq(c.include_memory, 1);
	ck_assert_str_eq(c.run_config, "{\"work_dir\":\"/w\"}");
	api_capture_req_release(&c);
	ck_assert_int_eq(api_parse_capture(S("{}"), &c, &e), -EINVAL);
	ck_assert_int_eq(e.status, 422);
	ck_assert_ptr_nonnull(strstr(e.message, "'name'"));
	ck_assert_int_eq(api_parse_capture(S("{\"name\":\"a b\"}"), &c, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.message, "is not valid"));
	ck_assert_int_eq(
	    api_parse_capture(S("{\"name\":\"x\",\"docker_image\":\"img:1\"}"), &c, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.message, "docker_image"));
	ck_assert_int_eq(api_parse_capture(S("{\"name\":\"x\",\"include_memory\":1}"), &c, &e),
			 -EINVAL);

	ck_assert_int_eq(
	    api_parse_snapshot_create(S("{\"name\":\"py\",\"docker_image\":\"default\","
					"\"fs_capacity_bytes\":0}"),
				      &s, &e),
	    0);
	ck_assert_str_eq(s.docker_image, "default");
	ck_assert_int_eq(s.fs_capacity_bytes, 0);
	api_snapshot_req_release(&s);
	ck_assert_int_eq(api_parse_snapshot_create(S("{\"name\":\"py\"}"), &s, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.message, "docker_image"));

	ck_assert_int_eq(api_parse_pool(S("{\"size\":3}"), 8, &n, &e), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(api_parse_pool(S("{\"size\":9}"), 8, &n, &e), -EINVAL);
	ck_assert_int_eq(api_parse_pool(S("{}"), 8, &n, &e), -EINVAL);
	ck_assert_int_eq(api_parse_pool(S("{\"size\":-1}"), 8, &n, &e), -EINVAL);

	ck_assert_int_eq(api_parse_list_query(NULL, NULL, &lim, &off, &e), 0);
	ck_assert_uint_eq(lim, 50);
	ck_assert_uint_eq(off, 0);
	ck_assert_int_eq(api_parse_list_query("500", "7", &lim, &off, &e), 0);
	ck_assert_uint_eq(lim, 500);
	ck_assert_uint_eq(off, 7);
	ck_assert_int_eq(api_parse_list_query("0", NULL, &lim, &off, &e), -EINVAL);
	ck_assert_int_eq(api_parse_list_query("501", NULL, &lim, &off, &e), -EINVAL);
	ck_assert_int_eq(api_parse_list_query(NULL, "-1", &lim, &off, &e), -EINVAL);
	ck_assert_int_eq(api_parse_list_query("1x", NULL, &lim, &off, &e), -EINVAL);

	ck_assert(api_snapshot_name_is_valid("Python_3.11-slim"));
	ck_assert(!api_snapshot_name_is_valid("-x"));
	ck_assert(!api_snapshot_name_is_valid("a/b"));
	ck_assert(!api_snapshot_name_is_valid(""));
}
END_TEST

START_TEST(test_config_pool_settings)
{
	struct sbxd_config c;
	char *env[] = {"SBX_POOL_SIZE=2", "SBX_SNAPSHOT_POOLS=snap1:1,abc:0", NULL};

	sbxd_config_defaults(&c);
	ck_assert_uint_eq(c.pool_size, 0);
	ck_assert_int_eq(sbxd_config_apply_env(&c, env), 0);
	ck_assert_uint_eq(c.pool_size, 2);
	ck_assert_str_eq(c.snapshot_pools, "snap1:1,abc:0");
	ck_assert_int_eq(sbxd_config_check(&c), 0);
	ck_assert_int_eq(sbxd_config_set(&c, "pool-size", "3", "--pool-size"), 0);
	ck_assert_uint_eq(c.pool_size, 3);
	ck_assert_int_eq(sbxd_config_set(&c, "snapshot-pools", "nosize", "x"), 0);
	ck_assert_int_eq(sbxd_config_check(&c), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err_msg(), "SNAPSHOT:SIZE"));
	ck_assert_int_eq(sbxd_config_set(&c, "snapshot-pools", "a:99", "x"), 0);
	ck_assert_int_eq(sbxd_config_check(&c), -EINVAL);
	ck_assert_int_eq(sbxd_config_set(&c, "snapshot-pools", "", "x"), 0);
	ck_assert_int_eq(sbxd_config_set(&c, "pool-size", "65", "x"), 0);
	ck_assert_int_eq(sbxd_config_check(&c), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err_msg(), "max-sandboxes"));
}
END_TEST

START_TEST(test_server_capture_answers_a_snapshot_that_becomes_ready)
{
	struct resp r;
	char path[200], box_id[64], snap_id[64];
	json_t *inc;

	ck_assert_int_eq(create_box(t.alice,
				    "{\"name\":\"src\",\"run_config\":{\"env_vars\":"
				    "{\"A\":\"1\"}}}",
				    &r),
			 201);
	snprintf(box_id, sizeof(box_id), "%s", jstr(&r, "id"));
	resp_free(&r);
	fake.capture_ms = 20;
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/src/snapshot", key_hdr(t.alice),
			      "{\"name\":\"snap1\"}"),
			 201);
	snprintf(snap_id, sizeof(snap_id), "%s", jstr(&r, "id"));
	ck_assert(api_uuid_is_valid(snap_id));
	/* a quick capture is answered ready at once */
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	ck_assert_str_eq(jstr(&r, "name"), "snap1");
	ck_assert_str_eq(jstr(&r, "source_sandbox_id"), box_id);
	ck_assert_str_eq(jstr(&r, "created_by"), "alice");
	ck_assert_str_eq(jstr(&r, "docker_image"), "default");
	ck_assert_str_eq(jstr(&r, "image_digest"), "sha256:fake");
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "fs_capacity_bytes")),
			 2ll << 30);
	inc = json_object_get(r.json, "included");
	ck_assert_int_eq(json_array_size(inc), 1);
	ck_assert_str_eq(json_string_value(json_array_get(inc, 0)), "filesystem");
	ck_assert(json_is_null(json_object_get(r.json, "memory_snapshot_size_bytes")));
	/* the sandbox's run_config goes with it */
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(r.json, "run_config"), "env_vars"), "A")),
	    "1");
	ck_assert_ptr_nonnull(strstr(jstr(&r, "created_at"), "Z"));
	resp_free(&r);
	ck_assert(!fake.last_capture_memory);
	ck_assert_str_eq(fake.last_capture_parent, "");
	ck_assert(fake_has_snap(snap_id));

	/* GET by id and by name, on both prefixes */
	snprintf(path, sizeof(path), "/v2/sandboxes/snapshots/%s", snap_id);
	ck_assert_int_eq(http(&r, "GET", path, key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/snapshots/snap1", key_hdr(t.alice), NULL), 200);
	ck_assert_str_eq(jstr(&r, "id"), snap_id);
	resp_free(&r);

	/* a slow capture answers building first; the client polls */
	fake.capture_ms = 6000;
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/src/snapshot", key_hdr(t.alice),
			      "{\"name\":\"slow\",\"include_memory\":true}"),
			 201);
	ck_assert_str_eq(jstr(&r, "status"), "building");
	snprintf(snap_id, sizeof(snap_id), "%s", jstr(&r, "id"));
	resp_free(&r);
	/* another capture of the same sandbox meanwhile is refused */
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/src/snapshot", key_hdr(t.alice),
			      "{\"name\":\"third\"}"),
			 409);
	resp_free(&r);
	wait_snapshot(snap_id, t.alice, "ready");
	snprintf(path, sizeof(path), "/api/v2/sandboxes/snapshots/%s", snap_id);
	ck_assert_int_eq(http(&r, "GET", path, key_hdr(t.alice), NULL), 200);
	inc = json_object_get(r.json, "included");
	ck_assert_int_eq(json_array_size(inc), 2);
	ck_assert_str_eq(json_string_value(json_array_get(inc, 1)), "memory");
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "memory_snapshot_size_bytes")),
			 4242);
	resp_free(&r);
	ck_assert(fake.last_capture_memory);
}
END_TEST

START_TEST(test_server_capture_errors_are_clear)
{
	struct resp r;
	const char *id;

	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/nobox/snapshot",
			      key_hdr(t.alice), "{\"name\":\"s\"}"),
			 404);
	resp_free(&r);
	fake.boot_ms = 1500;
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"booting\",\"wait_for_ready\":false}", &r),
			 201);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/booting/snapshot",
			      key_hdr(t.alice), "{\"name\":\"s\"}"),
			 409);
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "only a ready sandbox"));
	resp_free(&r);
	wait_status("booting", t.alice, "ready");
	fake.boot_ms = 100;
	/* bob cannot capture alice's sandbox */
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/booting/snapshot",
			      key_hdr(t.bob), "{\"name\":\"s\"}"),
			 404);
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "POST", "/api/v2/sandboxes/boxes/booting/snapshot", key_hdr(t.alice), "{}"),
	    422);
	resp_free(&r);
	capture(t.alice, "booting", "{\"name\":\"dup\"}");
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/booting/snapshot",
			      key_hdr(t.alice), "{\"name\":\"dup\"}"),
			 409);
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "already exists"));
	resp_free(&r);
	/* the same name for another key is fine */
	ck_assert_int_eq(create_box(t.bob, "{\"name\":\"bobs\"}", &r), 201);
	resp_free(&r);
	capture(t.bob, "bobs", "{\"name\":\"dup\"}");
	/* a failing capture: status failed, with the reason */
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/boxes/booting/snapshot",
			      key_hdr(t.alice), "{\"name\":\"bad-one\"}"),
			 201);
	id = jstr(&r, "id");
	wait_snapshot(id, t.alice, "failed");
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/snapshots/bad-one", key_hdr(t.alice), NULL), 200);
	ck_assert_ptr_nonnull(strstr(jstr(&r, "status_message"), "SHA-256 mismatch"));
	resp_free(&r);
	/* a failed snapshot cannot start sandboxes */
	ck_assert_int_eq(create_box(t.alice, "{\"snapshot_name\":\"bad-one\"}", &r), 409);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_create_from_snapshot_layers_run_config)
{
	struct resp r;
	char snap_id[64], body[300];
	json_t *rc;

	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"base\"}", &r), 201);
	resp_free(&r);
	snprintf(snap_id, sizeof(snap_id), "%s",
		 capture(t.alice, "base",
			 "{\"name\":\"s\",\"run_config\":{\"user\":\"app\",\"work_dir\":\"/srv\","
			 "\"env_vars\":{\"A\":\"snap\",\"B\":\"snap\"}}}"));
	snprintf(body, sizeof(body),
		 "{\"name\":\"child\",\"snapshot_id\":\"%s\",\"run_config\":{\"work_dir\":\"/w\","
		 "\"env_vars\":{\"B\":\"box\"}}}",
		 snap_id);
	ck_assert_int_eq(create_box(t.alice, body, &r), 201);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	ck_assert_str_eq(jstr(&r, "snapshot_id"), snap_id);
	rc = json_object_get(r.json, "run_config");
	ck_assert_str_eq(json_string_value(json_object_get(rc, "user")), "app");
	ck_assert_str_eq(json_string_value(json_object_get(rc, "work_dir")), "/w");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rc, "env_vars"), "A")),
			 "snap");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rc, "env_vars"), "B")),
			 "box");
	resp_free(&r);
	ck_assert_str_eq(fake.last_start_snapshot, snap_id);
	ck_assert(!fake.last_start_restore);
	ck_assert_str_eq(fake.last_start_hostname, "child");

	/* by name; another key's snapshot is not found */
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"child2\",\"snapshot_name\":\"s\"}", &r),
			 201);
	ck_assert_str_eq(jstr(&r, "snapshot_id"), snap_id);
	resp_free(&r);
	ck_assert_int_eq(create_box(t.bob, "{\"snapshot_name\":\"s\"}", &r), 404);
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "snapshot 's' not found"));
	resp_free(&r);
	snprintf(body, sizeof(body), "{\"snapshot_id\":\"%s\"}", snap_id);
	ck_assert_int_eq(create_box(t.bob, body, &r), 404);
	resp_free(&r);

	/* capturing a sandbox started from a snapshot names it as parent */
	capture(t.alice, "child", "{\"name\":\"grandchild\"}");
	ck_assert_str_eq(fake.last_capture_parent, snap_id);
}
END_TEST

START_TEST(test_server_restore_memory_needs_a_memory_snapshot)
{
	struct resp r;
	char fs_id[64], mem_id[64], body[300];

	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"m\",\"vcpus\":2}", &r), 201);
	resp_free(&r);
	snprintf(fs_id, sizeof(fs_id), "%s", capture(t.alice, "m", "{\"name\":\"fs-only\"}"));
	snprintf(mem_id, sizeof(mem_id), "%s",
		 capture(t.alice, "m", "{\"name\":\"with-mem\",\"include_memory\":true}"));
	snprintf(body, sizeof(body), "{\"snapshot_id\":\"%s\",\"restore_memory\":true}", fs_id);
	ck_assert_int_eq(create_box(t.alice, body, &r), 422);
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "holds no memory"));
	resp_free(&r);

	snprintf(body, sizeof(body),
		 "{\"name\":\"resumed\",\"snapshot_id\":\"%s\",\"restore_memory\":true}", mem_id);
	ck_assert_int_eq(create_box(t.alice, body, &r), 201);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	/* the captured shape (the row kept the sandbox's vcpus) */
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "vcpus")), 2);
	resp_free(&r);
	ck_assert_str_eq(fake.last_start_snapshot, mem_id);
	ck_assert(fake.last_start_restore);
	/* resuming cannot change the shape */
	snprintf(body, sizeof(body), "{\"snapshot_id\":\"%s\",\"restore_memory\":true,\"vcpus\":3}",
		 mem_id);
	ck_assert_int_eq(create_box(t.alice, body, &r), 422);
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "shape"));
	resp_free(&r);
	/* a fresh start from a memory snapshot is fine */
	snprintf(body, sizeof(body), "{\"name\":\"fresh\",\"snapshot_id\":\"%s\"}", mem_id);
	ck_assert_int_eq(create_box(t.alice, body, &r), 201);
	resp_free(&r);
	ck_assert(!fake.last_start_restore);
	/* preserve_memory_on_stop is stored and echoed */
	ck_assert_int_eq(
	    create_box(t.alice, "{\"name\":\"pm\",\"preserve_memory_on_stop\":true}", &r), 201);
	ck_assert(json_is_true(json_object_get(r.json, "preserve_memory_on_stop")));
	resp_free(&r);
}
END_TEST

START_TEST(test_server_snapshot_from_an_image)
{
	struct resp r;
	char path[200];

	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/snapshots", key_hdr(t.alice),
			      "{\"name\":\"img\",\"docker_image\":\"default\","
			      "\"fs_capacity_bytes\":4294967296}"),
			 201);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	ck_assert_str_eq(jstr(&r, "docker_image"), "default");
	ck_assert_str_eq(jstr(&r, "image_digest"), "sha256:image");
	ck_assert(json_is_null(json_object_get(r.json, "source_sandbox_id")));
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "fs_capacity_bytes")),
			 4ll << 30);
	ck_assert(fake_has_snap(jstr(&r, "id")));
	snprintf(path, sizeof(path), "{\"name\":\"from-img\",\"snapshot_id\":\"%s\"}",
		 jstr(&r, "id"));
	resp_free(&r);
	ck_assert_int_eq(create_box(t.alice, path, &r), 201);
	/* the sandbox gets the snapshot's disk size */
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "fs_capacity_bytes")),
			 4ll << 30);
	resp_free(&r);

	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/snapshots", key_hdr(t.alice),
			      "{\"name\":\"x\",\"docker_image\":\"python:3.12\","
			      "\"fs_capacity_bytes\":4294967296}"),
			 422);
	ck_assert_ptr_nonnull(strstr(detail(&r, "message"), "it has: default"));
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/snapshots", key_hdr(t.alice),
			      "{\"name\":\"x\",\"docker_image\":\"../default\","
			      "\"fs_capacity_bytes\":0}"),
			 422);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/snapshots", key_hdr(t.alice),
			      "{\"name\":\"img\",\"docker_image\":\"default\","
			      "\"fs_capacity_bytes\":0}"),
			 409);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "POST", "/api/v2/sandboxes/snapshots", key_hdr(t.alice),
			      "{\"name\":\"huge\",\"docker_image\":\"default\","
			      "\"fs_capacity_bytes\":1099511627776}"),
			 422);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_list_snapshots_filters_and_pages)
{
	struct resp r;
	json_t *arr;

	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"lb\"}", &r), 201);
	resp_free(&r);
	fake.capture_ms = 0;
	capture(t.alice, "lb", "{\"name\":\"web-1\"}");
	capture(t.alice, "lb", "{\"name\":\"web-2\"}");
	capture(t.alice, "lb", "{\"name\":\"db-1\"}");
	ck_assert_int_eq(create_box(t.bob, "{\"name\":\"bb\"}", &r), 201);
	resp_free(&r);
	capture(t.bob, "bb", "{\"name\":\"web-bob\"}");

	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/snapshots", key_hdr(t.alice), NULL),
			 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "snapshots")), 3);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 3);
	ck_assert(json_is_null(json_object_get(r.json, "next_cursor")));
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/snapshots?name_contains=WEB",
			      key_hdr(t.alice), NULL),
			 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "snapshots")), 2);
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/snapshots?limit=2", key_hdr(t.alice), NULL), 200);
	arr = json_object_get(r.json, "snapshots");
	ck_assert_int_eq(json_array_size(arr), 2);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "next_cursor")), "2");
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/snapshots?limit=2&offset=2", key_hdr(t.alice), NULL),
	    200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "snapshots")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "offset")), 2);
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/snapshots?limit=0", key_hdr(t.alice), NULL), 422);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/snapshots", key_hdr(t.admin), NULL),
			 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "snapshots")), 4);
	resp_free(&r);
	ck_assert_int_eq(
	    http(&r, "GET", "/api/v2/sandboxes/snapshots/web-bob", key_hdr(t.alice), NULL), 404);
	resp_free(&r);
}
END_TEST

START_TEST(test_server_delete_snapshot_keeps_its_sandboxes)
{
	struct resp r;
	char id[64], path[200], body[200];

	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"d0\"}", &r), 201);
	resp_free(&r);
	snprintf(id, sizeof(id), "%s", capture(t.alice, "d0", "{\"name\":\"gone\"}"));
	snprintf(body, sizeof(body), "{\"name\":\"user-of\",\"snapshot_id\":\"%s\"}", id);
	ck_assert_int_eq(create_box(t.alice, body, &r), 201);
	resp_free(&r);
	snprintf(path, sizeof(path), "/api/v2/sandboxes/snapshots/%s", id);
	ck_assert_int_eq(http(&r, "DELETE", path, key_hdr(t.bob), NULL), 404);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "DELETE", path, key_hdr(t.alice), NULL), 204);
	resp_free(&r);
	ck_assert(!fake_has_snap(id));
	ck_assert_int_eq(http(&r, "GET", path, key_hdr(t.alice), NULL), 404);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "DELETE", path, key_hdr(t.alice), NULL), 404);
	resp_free(&r);
	/* its sandbox runs on */
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes/user-of", key_hdr(t.alice), NULL),
			 200);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	ck_assert_str_eq(jstr(&r, "snapshot_id"), id);
	resp_free(&r);
	/* and the name is free again */
	capture(t.alice, "d0", "{\"name\":\"gone\"}");
}
END_TEST

START_TEST(test_server_delete_box_during_capture_keeps_the_snapshot)
{
	struct resp r;
	struct bg_req snap;
	char id[64] = "", vm[64];
	unsigned begun = 0, done = 0;

	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"short\"}", &r), 201);
	snprintf(vm, sizeof(vm), "%s", jstr(&r, "id"));
	resp_free(&r);
	fake.capture_ms = 1500;
	/* The POST waits for the capture (up to 5 s): a separate client sends
	 * it and hands back the snapshot's id, so the DELETE can come while
	 * the capture runs. */
	bg_start(&snap, "POST", "/api/v2/sandboxes/boxes/short/snapshot", t.alice,
		 "{\"name\":\"last\"}");
	/* the capture has begun (and takes 1.5 s) */
	for (int i = 0; i < 500; i++) {
		fake_captures(&begun, &done);
		if (begun)
			break;
		sleep_ms(10);
	}
	ck_assert_uint_eq(begun, 1);
	ck_assert_uint_eq(done, 0);
	/* waits for the capture, then deletes */
	ck_assert_int_eq(
	    http(&r, "DELETE", "/api/v2/sandboxes/boxes/short", key_hdr(t.alice), NULL), 204);
	resp_free(&r);
	fake_captures(&begun, &done);
	ck_assert_uint_eq(done, 1); /* the delete did wait for it */
	ck_assert(!fake_has(vm));
	ck_assert_msg(bg_finish(&snap) == 201, "the capture's POST got %ld, not 201",
		      snap.r.status);
	ck_assert_ptr_nonnull(jstr(&snap.r, "id"));
	snprintf(id, sizeof(id), "%s", jstr(&snap.r, "id"));
	resp_free(&snap.r);
	wait_snapshot(id, t.alice, "ready");
}
END_TEST

START_TEST(test_server_metrics_need_no_key_and_show_pools)
{
	struct resp r;

	ck_assert_int_eq(http(&r, "GET", "/metrics", NULL, NULL), 200);
	ck_assert_ptr_nonnull(strstr(r.headers, "text/plain; version=0.0.4"));
	ck_assert_ptr_nonnull(strstr(r.body, "# TYPE sbx_pool_ready gauge\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "# TYPE sbx_pool_target gauge\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "sbx_sandboxes{state=\"ready\"} 0\n"));
	resp_free(&r);
	sbxd_api_start_pools(t.api, 2, NULL);
	ck_assert_int_eq(metric("sbx_pool_target{source=\"image:default\"}"), 2);
	wait_metric("sbx_pool_ready{source=\"image:default\"}", 2);
}
END_TEST

START_TEST(test_metrics_escape_label_values)
{
	struct metrics_buf b = {0};

	metrics_family(&b, "m", "gauge", "help");
	metrics_sample(&b, "m", (const char *const[]){"a", "x\"y\\z\n", "b", "2", NULL}, 3);
	metrics_sample(&b, "m", NULL, 0.5);
	ck_assert_str_eq(b.p, "# HELP m help\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\n\",b=\"2\"} 3\n"
			      "m 0.5\n");
	free(b.p);
}
END_TEST

START_TEST(test_server_pool_hands_out_a_fresh_vm_and_refills)
{
	struct resp r;
	char first_vm[64], id[64];
	struct store_box b;
	unsigned starts;

	sbxd_api_start_pools(t.api, 1, NULL);
	wait_metric("sbx_pool_ready{source=\"image:default\"}", 1);
	starts = fake.starts;
	fake.boot_ms = 2000; /* a boot now would show */
	{
		double t0 = now_s();

		ck_assert_int_eq(create_box(t.alice, "{\"name\":\"pooled\"}", &r), 201);
		ck_assert_msg(now_s() - t0 < 1.0, "a pooled create waited for a boot");
	}
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	snprintf(id, sizeof(id), "%s", jstr(&r, "id"));
	resp_free(&r);
	/* it got the sandbox's identity; no VM was started for it */
	ck_assert_str_eq(fake.last_fixup_hostname, "pooled");
	ck_assert_int_eq(store_box_get(t.st, id, STORE_OWNER_ANY, &b), 0);
	ck_assert_str_eq(b.vm_name, fake.last_fixup_vm);
	ck_assert_str_ne(b.vm_name, b.id);
	snprintf(first_vm, sizeof(first_vm), "%s", b.vm_name);
	store_box_release(&b);
	ck_assert_int_eq(metric("sbx_pool_ready{source=\"image:default\"}"), 0);
	/* the pool refills in the background with a new VM */
	wait_metric("sbx_pool_ready{source=\"image:default\"}", 1);
	ck_assert_uint_eq(fake.starts, starts + 1);
	/* pool VMs are not sandboxes */
	ck_assert_int_eq(http(&r, "GET", "/api/v2/sandboxes/boxes", key_hdr(t.admin), NULL), 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "sandboxes")), 1);
	resp_free(&r);

	/* other resources than the pool's shape boot a VM of their own */
	fake.boot_ms = 100;
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"big\",\"vcpus\":2}", &r), 201);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	resp_free(&r);
	ck_assert_int_eq(store_box_get(t.st, "big", STORE_OWNER_ANY, &b), 0);
	ck_assert_str_eq(b.vm_name, b.id);
	store_box_release(&b);
	ck_assert_int_eq(metric("sbx_pool_ready{source=\"image:default\"}"), 1);

	/* the VM it handed out is the sandbox's: deleting it destroys it */
	ck_assert_int_eq(
	    http(&r, "DELETE", "/api/v2/sandboxes/boxes/pooled", key_hdr(t.alice), NULL), 204);
	resp_free(&r);
	ck_assert(!fake_has(first_vm));
}
END_TEST

START_TEST(test_server_pool_never_hands_out_a_vm_twice)
{
	struct resp r;
	struct store_box a, b;

	fake.boot_ms = 50;
	sbxd_api_start_pools(t.api, 1, NULL);
	wait_metric("sbx_pool_ready{source=\"image:default\"}", 1);
	fake.boot_ms = 1500; /* the refill takes a while */
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"one\",\"wait_for_ready\":false}", &r),
			 201);
	resp_free(&r);
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"two\",\"wait_for_ready\":false}", &r),
			 201);
	resp_free(&r);
	wait_status("one", t.alice, "ready");
	wait_status("two", t.alice, "ready");
	ck_assert_int_eq(store_box_get(t.st, "one", STORE_OWNER_ANY, &a), 0);
	ck_assert_int_eq(store_box_get(t.st, "two", STORE_OWNER_ANY, &b), 0);
	ck_assert_str_ne(a.vm_name, b.vm_name);
	ck_assert_str_ne(a.vm_name, a.id); /* pooled */
	ck_assert_str_eq(b.vm_name, b.id); /* booted */
	store_box_release(&a);
	store_box_release(&b);
}
END_TEST

START_TEST(test_server_pool_vm_that_fails_fixup_is_replaced_by_a_boot)
{
	struct resp r;
	struct store_box b;
	char vm[80];

	fake.boot_ms = 50;
	sbxd_api_start_pools(t.api, 1, NULL);
	wait_metric("sbx_pool_ready{source=\"image:default\"}", 1);
	fake.fixup_fails = true;
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"fallback\"}", &r), 201);
	ck_assert_str_eq(jstr(&r, "status"), "ready");
	resp_free(&r);
	snprintf(vm, sizeof(vm), "%s", fake.last_fixup_vm);
	ck_assert(!fake_has(vm)); /* the pool VM was destroyed */
	ck_assert_int_eq(store_box_get(t.st, "fallback", STORE_OWNER_ANY, &b), 0);
	ck_assert_str_eq(b.vm_name, b.id);
	ck_assert(fake_has(b.id));
	store_box_release(&b);
}
END_TEST

START_TEST(test_server_pool_replaces_a_vm_whose_agent_stopped)
{
	char dead[80] = "";

	fake.boot_ms = 50;
	sbxd_api_start_pools(t.api, 1, NULL);
	wait_metric("sbx_pool_ready{source=\"image:default\"}", 1);
	/* the pooled VM is the only one: make its agent stop answering */
	{
		char **names = NULL;

		fake_list(NULL, &names);
		ck_assert_ptr_nonnull(names[0]);
		ck_assert_ptr_null(names[1]);
		snprintf(dead, sizeof(dead), "%s", names[0]);
		fake_free_list(names);
	}
	pthread_mutex_lock(&fake.lock);
	snprintf(fake.dead, sizeof(fake.dead), "%s", dead);
	pthread_mutex_unlock(&fake.lock);
	for (int i = 0; i < 100 && fake_has(dead); i++)
		sleep_ms(50);
	ck_assert_msg(!fake_has(dead), "the dead pool VM was not destroyed");
	wait_metric("sbx_pool_ready{source=\"image:default\"}", 1);
	ck_assert_uint_eq(fake_count(), 1);
}
END_TEST

START_TEST(test_server_snapshot_pool_through_the_api)
{
	struct resp r;
	char id[64], path[200], body[200], sample[200];
	struct store_box b;

	fake.boot_ms = 50;
	ck_assert_int_eq(create_box(t.alice, "{\"name\":\"ps\"}", &r), 201);
	resp_free(&r);
	snprintf(id, sizeof(id), "%s", capture(t.alice, "ps", "{\"name\":\"pooled-snap\"}"));
	snprintf(path, sizeof(path), "/api/v2/sandboxes/snapshots/%s/pool", id);
	snprintf(sample, sizeof(sample), "sbx_pool_ready{source=\"snapshot:%s\"}", id);
	ck_assert_int_eq(http(&r, "PUT", path, key_hdr(t.bob), "{\"size\":1}"), 404);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "PUT", path, key_hdr(t.alice), "{\"size\":99}"), 422);
	resp_free(&r);
	ck_assert_int_eq(http(&r, "PUT", path, key_hdr(t.alice), "{\"size\":2}"), 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "size")), 2);
	resp_free(&r);
	wait_metric(sample, 2);
	ck_assert_str_eq(fake.last_start_snapshot, id);
	snprintf(path, sizeof(path), "/api/v2/sandboxes/snapshots/%s", id);
	ck_assert_int_eq(http(&r, "GET", path, key_hdr(t.alice), NULL), 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "pool_size")), 2);
	resp_free(&r);

	snprintf(body, sizeof(body), "{\"name\":\"from-pool\",\"snapshot_id\":\"%s\"}", id);
	ck_assert_int_eq(create_box(t.alice, body, &r), 201);
	resp_free(&r);
	ck_assert_int_eq(store_box_get(t.st, "from-pool", STORE_OWNER_ANY, &b), 0);
	ck_assert_str_ne(b.vm_name, b.id);
	ck_assert_str_eq(b.snapshot_id, id);
	store_box_release(&b);
	ck_assert_str_eq(fake.last_fixup_hostname, "from-pool");
	wait_metric(sample, 2);

	/* deleting the snapshot drains its pool; its sandbox stays */
	ck_assert_int_eq(http(&r, "DELETE", path, key_hdr(t.alice), NULL), 204);
	resp_free(&r);
	for (int i = 0; i < 100 && metric(sample) != -1; i++)
		sleep_ms(50);
	ck_assert_int_eq(metric(sample), -1);
	for (int i = 0; i < 100 && fake_count() != 2; i++)
		sleep_ms(50);
	ck_assert_uint_eq(fake_count(), 2); /* ps and from-pool */
}
END_TEST

START_TEST(test_server_pools_end_with_sbxd_and_restarts_trust_none)
{
	char **names = NULL;

	fake.boot_ms = 50;
	sbxd_api_start_pools(t.api, 2, NULL);
	wait_metric("sbx_pool_ready{source=\"image:default\"}", 2);
	ck_assert_uint_eq(fake_count(), 2);
	/* sbxd stops: its pooled VMs are destroyed */
	http_server_stop(t.srv);
	pthread_join(t.thread, NULL);
	t.mgr = sbxd_mgr_free(t.mgr);
	ck_assert_uint_eq(fake_count(), 0);
	/* a VM nobody owns (a pool VM of an sbxd killed with -9) is destroyed
	 * by the next start's reconcile */
	fake_add("0b9c2d4e-1f00-4a2b-8c3d-4e5f60718293");
	{
		struct sbxd_mgr_config mc = {.st = t.st, .vm = &fake_ops};

		ck_assert_int_eq(sbxd_mgr_new(&mc, &t.mgr), 0);
		ck_assert_int_eq(sbxd_mgr_reconcile(t.mgr), 0);
	}
	fake_list(NULL, &names);
	ck_assert_ptr_null(names[0]);
	fake_free_list(names);
	ck_assert_int_eq(pthread_create(&t.thread, NULL, serve_thread, NULL), 0);
}
END_TEST

START_TEST(test_reconcile_snapshots_fails_building_and_finishes_deleting)
{
	struct store_snapshot s[3], got;
	const char *names[] = {"was-building", "was-deleting", "lost-manifest"};
	const enum snapshot_state st[] = {SNAPSHOT_BUILDING, SNAPSHOT_DELETING, SNAPSHOT_READY};
	struct store_key k;
	char hash[SBXD_KEY_HASH_LEN + 1];

	sbxd_key_hash(t.alice, strlen(t.alice), hash);
	ck_assert_int_eq(store_key_find(t.st, hash, &k), 0);
	for (int i = 0; i < 3; i++) {
		char uuid[STORE_ID_LEN + 1];

		memset(&s[i], 0, sizeof(s[i]));
		ck_assert_int_eq(sbxd_uuid4(uuid), 0);
		snprintf(s[i].id, sizeof(s[i].id), "%s", uuid);
		s[i].name = (char *)names[i];
		s[i].owner = k.id;
		s[i].state = st[i];
		s[i].kind = (char *)"fs";
		ck_assert_int_eq(store_snapshot_insert(t.st, &s[i]), 0);
	}
	store_key_release(&k);
	strv_add(fake.snaps, s[0].id); /* a half-written manifest */
	strv_add(fake.snaps, s[1].id);
	ck_assert_int_eq(sbxd_mgr_reconcile_snapshots(t.mgr), 0);
	ck_assert_int_eq(store_snapshot_get(t.st, s[0].id, STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, SNAPSHOT_FAILED);
	ck_assert_ptr_nonnull(strstr(got.status_message, "sbxd stopped"));
	store_snapshot_release(&got);
	ck_assert(!fake_has_snap(s[0].id));
	ck_assert_int_eq(store_snapshot_get(t.st, s[1].id, STORE_OWNER_ANY, &got), -ENOENT);
	ck_assert(!fake_has_snap(s[1].id));
	ck_assert_int_eq(store_snapshot_get(t.st, s[2].id, STORE_OWNER_ANY, &got), 0);
	ck_assert_int_eq(got.state, SNAPSHOT_FAILED);
	ck_assert_ptr_nonnull(strstr(got.status_message, "manifest is gone"));
	store_snapshot_release(&got);
}
END_TEST

START_TEST(test_zygote_is_prepared_in_the_background)
{
	sbxd_mgr_prepare_zygote(t.mgr, t.image, 1, 512, 2ull << 30);
	for (int i = 0; i < 100 && !fake.zygotes; i++)
		sleep_ms(20);
	ck_assert_uint_eq(fake.zygotes, 1);
}
END_TEST

static Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *routes = tcase_create("routes"), *val = tcase_create("validation"),
	      *cfg = tcase_create("config"), *srv = tcase_create("server"),
	      *rec = tcase_create("reconcile"), *snap = tcase_create("snapshots"),
	      *pools = tcase_create("pools");

	tcase_add_test(routes, test_route_serves_both_prefixes);
	tcase_add_test(routes, test_route_dataplane_needs_a_uuid_and_a_known_op);
	tcase_add_test(routes, test_route_rejects_unknown_and_malformed_paths);
	tcase_add_test(routes, test_route_methods_and_allow_lists);
	tcase_add_test(routes, test_route_snapshot_pool_and_metrics);
	suite_add_tcase(s, routes);

	tcase_add_test(val, test_names_follow_the_documented_rule);
	tcase_add_test(val, test_api_key_header_is_trimmed_and_bounded);
	tcase_add_test(val, test_host_header_and_dataplane_url);
	tcase_add_test(val, test_create_defaults_and_full_body);
	tcase_add_test(val, test_create_rejects_wrong_types_with_the_field_name);
	tcase_add_test(val, test_create_bounds_labels_and_body_size);
	tcase_add_test(val, test_resources_defaults_rounding_and_bounds);
	tcase_add_test(val, test_quota_messages_name_what_ran_out);
	tcase_add_test(val, test_key_quota_messages_name_the_key_and_what_ran_out);
	tcase_add_test(val, test_lifetime_default_cap_and_bounds);
	tcase_add_test(val, test_update_parse_and_run_config_merge);
	tcase_add_test(val, test_snapshot_bodies_are_checked);
	tcase_add_test(val, test_metrics_escape_label_values);
	suite_add_tcase(s, val);

	tcase_add_test(cfg, test_config_file_keys_comments_quotes);
	tcase_add_test(cfg, test_config_errors_name_file_line_and_key);
	tcase_add_test(cfg, test_config_env_overrides_file_and_flag_overrides_env);
	tcase_add_test(cfg, test_config_dump_lists_every_setting);
	tcase_add_test(cfg, test_config_pool_settings);
	suite_add_tcase(s, cfg);

	tcase_add_checked_fixture(srv, setup_server, teardown_server);
	tcase_set_timeout(srv, 30);
	tcase_add_test(srv, test_server_healthz_needs_no_key);
	tcase_add_test(srv, test_server_refuses_missing_wrong_and_revoked_keys);
	tcase_add_test(srv, test_server_key_header_name_is_case_insensitive);
	tcase_add_test(srv, test_server_create_waits_for_ready_and_returns_the_sandbox);
	tcase_add_test(srv, test_server_create_without_wait_answers_provisioning_at_once);
	tcase_add_test(srv, test_server_keeps_serving_while_a_vm_boots);
	tcase_add_test(srv, test_server_create_times_out_with_408_and_boot_goes_on);
	tcase_add_test(srv, test_server_boot_failure_is_503_and_status_failed);
	tcase_add_test(srv, test_server_owner_isolation_and_admin_sees_all);
	tcase_add_test(srv, test_server_rename_conflict_and_validation);
	tcase_add_test(srv, test_server_delete_destroys_the_vm_and_rows);
	tcase_add_test(srv, test_server_delete_during_boot_cancels_it);
	tcase_add_test(srv, test_server_errors_use_the_detail_body);
	tcase_add_test(srv, test_server_stop_saves_and_start_restores_the_same_vm);
	tcase_add_test(srv, test_server_stop_with_memory_resumes_it);
	tcase_add_test(srv, test_server_stop_start_conflicts_and_delete_of_a_stopped_box);
	tcase_add_test(srv, test_server_idle_ttl_stops_and_delete_after_stop_deletes);
	tcase_add_test(srv, test_server_activity_postpones_the_idle_ttl);
	tcase_add_test(srv, test_server_max_lifetime_deletes_ready_and_stopped_sandboxes);
	tcase_add_test(srv, test_server_a_running_command_keeps_a_sandbox_from_its_idle_ttl);
	tcase_add_test(srv, test_reconcile_finishes_or_rolls_back_stops_and_starts);
	tcase_add_test(srv, test_server_quota_is_429);
	tcase_add_test(srv, test_server_dataplane_routes_to_the_registered_handler);
	tcase_add_test(srv, test_server_dataplane_of_a_booting_sandbox_is_not_ready);
	tcase_add_test(srv, test_server_websocket_upgrade_is_checked_and_501_without_handler);
	suite_add_tcase(s, srv);

	tcase_add_checked_fixture(rec, setup_server, teardown_server);
	tcase_set_timeout(rec, 30);
	tcase_add_test(rec, test_reconcile_adopts_fails_and_cleans_up);
	tcase_add_test(rec, test_reconcile_snapshots_fails_building_and_finishes_deleting);
	suite_add_tcase(s, rec);

	tcase_add_checked_fixture(snap, setup_server, teardown_server);
	tcase_set_timeout(snap, 30);
	tcase_add_test(snap, test_server_capture_answers_a_snapshot_that_becomes_ready);
	tcase_add_test(snap, test_server_capture_errors_are_clear);
	tcase_add_test(snap, test_server_create_from_snapshot_layers_run_config);
	tcase_add_test(snap, test_server_restore_memory_needs_a_memory_snapshot);
	tcase_add_test(snap, test_server_snapshot_from_an_image);
	tcase_add_test(snap, test_server_list_snapshots_filters_and_pages);
	tcase_add_test(snap, test_server_delete_snapshot_keeps_its_sandboxes);
	tcase_add_test(snap, test_server_delete_box_during_capture_keeps_the_snapshot);
	tcase_add_test(snap, test_zygote_is_prepared_in_the_background);
	suite_add_tcase(s, snap);

	tcase_add_checked_fixture(pools, setup_server, teardown_server);
	tcase_set_timeout(pools, 30);
	tcase_add_test(pools, test_server_metrics_need_no_key_and_show_pools);
	tcase_add_test(pools, test_server_pool_hands_out_a_fresh_vm_and_refills);
	tcase_add_test(pools, test_server_pool_never_hands_out_a_vm_twice);
	tcase_add_test(pools, test_server_pool_vm_that_fails_fixup_is_replaced_by_a_boot);
	tcase_add_test(pools, test_server_pool_replaces_a_vm_whose_agent_stopped);
	tcase_add_test(pools, test_server_snapshot_pool_through_the_api);
	tcase_add_test(pools, test_server_pools_end_with_sbxd_and_restarts_trust_none);
	suite_add_tcase(s, pools);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(api_suite());
	int failed;

	log_set_level(LOG_LVL_WARN);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
