// SPDX-License-Identifier: Apache-2.0
// sbxd conformance: stop, start and the sandbox TTLs with the official
// langsmith@0.12.0 client (Sandbox.stop(), Sandbox.start()). TTLs of a few
// seconds go through fetch: the client accepts whole minutes only, sbxd
// any second.
//
// The tests run in order and share two sandboxes, to boot as few VMs as
// TCG allows: "conf-life-fs" (stopped without memory) and "conf-life-mem"
// (preserve_memory_on_stop). Every test name starts with "lifecycle" so
// that CONFORMANCE_FILTER=lifecycle runs just them.
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const { SandboxClient, LangSmithResourceNotFoundError } = require("langsmith/sandbox");

const ENDPOINT = process.env.LANGSMITH_ENDPOINT;
const KEY_A = process.env.LANGSMITH_API_KEY;
if (!ENDPOINT || !KEY_A) {
  throw new Error("run me through tests/conformance/conformance.sh (LANGSMITH_ENDPOINT, keys)");
}
const API = `${ENDPOINT}/api/v2/sandboxes`;
const client = new SandboxClient();

const FS = "conf-life-fs";
const MEM = "conf-life-mem";
const MARK = "/root/conf-life-marker.txt";
const SLEEP = "sleep 8888"; // the background process that must survive a memory stop
const BOOT = { timeout: 300_000 };

let fsBox = null;
let memBox = null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function need(x, what) {
  if (!x) throw new Error(`${what} does not exist: an earlier test failed`);
  return x;
}

async function api(method, path, body) {
  const r = await fetch(`${API}${path}`, {
    method,
    headers: { "x-api-key": KEY_A, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

// GET /status: a read, so it does not count as activity for the idle TTL.
async function status(name) {
  const r = await api("GET", `/boxes/${name}/status`);
  return r.status === 200 ? r.json.status : r.status;
}

async function waitStatus(name, want, seconds) {
  let s = null;
  for (let i = 0; i < seconds * 4; i++) {
    s = await status(name);
    if (s === want) return;
    await sleep(250);
  }
  assert.fail(`sandbox ${name} is ${s}, never ${want} within ${seconds} s`);
}

// The QEMU processes on this host whose command line holds `id`.
function qemuOf(id) {
  try {
    return execFileSync("pgrep", ["-f", `qemu-system.*${id}`], { encoding: "utf8" }).trim();
  } catch {
    return ""; // pgrep exits 1 when nothing matches
  }
}

async function running(sb, cmd) {
  const r = await sb.run(
    "for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); [ -n \"$c\" ] && echo \"$c\"; done",
  );
  return r.stdout.split("\n").some((l) => l.trim() === cmd);
}

test("lifecycle: stop saves a sandbox and frees its VM; start brings its files back under the same dataplane URL", BOOT, async () => {
  fsBox = await client.createSandbox({ name: FS, timeout: 240 });
  const url = fsBox.dataplane_url;
  await fsBox.write(MARK, "written before stop\n");
  await fsBox.run("export CONF_LIFE=prepared; echo \"$CONF_LIFE\" > /root/conf-life-env.txt");
  assert.notEqual(qemuOf(fsBox.id), "", "a ready sandbox has its QEMU");

  let t0 = Date.now();
  await fsBox.stop();
  console.log(`# stopped (filesystem) after ${Date.now() - t0} ms`);
  assert.equal(await status(FS), "stopped");
  const got = await client.getSandbox(FS);
  assert.equal(got.status, "stopped");
  assert.ok(!Number.isNaN(Date.parse(got.stopped_at)), `stopped_at: ${got.stopped_at}`);
  assert.equal(qemuOf(fsBox.id), "", "a stopped sandbox has no QEMU process");
  // the stop snapshot is sbxd's own: not a snapshot of the API
  assert.deepEqual((await client.listSnapshots()).map((s) => s.name), []);
  // a data-plane request says what to do
  await assert.rejects(fsBox.read(MARK), /is stopped: start it first/);
  // stopping again: nothing to do
  assert.equal((await api("POST", `/boxes/${FS}/stop`, {})).status, 200);

  t0 = Date.now();
  await fsBox.start({ timeout: 240 });
  console.log(`# started (filesystem) after ${Date.now() - t0} ms`);
  assert.equal(fsBox.status, "ready");
  assert.equal(fsBox.dataplane_url, url);
  assert.equal(new TextDecoder().decode(await fsBox.read(MARK)), "written before stop\n");
  assert.equal((await fsBox.run("cat /root/conf-life-env.txt")).stdout, "prepared\n");
  assert.equal((await client.getSandbox(FS)).stopped_at, undefined);
  // starting a ready sandbox: nothing to do
  assert.equal((await api("POST", `/boxes/${FS}/start`, {})).status, 200);
});

test("lifecycle: with preserve_memory_on_stop a background process started before stop runs on after start", BOOT, async () => {
  memBox = await client.createSandbox({ name: MEM, timeout: 240, preserveMemoryOnStop: true });
  assert.equal(memBox.preserve_memory_on_stop, true);
  await memBox.run(`setsid -f ${SLEEP} >/dev/null 2>&1 </dev/null`);
  assert.ok(await running(memBox, SLEEP));
  let t0 = Date.now();
  await memBox.stop();
  console.log(`# stopped (memory) after ${Date.now() - t0} ms`);
  assert.equal(await status(MEM), "stopped");
  assert.equal(qemuOf(memBox.id), "", "a stopped sandbox has no QEMU process");
  t0 = Date.now();
  await memBox.start({ timeout: 240 });
  console.log(`# started (memory) after ${Date.now() - t0} ms`);
  assert.ok(await running(memBox, SLEEP), "the process survived stop and start");
});

test("lifecycle: a running command keeps a sandbox alive past its idle TTL; then it is stopped", BOOT, async () => {
  need(memBox, MEM);
  const cmd = await memBox.run("sleep 8", { wait: false });
  const r = await api("PATCH", `/boxes/${MEM}`, { idle_ttl_seconds: 2 });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.idle_ttl_seconds, 2);
  await sleep(5000);
  assert.equal(await status(MEM), "ready", "the command runs: not idle");
  const res = await cmd.result;
  assert.equal(res.exit_code, 0);
  await waitStatus(MEM, "stopped", 60);
});

test("lifecycle: idle_ttl_seconds stops an idle sandbox, delete_after_stop_seconds then deletes it", BOOT, async () => {
  need(fsBox, FS);
  const r = await api("PATCH", `/boxes/${FS}`, { idle_ttl_seconds: 2, delete_after_stop_seconds: 3 });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const t0 = Date.now();
  await waitStatus(FS, "stopped", 60);
  console.log(`# idle sandbox stopped after ${Date.now() - t0} ms`);
  assert.equal(qemuOf(fsBox.id), "");
  await waitStatus(FS, 404, 30);
  await assert.rejects(client.getSandbox(FS), LangSmithResourceNotFoundError);
  // a stopped sandbox is deleted as usual
  need(memBox, MEM);
  await client.deleteSandbox(MEM);
  await assert.rejects(client.getSandbox(MEM), LangSmithResourceNotFoundError);
});

after(async () => {
  for (const s of await client.listSandboxes().catch(() => [])) {
    await client.deleteSandbox(s.name).catch(() => {});
  }
});
