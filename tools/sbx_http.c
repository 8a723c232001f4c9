/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_http.c - control-plane requests over libcurl and the sentences that
 * explain their failures.
 *
 * The API's own words are used wherever it gives them (detail.message);
 * sbx adds only what a person needs to act: which sbxd it tried to reach,
 * and where the key comes from when it was refused.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "tools/sbx.h"
#include "tools/sbx_http.h"

#define RESP_MAX (16u << 20)
#define CONNECT_TIMEOUT_S 10L

static struct {
	CURL *curl;
	const struct sbx_config *cfg;
	char *base;
	char errbuf[CURL_ERROR_SIZE];
} http;

void sbx_resp_release(struct sbx_resp *r)
{
	free(r->body);
	json_decref(r->json);
	*r = (struct sbx_resp){0};
}

static bool has_suffix(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && !strncmp(s + len - n, suffix, n);
}

char *sbx_api_base(const char *endpoint)
{
	size_t len = strlen(endpoint), scheme = strncmp(endpoint, "https://", 8) ? 7 : 8;
	char *p = NULL;

	if (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)) {
		sbx_error_set_final(-EINVAL, "the endpoint '%s' is not an http:// or https:// URL",
				    endpoint);
		return NULL;
	}
	if (len && endpoint[len - 1] == '/')
		len--;
	if (has_suffix(endpoint, len, "/api/v2/sandboxes"))
		len -= strlen("/api/v2/sandboxes");
	else if (has_suffix(endpoint, len, "/api/v1"))
		len -= strlen("/api/v1");
	else if (has_suffix(endpoint, len, "/api"))
		len -= strlen("/api");
	if (len <= scheme || endpoint[scheme] == '/') {
		sbx_error_set_final(-EINVAL, "the endpoint '%s' has no host", endpoint);
		return NULL;
	}
	if (asprintf(&p, "%.*s/api/v2/sandboxes", (int)len, endpoint) < 0)
		return NULL;
	return p;
}

char *sbx_url_escape(const char *s)
{
	/* libcurl (>= 7.82) escapes without a handle */
	char *e = curl_easy_escape(NULL, s, 0), *out;

	if (!e)
		return NULL;
	out = strdup(e); /* callers free() it; curl's memory goes back to curl */
	curl_free(e);
	return out;
}

char *sbx_dataplane_file_url(const char *dataplane_url, const char *op, const char *path)
{
	_cleanup_free_ char *esc = sbx_url_escape(path);
	size_t len = strlen(dataplane_url);
	char *p = NULL;

	if (!esc)
		return NULL;
	while (len && dataplane_url[len - 1] == '/')
		len--;
	if (asprintf(&p, "%.*s/%s?path=%s", (int)len, dataplane_url, op, esc) < 0)
		return NULL;
	return p;
}

static const char *reason_phrase(long status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 422:
		return "Unprocessable Entity";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Error";
	}
}

/* The "; "-joined msg of each element of a FastAPI-style detail array. */
static char *join_msgs(const json_t *arr)
{
	char *out = NULL;
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e)
	{
		const char *m = json_string_value(json_object_get(e, "msg"));
		char *n = NULL;

		if (!m)
			continue;
		if (asprintf(&n, "%s%s%s", out ? out : "", out ? "; " : "", m) < 0) {
			free(out);
			return NULL;
		}
		free(out);
		out = n;
	}
	return out;
}

int sbx_api_error(long status, const char *body, size_t len, char **ret_type, char **ret_msg)
{
	json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *detail = json_object_get(j, "detail");
	char *type = NULL, *msg = NULL;

	if (json_is_object(detail)) {
		const char *t = json_string_value(json_object_get(detail, "error"));
		const char *m = json_string_value(json_object_get(detail, "message"));
		const char *id = json_string_value(json_object_get(detail, "error_id"));

		type = t ? strdup(t) : NULL;
		if (m && id && *id) {
			if (asprintf(&msg, "%s (error_id=%s)", m, id) < 0)
				msg = NULL;
		} else if (m) {
			msg = strdup(m);
		}
	} else if (json_is_array(detail) && json_array_size(detail)) {
		msg = join_msgs(detail);
	} else if (json_is_string(detail)) {
		msg = strdup(json_string_value(detail));
	}
	json_decref(j);
	if (!msg && asprintf(&msg, "HTTP %ld: %s", status, reason_phrase(status)) < 0)
		msg = NULL;
	if (!msg) {
		free(type);
		return -ENOMEM;
	}
	*ret_type = type;
	*ret_msg = msg;
	return 0;
}

int sbx_http_init(const struct sbx_config *cfg)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return err_set(-ENOMEM, "cannot initialise libcurl");
	http.cfg = cfg;
	http.base = sbx_api_base(cfg->endpoint);
	if (!http.base)
		return -EINVAL;
	http.curl = curl_easy_init();
	if (!http.curl)
		return err_set(-ENOMEM, "cannot initialise libcurl");
	return 0;
}

void sbx_http_cleanup(void)
{
	if (http.curl)
		curl_easy_cleanup(http.curl);
	free(http.base);
	http.curl = NULL;
	http.base = NULL;
	curl_global_cleanup();
}

const struct sbx_config *sbx_http_config(void)
{
	return http.cfg;
}

int sbx_http_need_key(void)
{
	if (http.cfg && http.cfg->api_key)
		return 0;
	return sbx_error_set_final(-ENOKEY,
				   "no API key: set SBX_API_KEY, pass --api-key, or run "
				   "'sbx config set api_key KEY' (create a key on the server with "
				   "'sbxd key create')");
}

CURL *sbx_http_handle(struct curl_slist **ret_headers)
{
	struct curl_slist *h = NULL;
	_cleanup_free_ char *kh = NULL;

	curl_easy_reset(http.curl);
	if (http.cfg->api_key) {
		if (asprintf(&kh, "X-Api-Key: %s", http.cfg->api_key) < 0)
			return NULL;
		h = curl_slist_append(h, kh);
		if (!h)
			return NULL;
	}
	http.errbuf[0] = '\0';
	curl_easy_setopt(http.curl, CURLOPT_ERRORBUFFER, http.errbuf);
	curl_easy_setopt(http.curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(http.curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(http.curl, CURLOPT_USERAGENT, "sbx");
	curl_easy_setopt(http.curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(http.curl, CURLOPT_VERBOSE, arg_verbose >= 3 ? 1L : 0L);
	*ret_headers = h;
	return http.curl;
}

int sbx_http_transport_error(CURLcode rc, CURL *c, long timeout_s)
{
	const char *ep = http.cfg->endpoint;
	long oserr = 0;
	char why[256];

	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		if (oserr == 0)
			oserr = ECONNREFUSED;
		snprintf(why, sizeof(why), "%s", strerror((int)oserr));
		why[0] = (char)tolower((unsigned char)why[0]);
		if (oserr == ECONNREFUSED)
			return sbx_error_set_final(-ECONNREFUSED,
						   "cannot reach sbxd at %s: %s (is it running? "
						   "start it with 'make run')",
						   ep, why);
		return sbx_error_set_final(-(int)oserr, "cannot reach sbxd at %s: %s", ep, why);
	case CURLE_COULDNT_RESOLVE_HOST:
		return sbx_error_set_final(-EHOSTUNREACH, "cannot reach sbxd at %s: unknown host",
					   ep);
	case CURLE_OPERATION_TIMEDOUT:
		if (timeout_s)
			return sbx_error_set_final(
			    -ETIMEDOUT, "sbxd at %s did not answer within %ld s", ep, timeout_s);
		return sbx_error_set_final(-ETIMEDOUT, "sbxd at %s stopped answering (%s)", ep,
					   http.errbuf[0] ? http.errbuf : "timeout");
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return sbx_error_set_final(-ECONNRESET, "the connection to sbxd at %s broke: %s",
					   ep,
					   http.errbuf[0] ? http.errbuf : curl_easy_strerror(rc));
	default:
		return sbx_error_set_final(-EIO, "request to sbxd at %s failed: %s", ep,
					   http.errbuf[0] ? http.errbuf : curl_easy_strerror(rc));
	}
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct sbx_resp *r = ud;
	size_t add = size * n;
	char *nb;

	if (r->len + add > RESP_MAX)
		return 0;
	nb = realloc(r->body, r->len + add + 1);
	if (!nb)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, add);
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

int sbx_api_call(const char *method, const char *path, json_t *body, long timeout_s,
		 struct sbx_resp *ret)
{
	_cleanup_free_ char *url = NULL, *text = NULL;
	struct curl_slist *h = NULL;
	CURLcode rc;
	CURL *c;
	int r = 0;

	*ret = (struct sbx_resp){0};
	if (asprintf(&url, "%s%s", http.base, path) < 0)
		return err_set(-ENOMEM, "out of memory");
	c = sbx_http_handle(&h);
	if (!c)
		return err_set(-ENOMEM, "out of memory");
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text) {
			curl_slist_free_all(h);
			return err_set(-ENOMEM, "out of memory");
		}
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, ret);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	log_debug("%s %s", method, url);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		r = sbx_http_transport_error(rc, c, timeout_s);
		sbx_resp_release(ret);
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ret->status);
		if (ret->body)
			ret->json = json_loadb(ret->body, ret->len, 0, NULL);
		log_debug("%s %s: %ld", method, url, ret->status);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	return r;
}

int sbx_resp_check(const struct sbx_resp *r)
{
	_cleanup_free_ char *type = NULL, *msg = NULL;
	int err;

	if (r->status >= 200 && r->status < 300)
		return 0;
	if (sbx_api_error(r->status, r->body, r->len, &type, &msg) < 0)
		return err_set(-ENOMEM, "out of memory");
	switch (r->status) {
	case 404:
		err = -ENOENT;
		break;
	case 401:
	case 403:
		return sbx_error_set_final(
		    -EACCES,
		    "sbxd refused the API key from %s: %s (check "
		    "--api-key, SBX_API_KEY or 'sbx config')",
		    http.cfg->api_key_from ? http.cfg->api_key_from : "nowhere", msg);
	case 409:
		err = -EEXIST;
		break;
	case 400:
	case 422:
		err = -EINVAL;
		break;
	case 408:
		err = -ETIMEDOUT;
		break;
	case 429:
	case 503:
		err = -EAGAIN;
		break;
	default:
		err = -EIO;
	}
	return err_set(err, "%s", msg);
}

const char *sbx_json_str(const json_t *obj, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : def;
}

int sbx_box_get(const char *name, json_t **ret)
{
	_cleanup_free_ char *esc = sbx_url_escape(name), *path = NULL;
	struct sbx_resp r;
	int rc;

	if (!esc || asprintf(&path, "/boxes/%s", esc) < 0)
		return err_set(-ENOMEM, "out of memory");
	rc = sbx_api_call("GET", path, NULL, 60, &r);
	if (rc < 0)
		return rc;
	if (r.status == 404) {
		sbx_resp_release(&r);
		return sbx_error_set_final(-ENOENT, "no sandbox named '%s'", name);
	}
	rc = sbx_resp_check(&r);
	if (rc == 0 && !json_is_object(r.json))
		rc = err_set(-EBADMSG, "sbxd answered with something that is not JSON");
	if (rc == 0)
		*ret = json_incref(r.json);
	sbx_resp_release(&r);
	return rc;
}

int sbx_box_dataplane(const char *name, int wait_s, char **ret_url)
{
	uint64_t start = clock_mono_ms();
	bool told = false;

	for (;;) {
		json_t *box = NULL;
		const char *status, *msg, *dp;
		int r = sbx_box_get(name, &box);

		if (r < 0)
			return r;
		status = sbx_json_str(box, "status", "unknown");
		msg = sbx_json_str(box, "status_message", NULL);
		dp = sbx_json_str(box, "dataplane_url", NULL);
		if (!strcmp(status, "ready") && dp && *dp) {
			*ret_url = strdup(dp);
			json_decref(box);
			return *ret_url ? 0 : err_set(-ENOMEM, "out of memory");
		}
		if ((strcmp(status, "provisioning") && strcmp(status, "starting")) ||
		    clock_mono_ms() - start >= (uint64_t)wait_s * 1000) {
			if (!strcmp(status, "stopped"))
				r = sbx_error_set_final(-EAGAIN,
							"sandbox '%s' is stopped: start it first "
							"(sbx start %s)",
							name, name);
			else
				r = sbx_error_set_final(-EAGAIN, "sandbox '%s' is %s%s%s", name,
							status, msg ? ": " : "", msg ? msg : "");
			json_decref(box);
			return r;
		}
		json_decref(box);
		if (!told && arg_verbose)
			fprintf(stderr, "sbx: waiting for sandbox '%s' to be ready\n", name);
		told = true;
		clock_sleep_ms(500);
	}
}
