// SPDX-License-Identifier: Apache-2.0
// sbxd conformance: stop, start and the sandbox TTLs with the official
// langsmith@0.12.0 client (Sandbox.stop(), Sandbox.start()). TTLs of a few
// seconds go through fetch: the client accepts whole minutes only, sbxd
// any second.
//
// The tests run in order and share two sandboxes, to boot as few VMs as
// TCG allows: "conf-life-fs" (stopped without memory) and "conf-life-mem"
// (preserve_memory_on_stop); the hard TTL has its own, "conf-life-hard".
// Every test name starts with "lifecycle" so
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

// Start `cmd` (which prints a line first) without waiting, then go away the
// way a client does: leave the output loop, which closes its WebSocket.
async function startAndDisconnect(sb, cmd, options) {
  const h = await sb.run(cmd, { wait: false, ...options });
  for await (const _ of h) break;
  assert.ok(h.commandId, "the command was started");
  return h.commandId;
}

async function waitGone(sb, cmd, seconds) {
  for (let i = 0; i < seconds * 2; i++) {
    if (!(await running(sb, cmd))) return;
    await sleep(500);
  }
  assert.fail(`'${cmd}' still runs ${seconds} s after its client left`);
}

test("lifecycle: kill_on_disconnect kills a command when its client leaves; idle_timeout_seconds kills an unattached one after that long, -1 never", BOOT, async () => {
  need(fsBox, FS);
  const KOD = "sleep 4241", IDLE = "sleep 4242", NEVER = "sleep 4243";

  let t0 = Date.now();
  await startAndDisconnect(fsBox, `echo go; exec ${KOD}`, { killOnDisconnect: true });
  await waitGone(fsBox, KOD, 15);
  console.log(`# kill_on_disconnect: gone ${Date.now() - t0} ms after the client left`);

  const never = await startAndDisconnect(fsBox, `echo go; exec ${NEVER}`, { idleTimeout: -1 });
  t0 = Date.now();
  const idle = await startAndDisconnect(fsBox, `echo go; exec ${IDLE}`, { idleTimeout: 6 });
  assert.ok(await running(fsBox, IDLE), "an unattached command runs until its idle timeout");
  await waitGone(fsBox, IDLE, 40);
  const after = Date.now() - t0;
  console.log(`# idle_timeout_seconds 6: gone ${after} ms after the client left`);
  assert.ok(after >= 5000, `killed after ${after} ms, before its idle timeout of 6 s`);
  // its end is still retrievable (ttl_seconds), as a kill
  const res = await (await fsBox.reconnect(idle)).result;
  assert.notEqual(res.exit_code, 0);
  assert.equal(res.stdout, "go\n");
  // idle_timeout -1: never killed for lack of a client; a reconnect may kill it
  assert.ok(await running(fsBox, NEVER), "idle_timeout -1 keeps an unattached command");
  const h = await fsBox.reconnect(never);
  for await (const _ of h) h.kill(); // at the replayed "go": the socket is open
  assert.notEqual((await h.result).exit_code, 0);
  assert.equal(await running(fsBox, NEVER), false, "a killed command is gone");
});

test("lifecycle: ttl_seconds keeps a finished command reconnectable that long, then it is SessionExpired", BOOT, async () => {
  need(fsBox, FS);
  const keep = await fsBox.run("echo kept", { wait: false, ttlSeconds: 600 });
  assert.equal((await keep.result).stdout, "kept\n");
  const t0 = Date.now();
  const brief = await fsBox.run("echo brief", { wait: false, ttlSeconds: 2 });
  assert.equal((await brief.result).stdout, "brief\n");
  let expired = null, replays = 0;
  while (!expired && Date.now() - t0 < 40_000) {
    try {
      const res = await (await fsBox.reconnect(brief.commandId)).result;
      assert.equal(res.stdout, "brief\n", "within its TTL a reconnect replays the output");
      replays++;
      await sleep(250);
    } catch (e) {
      expired = e;
    }
  }
  assert.ok(expired, "the command never expired");
  const after = Date.now() - t0;
  console.log(`# ttl_seconds 2: replayed ${replays} time(s), expired ${after} ms after it was started`);
  assert.ok(replays >= 1, "no reconnect within the TTL");
  assert.ok(after >= 2000, `expired after ${after} ms, before its TTL`);
  assert.equal(expired.name, "LangSmithSandboxOperationError", String(expired));
  assert.match(expired.message, /expired/);
  // the one with a longer TTL is still there, output and exit code
  const again = await (await fsBox.reconnect(keep.commandId)).result;
  assert.equal(again.stdout, "kept\n");
  assert.equal(again.exit_code, 0);
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

test("lifecycle: max_lifetime_seconds deletes a sandbox at that age, whatever runs in it", BOOT, async () => {
  const HARD = "conf-life-hard", LIFE = 60;
  const t0 = Date.now();
  const r = await api("POST", "/boxes", { name: HARD, timeout: 240, idle_ttl_seconds: 0, max_lifetime_seconds: LIFE });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.max_lifetime_seconds, LIFE);
  const expires = Date.parse(r.json.expires_at);
  assert.ok(Math.abs(expires - Date.parse(r.json.created_at) - LIFE * 1000) < 1000, `expires_at ${r.json.expires_at}`);
  // over the client's own TTL rules: sbxd says which field
  const bad = await api("POST", "/boxes", { name: "conf-life-bad", max_lifetime_seconds: -1 });
  assert.equal(bad.status, 422);
  assert.match(JSON.stringify(bad.json), /max_lifetime_seconds/);

  const sb = await client.getSandbox(HARD);
  const boot = Date.now() - t0;
  console.log(`# hard-TTL sandbox ready after ${boot} ms`);
  if (boot > (LIFE - 15) * 1000) {
    console.log("# booted too slowly to run a command before its end; checking the deletion only");
  } else {
    // a command that is attached and busy does not postpone a hard TTL
    await sb.run("echo go; exec sleep 4244", { wait: false });
    assert.equal(await status(HARD), "ready");
  }
  await waitStatus(HARD, 404, LIFE + 60);
  const gone = Date.now() - t0;
  console.log(`# deleted ${gone} ms after create (max_lifetime_seconds ${LIFE})`);
  assert.ok(gone >= (LIFE - 1) * 1000, `deleted after ${gone} ms, before its lifetime`);
  assert.equal(qemuOf(sb.id), "", "its QEMU is gone");
  await assert.rejects(client.getSandbox(HARD), LangSmithResourceNotFoundError);
});

after(async () => {
  for (const s of await client.listSandboxes().catch(() => [])) {
    await client.deleteSandbox(s.name).catch(() => {});
  }
});
