// SPDX-License-Identifier: Apache-2.0
// sbxd conformance: snapshots and prewarmed pools with the official
// langsmith@0.12.0 client (captureSnapshot, getSnapshot, listSnapshots,
// deleteSnapshot, createSnapshot, createSandbox(snapshotId)), plus sbxd's
// own switches where the client has none: capture with include_memory and
// PUT /snapshots/{id}/pool go through fetch, with the same API key.
//
// The tests run in order and share their sandboxes: "conf-snap-src" (a
// file written and a background process started before every capture),
// then sandboxes started from its snapshots. Each VM costs CPU under TCG,
// so every test deletes what it no longer needs.
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const {
  SandboxClient,
  LangSmithResourceNotFoundError,
  LangSmithSandboxError,
} = require("langsmith/sandbox");

const ENDPOINT = process.env.LANGSMITH_ENDPOINT;
const KEY_A = process.env.LANGSMITH_API_KEY;
const KEY_B = process.env.SBX_TEST_KEY_B;
if (!ENDPOINT || !KEY_A || !KEY_B) {
  throw new Error("run me through tests/conformance/conformance.sh (LANGSMITH_ENDPOINT, keys)");
}
const API = `${ENDPOINT}/api/v2/sandboxes`;
const clientA = new SandboxClient();
const clientB = new SandboxClient({ apiKey: KEY_B });

const SRC = "conf-snap-src";
const MARK = "/root/conf-snapshot-marker.txt";
const MARK_TEXT = "written before the capture\n";
const SLEEP = "sleep 7777"; // the background process started before capturing

const BOOT = { timeout: 300_000 };
const T = { timeout: 120_000 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let src = null; // the source sandbox
let fsSnap = null; // filesystem-only snapshot of src
let memSnap = null; // filesystem + memory snapshot of src

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function need(x, what) {
  if (!x) throw new Error(`${what} does not exist: an earlier test failed`);
  return x;
}

// sbxd's API with key A (for what the langsmith client has no call for).
async function api(method, path, body) {
  const r = await fetch(`${API}${path}`, {
    method,
    headers: { "x-api-key": KEY_A, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

// One sample of GET /metrics (no key needed), or null when absent.
async function metric(name, source) {
  const text = await (await fetch(`${ENDPOINT}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{source="${source}"} `));
  return line === undefined ? null : Number(line.split(" ").pop());
}

async function waitMetric(name, source, want, seconds = 120) {
  let v = null;
  for (let i = 0; i < seconds * 4; i++) {
    v = await metric(name, source);
    if (v === want) return;
    await sleep(250);
  }
  assert.fail(`${name}{source="${source}"} is ${v}, never ${want}`);
}

// The command lines of the guest's processes, kernel threads (empty
// cmdline) and this very command's own pipeline left out.
async function procs(sb) {
  const r = await sb.run(
    "for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); [ -n \"$c\" ] && echo \"$c\"; done",
  );
  return r.stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.includes("/proc/[0-9]*") && !l.startsWith("tr "));
}

const running = async (sb, cmd) => (await procs(sb)).some((l) => l === cmd);

// ---------------------------------------------------------------- capture

test("captureSnapshot of a sandbox answers a ready filesystem snapshot that getSnapshot and listSnapshots return", BOOT, async () => {
  src = await clientA.createSandbox({ name: SRC, timeout: 240 });
  await src.write(MARK, MARK_TEXT);
  await src.run(`setsid -f ${SLEEP} >/dev/null 2>&1 </dev/null`);
  assert.ok(await running(src, SLEEP), "the background process runs in the source");

  const t0 = Date.now();
  fsSnap = await clientA.captureSnapshot(SRC, "conf-fs", { timeout: 120 });
  console.log(`# filesystem capture ready after ${Date.now() - t0} ms`);
  assert.match(fsSnap.id, UUID);
  assert.equal(fsSnap.name, "conf-fs");
  assert.equal(fsSnap.status, "ready");
  assert.equal(fsSnap.source_sandbox_id, src.id);
  assert.ok(fsSnap.fs_capacity_bytes >= src.fs_capacity_bytes);
  assert.ok(!Number.isNaN(Date.parse(fsSnap.created_at)));

  const got = await clientA.getSnapshot(fsSnap.id);
  assert.equal(got.id, fsSnap.id);
  assert.equal(got.status, "ready");
  assert.deepEqual(got.included, ["filesystem"]);
  const listed = await clientA.listSnapshots({ nameContains: "CONF-F" });
  assert.deepEqual(listed.map((s) => s.id), [fsSnap.id]);
  assert.equal((await clientA.listSnapshots({ limit: 1 })).length, 1);
  assert.deepEqual(await clientB.listSnapshots(), [], "key B sees none of key A's snapshots");
  await assert.rejects(clientB.getSnapshot(fsSnap.id), LangSmithResourceNotFoundError);
});

test("createSandbox(snapshotId) of a filesystem snapshot starts fresh: the file is there, the process is not", BOOT, async () => {
  need(fsSnap, "conf-fs");
  const t0 = Date.now();
  const sb = await clientA.createSandbox(fsSnap.id, { name: "conf-from-fs", timeout: 240 });
  console.log(`# sandbox from a filesystem snapshot ready after ${Date.now() - t0} ms`);
  try {
    assert.equal(sb.status, "ready");
    assert.equal(sb.snapshot_id, fsSnap.id);
    assert.equal(new TextDecoder().decode(await sb.read(MARK)), MARK_TEXT);
    assert.equal(await running(sb, SLEEP), false, "a fresh start has no captured process");
    assert.equal((await sb.run("hostname")).stdout.trim(), "conf-from-fs");
    // writes of the new sandbox do not reach the source
    await sb.write("/root/only-in-fork.txt", "fork\n");
    await assert.rejects(src.read("/root/only-in-fork.txt"), LangSmithResourceNotFoundError);
  } finally {
    await clientA.deleteSandbox(sb.name);
  }
});

test("a snapshot with memory resumes its processes with restoreMemory; the source runs on unaffected", BOOT, async () => {
  need(src, SRC);
  const r = await api("POST", `/boxes/${SRC}/snapshot`, { name: "conf-mem", include_memory: true });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  memSnap = await clientA.waitForSnapshot(r.json.id, { timeout: 120 });
  assert.deepEqual(memSnap.included, ["filesystem", "memory"]);
  assert.ok(memSnap.memory_snapshot_size_bytes > 0);

  const t0 = Date.now();
  const sb = await clientA.createSandbox(memSnap.id, {
    name: "conf-resumed",
    restoreMemory: true,
    timeout: 240,
  });
  console.log(`# sandbox resumed from a memory snapshot ready after ${Date.now() - t0} ms`);
  try {
    assert.equal(sb.status, "ready");
    assert.ok(await running(sb, SLEEP), "the captured background process runs in the restored sandbox");
    assert.equal(new TextDecoder().decode(await sb.read(MARK)), MARK_TEXT);
    assert.equal((await sb.run("hostname")).stdout.trim(), "conf-resumed");
    const a = (await sb.run("cat /proc/sys/kernel/random/uuid")).stdout.trim();
    const b = (await src.run("cat /proc/sys/kernel/random/uuid")).stdout.trim();
    assert.notEqual(a, b);
    assert.ok(await running(src, SLEEP), "the source's process runs on");
    assert.equal((await clientA.getSandbox(SRC)).status, "ready");
  } finally {
    await clientA.deleteSandbox(sb.name);
  }
});

test("restoreMemory on a filesystem-only snapshot is refused with a clear error", T, async () => {
  need(fsSnap, "conf-fs");
  await assert.rejects(
    clientA.createSandbox(fsSnap.id, { name: "conf-never", restoreMemory: true }),
    (e) => {
      assert.ok(e instanceof LangSmithSandboxError, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, /holds no memory/);
      return true;
    },
  );
  await assert.rejects(clientA.getSandbox("conf-never"), LangSmithResourceNotFoundError);
});

test("createSnapshot builds a snapshot from an image sbxd has, and names the images it has for an unknown one", T, async () => {
  const snap = await clientA.createSnapshot("conf-img", "default", 4 * 1024 ** 3, { timeout: 120 });
  assert.equal(snap.status, "ready");
  assert.equal(snap.docker_image, "default");
  assert.equal(snap.fs_capacity_bytes, 4 * 1024 ** 3);
  await assert.rejects(clientA.createSnapshot("conf-img2", "python:3.12", 4 * 1024 ** 3), (e) => {
    assert.match(e.message, /it has: .*default/);
    return true;
  });
  await clientA.deleteSnapshot(snap.id);
  await assert.rejects(clientA.getSnapshot(snap.id), LangSmithResourceNotFoundError);
});

// ---------------------------------------------------------------- pools

test("a snapshot's pool hands out a sandbox that never ran a command, takes its identity, and refills", BOOT, async () => {
  need(memSnap, "conf-mem");
  const source = `snapshot:${memSnap.id}`;
  const r = await api("PUT", `/snapshots/${memSnap.id}/pool`, { size: 1 });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  await waitMetric("sbx_pool_ready", source, 1);
  assert.equal(await metric("sbx_pool_target", source), 1);
  assert.equal((await clientA.getSnapshot(memSnap.id)).pool_size, 1);
  assert.deepEqual(
    (await clientA.listSandboxes()).map((s) => s.name),
    [SRC],
    "a pooled VM is not a sandbox",
  );

  const t0 = Date.now();
  const one = await clientA.createSandbox(memSnap.id, { name: "conf-pooled-1", restoreMemory: true });
  const took = Date.now() - t0;
  console.log(`# pooled create answered after ${took} ms`);
  let two = null;
  try {
    assert.equal(one.status, "ready");
    assert.ok(took < 5000, `a pooled create took ${took} ms`);
    assert.equal((await one.run("hostname")).stdout.trim(), "conf-pooled-1");
    // Nothing but the agent and the captured process: no command ran here.
    const ps = await procs(one);
    assert.deepEqual(
      ps.filter((l) => l !== SLEEP && !/^\/(s?bin\/)?init\b|sbx-agent/.test(l)),
      [],
      `unexpected processes: ${JSON.stringify(ps)}`,
    );
    await one.write("/root/used-by-pooled-1.txt", "used\n");
    await one.run(`setsid -f sleep 8888 >/dev/null 2>&1 </dev/null`);

    await waitMetric("sbx_pool_ready", source, 1); // refilled
    two = await clientA.createSandbox(memSnap.id, { name: "conf-pooled-2", restoreMemory: true });
    assert.equal((await two.run("hostname")).stdout.trim(), "conf-pooled-2");
    await assert.rejects(two.read("/root/used-by-pooled-1.txt"), LangSmithResourceNotFoundError);
    assert.equal(await running(two, "sleep 8888"), false, "nothing of the other caller");
    assert.ok(await running(two, SLEEP));
  } finally {
    await clientA.deleteSandbox(one.name);
    if (two) await clientA.deleteSandbox(two.name);
  }
  await waitMetric("sbx_pool_ready", source, 1);
});

test("deleteSnapshot deletes a snapshot that sandboxes still use and drains its pool; they keep working", BOOT, async () => {
  need(memSnap, "conf-mem");
  need(fsSnap, "conf-fs");
  const user = await clientA.createSandbox(fsSnap.id, { name: "conf-user", timeout: 240 });
  try {
    await clientA.deleteSnapshot(fsSnap.id);
    await assert.rejects(clientA.getSnapshot(fsSnap.id), LangSmithResourceNotFoundError);
    assert.equal((await user.run("cat " + MARK)).stdout, MARK_TEXT, "its layers stay while it runs");
    await user.write("/root/after.txt", "still writable\n");
    assert.equal(new TextDecoder().decode(await user.read("/root/after.txt")), "still writable\n");
    fsSnap = null;
  } finally {
    await clientA.deleteSandbox(user.name);
  }
  const source = `snapshot:${memSnap.id}`;
  await clientA.deleteSnapshot(memSnap.id);
  memSnap = null;
  for (let i = 0; i < 120 && (await metric("sbx_pool_target", source)) !== null; i++) await sleep(250);
  assert.equal(await metric("sbx_pool_target", source), null, "the pool went with its snapshot");
  await assert.rejects(clientA.deleteSnapshot(source.slice(9)), LangSmithResourceNotFoundError);
});

test("the source sandbox of deleted snapshots is deleted last; no snapshot is left", BOOT, async () => {
  need(src, SRC);
  await clientA.deleteSandbox(SRC);
  src = null;
  assert.deepEqual(
    (await clientA.listSnapshots()).map((s) => s.name),
    [],
  );
});

after(async () => {
  for (const s of await clientA.listSnapshots().catch(() => [])) {
    await clientA.deleteSnapshot(s.id).catch(() => {});
  }
  for (const s of await clientA.listSandboxes().catch(() => [])) {
    await clientA.deleteSandbox(s.name).catch(() => {});
  }
});
