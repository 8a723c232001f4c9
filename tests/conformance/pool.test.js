// SPDX-License-Identifier: Apache-2.0
// sbxd conformance: `sbxd serve --pool-size 1`, the prewarmed pool of the
// default image, with the official langsmith@0.12.0 client. This file runs
// a second sbxd of its own (its state in SBX_TEST_POOL_STATE, its log next
// to it), since the pool size is a start-up setting, and restarts it to see
// that pooled VMs are never trusted across restarts:
//  - a create takes a ready VM (no boot) that never ran a command, and the
//    pool refills;
//  - after kill -9 and a new start, the old pooled VM is destroyed and a
//    new one fills the pool;
//  - SIGTERM ends sbxd and its pooled VM (nothing of it is left running).
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const net = require("node:net");
const { spawn, execFileSync } = require("node:child_process");
const { SandboxClient } = require("langsmith/sandbox");

const SBXD = process.env.SBX_TEST_SBXD;
const IMAGE = process.env.SBX_TEST_IMAGE;
const STATE = process.env.SBX_TEST_POOL_STATE;
if (!SBXD || !IMAGE || !STATE) {
  throw new Error("run me through tests/conformance/conformance.sh (SBX_TEST_SBXD, ...)");
}
const LOG = `${STATE}.sbxd.log`;
const SOURCE = "image:default";
const BOOT = { timeout: 300_000 };

let proc = null; // the sbxd child
let endpoint = null;
let key = null;
let client = null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// PIDs of the QEMU processes of this sbxd's state directory.
function qemuPids() {
  try {
    return execFileSync("pgrep", ["-f", `qemu-system-[a-z0-9_]+ .*${STATE}/`], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function start() {
  const port = await freePort();
  endpoint = `http://127.0.0.1:${port}`;
  const log = fs.openSync(LOG, "a");
  proc = spawn(
    SBXD,
    ["serve", "--listen", `127.0.0.1:${port}`, "--state-dir", STATE, "--image", IMAGE, "--pool-size", "1"],
    { stdio: ["ignore", log, log] },
  );
  fs.closeSync(log);
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) throw new Error(`sbxd exited at start (log: ${LOG})`);
    try {
      if ((await fetch(`${endpoint}/healthz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  client = new SandboxClient({ apiEndpoint: `${endpoint}/api/v2/sandboxes`, apiKey: key });
}

// Stops sbxd with a signal; resolves with its exit code (null: killed).
function stop(signal) {
  const p = proc;
  proc = null;
  if (!p || p.exitCode !== null) return Promise.resolve(p ? p.exitCode : 0);
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill("SIGKILL"), 30_000);
    p.on("exit", (code) => {
      clearTimeout(t);
      resolve(code);
    });
    p.kill(signal);
  });
}

async function metric(name) {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{source="${SOURCE}"} `));
  return line === undefined ? null : Number(line.split(" ").pop());
}

// The last lines sbxd logged, without the per-request lines: what a
// failure message needs when CI shows only the test's output.
function logTail(n = 20) {
  let text = "";
  try {
    text = fs.readFileSync(LOG, "utf8");
  } catch {
    return `(no log at ${LOG})`;
  }
  const lines = text.split("\n").filter((l) => l && !l.includes('"msg":"request"'));
  return lines.slice(-n).join("\n");
}

async function waitReady(want, seconds = 240) {
  let v = null;
  for (let i = 0; i < seconds * 4; i++) {
    v = await metric("sbx_pool_ready");
    if (v === want) return;
    await sleep(250);
  }
  assert.fail(`sbx_pool_ready{source="${SOURCE}"} is ${v}, never ${want}; sbxd said:\n${logTail()}`);
}

test("sbxd serve --pool-size 1 keeps a default sandbox ready; a create takes it at once, it never ran a command, the pool refills", BOOT, async () => {
  fs.rmSync(STATE, { recursive: true, force: true });
  fs.mkdirSync(STATE, { recursive: true });
  fs.writeFileSync(LOG, "");
  key = execFileSync(SBXD, ["key", "create", "--name", "pool", "--state-dir", STATE], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  })
    .trim()
    .split("\n")
    .pop();
  await start();
  assert.equal(await metric("sbx_pool_target"), 1);
  await waitReady(1);

  const t0 = Date.now();
  const sb = await client.createSandbox({ name: "conf-pool-1" });
  const took = Date.now() - t0;
  console.log(`# pooled create of the default image answered after ${took} ms`);
  try {
    assert.equal(sb.status, "ready");
    assert.ok(took < 5000, `a pooled create took ${took} ms`);
    assert.equal((await sb.run("hostname")).stdout.trim(), "conf-pool-1");
    const r = await sb.run(
      "for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); [ -n \"$c\" ] && echo \"$c\"; done",
    );
    const ps = r.stdout
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.includes("/proc/[0-9]*") && !l.startsWith("tr "));
    assert.deepEqual(
      ps.filter((l) => !/^\/(s?bin\/)?init\b|sbx-agent/.test(l)),
      [],
      `processes of another caller: ${JSON.stringify(ps)}`,
    );
    const files = (await sb.run("ls -A /root /tmp")).stdout;
    assert.doesNotMatch(files, /conf-|marker/, "no files of another caller");
    assert.deepEqual(
      (await client.listSandboxes()).map((s) => s.name),
      ["conf-pool-1"],
      "the pooled VM is not listed as a sandbox",
    );
    await waitReady(1);
  } finally {
    await client.deleteSandbox("conf-pool-1");
  }
});

test("after kill -9 and a restart of sbxd, the old pooled VM is destroyed and a new one fills the pool", BOOT, async () => {
  assert.ok(proc, "sbxd is not running: the first test failed");
  await waitReady(1);
  const before = qemuPids();
  assert.equal(before.length, 1, `one QEMU (the pooled VM) runs: ${before}`);
  await stop("SIGKILL");
  assert.ok(alive(before[0]), "a VM outlives a killed sbxd");
  await start();
  await waitReady(1);
  for (let i = 0; i < 100 && alive(before[0]); i++) await sleep(100);
  assert.equal(alive(before[0]), false, "the pooled VM of the killed sbxd was destroyed");
  const now = qemuPids();
  assert.equal(now.length, 1, `one new pooled VM: ${now}`);
  assert.notEqual(now[0], before[0]);
});

test("SIGTERM stops sbxd and ends its pooled VM", BOOT, async () => {
  assert.ok(proc, "sbxd is not running: an earlier test failed");
  const code = await stop("SIGTERM");
  assert.equal(code, 0, `sbxd exit status (log: ${LOG})`);
  for (let i = 0; i < 50 && qemuPids().length; i++) await sleep(100);
  assert.deepEqual(qemuPids(), [], "no QEMU of the pool is left");
});

after(async () => {
  if (proc) await stop("SIGTERM");
  for (const pid of qemuPids()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
});
