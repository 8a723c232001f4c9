// SPDX-License-Identifier: Apache-2.0
// sbxd conformance: per-API-key quotas with the official langsmith client.
// conformance.sh creates the key "quota" with `sbxd key create
// --max-sandboxes 1`: its second sandbox is refused with a 429 that the
// client turns into LangSmithQuotaExceededError, quotaType "sandbox_count".
// Every test name starts with "quota" (CONFORMANCE_FILTER=quota).
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const { SandboxClient, LangSmithQuotaExceededError } = require("langsmith/sandbox");

const ENDPOINT = process.env.LANGSMITH_ENDPOINT;
const KEY_QUOTA = process.env.SBX_TEST_KEY_QUOTA;
const KEY_A = process.env.LANGSMITH_API_KEY;
if (!ENDPOINT || !KEY_QUOTA || !KEY_A) {
  throw new Error("run me through tests/conformance/conformance.sh (SBX_TEST_KEY_QUOTA)");
}
const API = `${ENDPOINT}/api/v2/sandboxes`;
const quota = new SandboxClient({ apiEndpoint: API, apiKey: KEY_QUOTA });
const BOOT = { timeout: 300_000 };
let made = false;

test("quota: a key limited to 1 sandbox gets LangSmithQuotaExceededError (sandbox_count) for its second", BOOT, async () => {
  const sb = await quota.createSandbox({ name: "conf-quota-1" });
  made = true;
  assert.equal(sb.status, "ready");
  await assert.rejects(quota.createSandbox({ name: "conf-quota-2" }), (err) => {
    assert.ok(err instanceof LangSmithQuotaExceededError, `${err.name}: ${err.message}`);
    assert.equal(err.quotaType, "sandbox_count");
    assert.match(err.message, /API key 'quota' may have 1 running sandbox/);
    return true;
  });
  // the wire: 429 with {"detail":{"error":"QuotaExceeded",...}}, nothing created
  const res = await fetch(`${API}/boxes`, {
    method: "POST",
    headers: { "X-Api-Key": KEY_QUOTA, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "conf-quota-3", wait_for_ready: false }),
  });
  assert.equal(res.status, 429);
  assert.equal((await res.json()).detail.error, "QuotaExceeded");
  assert.deepEqual(
    (await quota.listSandboxes()).map((s) => s.name),
    ["conf-quota-1"],
  );
});

test("quota: another key is not limited by it", async () => {
  // a create without waiting: only the admission is under test here
  const res = await fetch(`${API}/boxes`, {
    method: "POST",
    headers: { "X-Api-Key": KEY_A, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "conf-quota-other", wait_for_ready: false }),
  });
  assert.equal(res.status, 201, await res.text());
  const del = await fetch(`${API}/boxes/conf-quota-other`, {
    method: "DELETE",
    headers: { "X-Api-Key": KEY_A },
  });
  assert.ok(del.status === 204 || del.status === 200, `delete: ${del.status}`);
});

after(async () => {
  if (made) await quota.deleteSandbox("conf-quota-1");
});
