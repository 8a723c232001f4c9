// SPDX-License-Identifier: Apache-2.0
// sbxd conformance: the official langsmith@0.12.0 sandbox client, used
// exactly as a user would, against a running sbxd (tests/conformance/
// conformance.sh starts one and sets LANGSMITH_ENDPOINT, LANGSMITH_API_KEY
// (key A) and SBX_TEST_KEY_B). The tests run in order and share two
// sandboxes: "conf-main" (created waiting, used by every data-plane test)
// and "conf-lazy" (created without waiting; renamed, then deleted). A VM boot
// costs seconds under TCG, so no other sandbox is made.
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const path = require("node:path");
const { execFile, execFileSync } = require("node:child_process");
const {
  SandboxClient,
  LangSmithSandboxAuthenticationError,
  LangSmithResourceNotFoundError,
  LangSmithResourceNameConflictError,
  LangSmithCommandTimeoutError,
  LangSmithSandboxOperationError,
} = require("langsmith/sandbox");

// Every HTTP request the client makes (it calls the global fetch), to tell
// the WebSocket path from the HTTP one.
const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (url, init) => {
  requests.push(`${(init && init.method) || "GET"} ${url}`);
  return realFetch(url, init);
};

const ENDPOINT = process.env.LANGSMITH_ENDPOINT;
const KEY_A = process.env.LANGSMITH_API_KEY;
const KEY_B = process.env.SBX_TEST_KEY_B;
if (!ENDPOINT || !KEY_A || !KEY_B) {
  throw new Error("run me through tests/conformance/conformance.sh (LANGSMITH_ENDPOINT, keys)");
}

const clientA = new SandboxClient(); // from LANGSMITH_ENDPOINT / LANGSMITH_API_KEY
const clientB = new SandboxClient({ apiKey: KEY_B });

const MAIN = "conf-main";
const LAZY = "conf-lazy";
const RENAMED = "conf-renamed";
let main = null; // the ready Sandbox all data-plane tests use
let lazy = null;

const BOOT = { timeout: 300_000 };
const T = { timeout: 60_000 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function box() {
  if (!main) throw new Error(`sandbox ${MAIN} does not exist: its create test failed`);
  return main;
}

// Bytes (UTF-8) of a string.
const bytes = (s) => Buffer.byteLength(s, "utf8");

// Checks that the chunks of one stream are contiguous from `from`: each
// chunk's offset is the byte count of everything before it. Returns the end.
function checkOffsets(chunks, stream, from = 0) {
  let next = from;
  for (const c of chunks.filter((c) => c.stream === stream)) {
    assert.equal(c.offset, next, `${stream} chunk at offset ${c.offset}, expected ${next}`);
    assert.ok(!c.data.includes("\ufffd"), `${stream} chunk at ${c.offset} holds U+FFFD`);
    next += bytes(c.data);
  }
  return next;
}

// How many processes in the sandbox have a command line matching the
// extended regular expression `re` (written so that it does not match itself).
async function countProcs(sb, re) {
  const r = await sb.run(
    `for p in /proc/[0-9]*; do tr '\\0' ' ' < "$p/cmdline" 2>/dev/null; echo; done | grep -cE '${re}' || true`,
  );
  return Number(r.stdout.trim());
}

async function waitNoProcs(sb, re, seconds = 5) {
  let n = 0;
  for (let i = 0; i < seconds * 4; i++) {
    n = await countProcs(sb, re);
    if (n === 0) return 0;
    await new Promise((r) => setTimeout(r, 250));
  }
  return n;
}

// The QEMU processes on this host whose command line holds `id` (a VM is
// named by its sandbox's id).
function qemuOf(id) {
  try {
    return execFileSync("pgrep", ["-f", `qemu-system.*${id}`], { encoding: "utf8" }).trim();
  } catch {
    return ""; // pgrep exits 1 when nothing matches
  }
}

// ---------------------------------------------------------------- auth

test("a request with a wrong API key is refused with LangSmithSandboxAuthenticationError", T, async () => {
  const bad = new SandboxClient({ apiKey: "sbx_" + "a".repeat(52) });
  await assert.rejects(bad.listSandboxes(), LangSmithSandboxAuthenticationError);
  await assert.rejects(bad.getSandbox(MAIN), LangSmithSandboxAuthenticationError);
  await assert.rejects(bad.createSandbox({ name: "conf-never" }), LangSmithSandboxAuthenticationError);
});

test("a request with no API key is refused with LangSmithSandboxAuthenticationError", T, async () => {
  const none = new SandboxClient({ apiKey: "" }); // the client then sends no X-Api-Key
  await assert.rejects(none.listSandboxes(), LangSmithSandboxAuthenticationError);
});

// ---------------------------------------------------------------- control plane

test("createSandbox with waitForReady:false answers at once with status provisioning", BOOT, async () => {
  lazy = await clientA.createSandbox({ name: LAZY, waitForReady: false });
  assert.equal(lazy.name, LAZY);
  assert.match(lazy.id, UUID);
  assert.equal(lazy.status, "provisioning");
});

test("createSandbox waits for the VM by default and answers a ready sandbox with a dataplane_url", BOOT, async () => {
  const t0 = Date.now();
  const sb = await clientA.createSandbox({ name: MAIN, timeout: 240 });
  main = sb;
  assert.equal(sb.name, MAIN);
  assert.match(sb.id, UUID);
  assert.equal(sb.status, "ready");
  assert.match(sb.dataplane_url, /^https?:\/\/[^?#]*[^/?#]$/, "absolute, no trailing slash, no query");
  assert.ok(sb.vCpus >= 1, "vcpus echoed");
  assert.ok(sb.mem_bytes > 0 && sb.fs_capacity_bytes > 0, "resources echoed");
  assert.ok(!Number.isNaN(Date.parse(sb.created_at)), "created_at is a time");
  assert.equal(sb.idle_ttl_seconds, 600);
  console.log(`# ${MAIN} ready after ${Date.now() - t0} ms`);
});

test("waitForSandbox returns the sandbox created without waiting once it is ready", BOOT, async () => {
  assert.ok(lazy, `${LAZY} was not created`);
  const sb = await clientA.waitForSandbox(LAZY, { timeout: 240, pollInterval: 0.5 });
  assert.equal(sb.name, LAZY);
  assert.equal(sb.id, lazy.id);
  assert.equal(sb.status, "ready");
  assert.ok(sb.dataplane_url);
  lazy = sb;
});

test("getSandbox returns a sandbox by name", T, async () => {
  const sb = await clientA.getSandbox(box().name);
  assert.equal(sb.id, box().id);
  assert.equal(sb.status, "ready");
  assert.equal(sb.dataplane_url, box().dataplane_url);
});

test("getSandboxStatus reports ready", T, async () => {
  const st = await clientA.getSandboxStatus(box().name);
  assert.equal(st.status, "ready");
});

test("listSandboxes returns every sandbox of the key", T, async () => {
  const names = (await clientA.listSandboxes()).map((s) => s.name).sort();
  assert.deepEqual(names, [LAZY, MAIN].sort());
  for (const s of await clientA.listSandboxes()) assert.ok(s.id && s.status, "full objects");
});

test("an explicit apiEndpoint ending in /v2/sandboxes reaches the same API", T, async () => {
  const c = new SandboxClient({ apiEndpoint: `${ENDPOINT}/v2/sandboxes`, apiKey: KEY_A });
  const names = (await c.listSandboxes()).map((s) => s.name);
  assert.ok(names.includes(MAIN), `${MAIN} in ${names}`);
});

test("getSandbox of an unknown name throws LangSmithResourceNotFoundError", T, async () => {
  await assert.rejects(clientA.getSandbox("conf-no-such-box"), LangSmithResourceNotFoundError);
  await assert.rejects(clientA.getSandboxStatus("conf-no-such-box"), LangSmithResourceNotFoundError);
});

test("another key's sandbox is invisible: get, status and delete throw LangSmithResourceNotFoundError", T, async () => {
  box();
  await assert.rejects(clientB.getSandbox(MAIN), LangSmithResourceNotFoundError);
  await assert.rejects(clientB.getSandboxStatus(MAIN), LangSmithResourceNotFoundError);
  await assert.rejects(clientB.deleteSandbox(MAIN), LangSmithResourceNotFoundError);
  await assert.rejects(clientB.getSandbox(box().id), LangSmithResourceNotFoundError, "by id too");
  assert.deepEqual(await clientB.listSandboxes(), [], "key B lists nothing");
  assert.equal((await clientA.getSandbox(MAIN)).status, "ready", "still there for key A");
});

test("updateSandbox renames a sandbox; the old name is then not found", T, async () => {
  assert.ok(lazy, `${LAZY} was not created`);
  const sb = await clientA.updateSandbox(LAZY, RENAMED);
  assert.equal(sb.name, RENAMED);
  assert.equal(sb.id, lazy.id);
  await assert.rejects(clientA.getSandbox(LAZY), LangSmithResourceNotFoundError);
  assert.equal((await clientA.getSandbox(RENAMED)).id, lazy.id);
  lazy = sb;
});

test("renaming onto a name in use throws LangSmithResourceNameConflictError", T, async () => {
  box();
  await assert.rejects(clientA.updateSandbox(RENAMED, MAIN), LangSmithResourceNameConflictError);
  assert.equal((await clientA.getSandbox(RENAMED)).id, lazy.id);
});

// ---------------------------------------------------------------- commands

test("run() waits for a command over the WebSocket and returns its stdout, stderr and exit code", T, async () => {
  const sb = box();
  requests.length = 0;
  const r = await sb.run("echo hi; echo err >&2; exit 3");
  assert.deepEqual(r, { stdout: "hi\n", stderr: "err\n", exit_code: 3 });
  const ok = await sb.run("uname -s");
  assert.deepEqual(ok, { stdout: "Linux\n", stderr: "", exit_code: 0 });
  assert.deepEqual(
    requests.filter((u) => u.includes("/execute")),
    [],
    "with ws installed the client runs commands over the WebSocket, not POST /execute",
  );
});

test("run() falls back to HTTP POST /execute when the ws package is not installed", T, async () => {
  const sb = box();
  const out = await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["-r", path.join(__dirname, "no-ws.js"), path.join(__dirname, "http-run.js"), sb.name,
        "echo viahttp €; echo e >&2; exit 4"],
      { env: process.env, timeout: 60_000 },
      (err, stdout, stderr) => {
        const line = stdout.trim().split("\n").pop() || "";
        try {
          resolve(JSON.parse(line));
        } catch {
          reject(new Error(`child failed: ${err} ${stdout} ${stderr}`));
        }
      },
    );
  });
  assert.equal(out.error, undefined, out.error);
  assert.equal(out.wsLoadable, false);
  assert.deepEqual(out.result, { stdout: "viahttp €\n", stderr: "e\n", exit_code: 4 });
  assert.ok(out.seen.includes(`POST ${out.dataplane}/execute`), `requests: ${out.seen}`);
});

test("onStdout and onStderr receive the output while the command runs", T, async () => {
  const sb = box();
  const outs = [];
  const errs = [];
  let firstAt = 0;
  const r = await sb.run(
    "for i in 1 2 3 4; do echo out$i; echo err$i >&2; sleep 0.3; done",
    {
      onStdout: (d) => {
        firstAt ||= Date.now();
        outs.push(d);
      },
      onStderr: (d) => errs.push(d),
    },
  );
  const doneAt = Date.now();
  assert.equal(r.exit_code, 0);
  assert.equal(outs.join(""), "out1\nout2\nout3\nout4\n");
  assert.equal(errs.join(""), "err1\nerr2\nerr3\nerr4\n");
  assert.equal(r.stdout, outs.join(""));
  assert.equal(r.stderr, errs.join(""));
  assert.ok(doneAt - firstAt >= 600, `first stdout only ${doneAt - firstAt} ms before the end: not streamed`);
});

test("a CommandHandle yields ordered chunks with byte offsets, then its result", T, async () => {
  const sb = box();
  const h = await sb.run("printf 'a€\\n'; sleep 0.2; printf 'b\\n' >&2; sleep 0.2; printf 'c\\n'; exit 5", {
    wait: false,
  });
  assert.equal(typeof h.commandId, "string");
  assert.ok(h.commandId.length > 0);
  const chunks = [];
  for await (const c of h) chunks.push(c);
  const out = chunks.filter((c) => c.stream === "stdout").map((c) => c.data).join("");
  const err = chunks.filter((c) => c.stream === "stderr").map((c) => c.data).join("");
  assert.equal(out, "a€\nc\n");
  assert.equal(err, "b\n");
  assert.equal(checkOffsets(chunks, "stdout"), bytes("a€\nc\n"));
  assert.equal(checkOffsets(chunks, "stderr"), 2);
  assert.deepEqual(await h.result, { stdout: out, stderr: err, exit_code: 5 });
  assert.equal(h.lastStdoutOffset, bytes(out));
});

test("sendInput with closeInput:false feeds stdin while the command runs; closeInput ends it", T, async () => {
  const sb = box();
  const h = await sb.run("cat; echo done", { wait: false, closeInput: false });
  const it = h[Symbol.asyncIterator]();
  let seen = "";
  const readUntil = async (want) => {
    while (!seen.includes(want)) {
      const { value, done } = await it.next();
      assert.ok(!done, `stream ended before '${want}' came back; got '${seen}'`);
      if (value.stream === "stdout") seen += value.data;
    }
  };
  h.sendInput("hello\n");
  await readUntil("hello\n"); // echoed while stdin is still open
  h.sendInput("more € input\n");
  h.sendInput("and the last line\n");
  await readUntil("and the last line\n");
  h.closeInput();
  for (;;) {
    const { value, done } = await it.next();
    if (done) break;
    if (value.stream === "stdout") seen += value.data;
  }
  const r = await h.result;
  assert.equal(r.stdout, "hello\nmore € input\nand the last line\ndone\n");
  assert.equal(seen, r.stdout);
  assert.equal(r.exit_code, 0);
});

test("a command run without closeInput:false reads EOF from stdin at once and refuses sendInput", T, async () => {
  const sb = box();
  const h = await sb.run("cat; echo eof", { wait: false, timeout: 20 });
  assert.throws(() => h.sendInput("x"), LangSmithSandboxOperationError);
  assert.deepEqual(await h.result, { stdout: "eof\n", stderr: "", exit_code: 0 });
});

test("kill() ends a running command and its whole process group with a non-zero exit code", T, async () => {
  const sb = box();
  const h = await sb.run("sleep 3001 & sleep 3002; wait", { wait: false, timeout: 100 });
  await new Promise((r) => setTimeout(r, 300)); // let bash start both sleeps
  const t0 = Date.now();
  h.kill();
  const r = await h.result;
  assert.notEqual(r.exit_code, 0);
  assert.ok(Date.now() - t0 < 15_000, "killed promptly");
  assert.equal(await waitNoProcs(sb, "sleep 300[12]"), 0, "the background sleep died too");
});

// A Python program in the sandbox that writes UTF-8 text (2-, 3- and 4-byte
// characters) in slices of 7 (stdout) and 3 (stderr) bytes, so that nearly
// every write ends inside a character, slowly enough to be caught running.
const UTF8_OUT = "€😀éa".repeat(700); // 10 bytes a unit
const UTF8_ERR = "ß€".repeat(600); // 5 bytes a unit
const UTF8_PROG = `python3 - <<'PY'
import os, time
out = ("\\u20ac\\U0001f600\\u00e9a" * 700).encode()
err = ("\\u00df\\u20ac" * 600).encode()
i = j = 0
while i < len(out) or j < len(err):
    if i < len(out):
        os.write(1, out[i:i + 7]); i += 7
    if j < len(err):
        os.write(2, err[j:j + 3]); j += 3
    time.sleep(0.004)
PY`;

// The program takes 5-10 s under TCG; a stalled stream fails in 90 s.
const T_UTF8 = { timeout: 90_000 };
let utf8CommandId = null;

test("multi-byte UTF-8 split across writes streams intact on stdout and stderr at once", T_UTF8, async () => {
  const sb = box();
  const h = await sb.run(UTF8_PROG, { wait: false, timeout: 80 });
  const chunks = [];
  for await (const c of h) chunks.push(c);
  assert.equal(checkOffsets(chunks, "stdout"), bytes(UTF8_OUT));
  assert.equal(checkOffsets(chunks, "stderr"), bytes(UTF8_ERR));
  const r = await h.result;
  assert.equal(r.stdout, UTF8_OUT);
  assert.equal(r.stderr, UTF8_ERR);
  assert.equal(r.exit_code, 0);
});

test("reconnect() resumes at the handle's offsets: nothing lost, nothing doubled, multi-byte UTF-8 intact", T_UTF8, async () => {
  const sb = box();
  const h = await sb.run(UTF8_PROG, { wait: false, timeout: 80 });
  utf8CommandId = h.commandId;
  const first = [];
  let outBytes = 0;
  for await (const c of h) {
    first.push(c);
    if (c.stream === "stdout") outBytes += bytes(c.data);
    if (outBytes >= 1500) break; // drop the connection mid-stream
  }
  assert.ok(outBytes >= 1500, "the command produced output");
  const outEnd = checkOffsets(first, "stdout");
  const errEnd = checkOffsets(first, "stderr");
  assert.equal(h.lastStdoutOffset, outEnd);
  assert.equal(h.lastStderrOffset, errEnd);

  console.log(`# reconnecting at stdout offset ${outEnd} of ${bytes(UTF8_OUT)}, stderr ${errEnd} of ${bytes(UTF8_ERR)}`);
  const h2 = await h.reconnect();
  const rest = [];
  for await (const c of h2) rest.push(c);
  checkOffsets(rest, "stdout", outEnd);
  checkOffsets(rest, "stderr", errEnd);
  const all = [...first, ...rest];
  const join = (s) => all.filter((c) => c.stream === s).map((c) => c.data).join("");
  assert.equal(join("stdout").length, UTF8_OUT.length, "stdout length");
  assert.equal(join("stdout"), UTF8_OUT);
  assert.equal(join("stderr"), UTF8_ERR);
  const r = await h2.result;
  assert.equal(r.exit_code, 0);
  assert.equal(r.stdout, rest.filter((c) => c.stream === "stdout").map((c) => c.data).join(""));
});

test("reconnect to a finished command replays its output from a given offset exactly once", T, async () => {
  const sb = box();
  assert.ok(utf8CommandId, "needs the command of the previous test");
  const whole = await sb.reconnect(utf8CommandId, { stdoutOffset: 0, stderrOffset: 0 });
  const r0 = await whole.result;
  assert.equal(r0.stdout, UTF8_OUT);
  assert.equal(r0.stderr, UTF8_ERR);
  assert.equal(r0.exit_code, 0);
  const k = 10 * 123; // a character boundary inside stdout
  const part = await sb.reconnect(utf8CommandId, { stdoutOffset: k, stderrOffset: bytes(UTF8_ERR) });
  const chunks = [];
  for await (const c of part) chunks.push(c);
  checkOffsets(chunks, "stdout", k);
  const r1 = await part.result;
  assert.equal(r1.stdout, Buffer.from(UTF8_OUT).subarray(k).toString("utf8"));
  assert.equal(r1.stderr, "");
});

test("a command past its timeout throws LangSmithCommandTimeoutError and is killed", T, async () => {
  const sb = box();
  const t0 = Date.now();
  await assert.rejects(sb.run("sleep 4001", { timeout: 2 }), LangSmithCommandTimeoutError);
  const took = Date.now() - t0;
  assert.ok(took >= 1500 && took < 20_000, `took ${took} ms`);
  assert.equal(await waitNoProcs(sb, "sleep 400[1]"), 0, "the command was killed");
});

test("runConfig sets a command's working directory and environment", T, async () => {
  const sb = box();
  const r = await sb.run('pwd; echo "$CONF_VAR"', {
    runConfig: { work_dir: "/tmp", env_vars: { CONF_VAR: "from runConfig €" } },
  });
  assert.deepEqual(r, { stdout: "/tmp\nfrom runConfig €\n", stderr: "", exit_code: 0 });
});

test("a pty command runs on a terminal with stderr merged into stdout", T, async () => {
  const sb = box();
  const r = await sb.run("test -t 0 && test -t 1 && echo on-a-tty; echo to-stderr >&2", { pty: true });
  assert.equal(r.exit_code, 0);
  assert.match(r.stdout, /on-a-tty\r?\n/);
  assert.match(r.stdout, /to-stderr/);
  assert.equal(r.stderr, "");
});

// ---------------------------------------------------------------- files

const TEXT_PATH = "/tmp/conformance/new dir/sub/héllo.txt";
const TEXT = "héllo, wörld € 😀\nsecond line\n";

test("write then read returns the same UTF-8 text and creates parent directories", T, async () => {
  const sb = box();
  await sb.write(TEXT_PATH, TEXT);
  const got = await sb.read(TEXT_PATH);
  assert.ok(got instanceof Uint8Array);
  assert.equal(Buffer.from(got).toString("utf8"), TEXT);
  const r = await sb.run(`cat '${TEXT_PATH}'`);
  assert.equal(r.stdout, TEXT, "the file in the sandbox holds the text");
  await sb.write(TEXT_PATH, "short\n");
  assert.equal(Buffer.from(await sb.read(TEXT_PATH)).toString(), "short\n", "a write replaces the file");
  await sb.write(TEXT_PATH, TEXT);
});

test("write then read moves a 12 MiB random binary file byte for byte", T, async () => {
  const sb = box();
  const data = crypto.randomBytes(12 * 1024 * 1024 + 13);
  const sha = crypto.createHash("sha256").update(data).digest("hex");
  await sb.write("/tmp/conformance/blob.bin", new Uint8Array(data), 100);
  const r = await sb.run("sha256sum /tmp/conformance/blob.bin; stat -c %s /tmp/conformance/blob.bin");
  assert.equal(r.stdout, `${sha}  /tmp/conformance/blob.bin\n${data.length}\n`, "the sandbox has the same bytes");
  const back = await sb.read("/tmp/conformance/blob.bin", 100);
  assert.equal(back.length, data.length);
  assert.ok(Buffer.from(back).equals(data), "read returns the same bytes");
  await sb.run("rm -f /tmp/conformance/blob.bin");
});

test("read of a missing file throws LangSmithResourceNotFoundError", T, async () => {
  const sb = box();
  await assert.rejects(sb.read("/tmp/conformance/no-such-file"), (e) => {
    assert.ok(e instanceof LangSmithResourceNotFoundError, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.resourceType, "file");
    return true;
  });
});

test("stat reports a file's size without reading it", T, async () => {
  const sb = box();
  const st = await sb.stat(TEXT_PATH);
  assert.equal(st.size_bytes, bytes(TEXT));
  await assert.rejects(sb.stat("/tmp/conformance/no-such-file"), LangSmithResourceNotFoundError);
});

test("readRange returns the requested bytes of a file", T, async () => {
  const sb = box();
  const raw = Buffer.from(TEXT);
  const c = await sb.readRange(TEXT_PATH, { start: 1, end: 4 });
  assert.ok(Buffer.from(c.content).equals(raw.subarray(1, 5)));
  assert.equal(c.start, 1);
  assert.equal(c.total_bytes, raw.length);
  const tail = await sb.readRange(TEXT_PATH, { suffixBytes: 5 });
  assert.ok(Buffer.from(tail.content).equals(raw.subarray(raw.length - 5)));
});

test("glob and grep find files and matching lines", T, async () => {
  const sb = box();
  const g = await sb.glob("**/*.txt", "/tmp/conformance");
  assert.deepEqual(g.matches.map((m) => m.path), [TEXT_PATH]);
  assert.equal(g.matches[0].size_bytes, bytes(TEXT));
  assert.equal(g.matches[0].is_dir, false);
  const m = await sb.grep("second", "/tmp/conformance");
  assert.deepEqual(
    m.matches.map((x) => [x.path, x.line, x.text]),
    [[TEXT_PATH, 2, "second line"]],
  );
});

// ---------------------------------------------------------------- delete

test("deleteSandbox deletes a sandbox and its VM; its name is then not found", BOOT, async () => {
  assert.ok(lazy, `${RENAMED} was not created`);
  await clientA.deleteSandbox(RENAMED);
  await assert.rejects(clientA.getSandbox(RENAMED), LangSmithResourceNotFoundError);
  await assert.rejects(clientA.deleteSandbox(RENAMED), LangSmithResourceNotFoundError);
  assert.equal(qemuOf(lazy.id), "", "no QEMU process of the deleted sandbox remains");
  lazy = null;
});

test("Sandbox.delete() deletes the last sandbox; the key's list is then empty", BOOT, async () => {
  const sb = box();
  await sb.delete();
  main = null;
  await assert.rejects(clientA.getSandbox(MAIN), LangSmithResourceNotFoundError);
  assert.deepEqual(await clientA.listSandboxes(), []);
  assert.equal(qemuOf(sb.id), "", "no QEMU process of the deleted sandbox remains");
});

// Whatever a failed test left behind.
after(async () => {
  for (const s of await clientA.listSandboxes().catch(() => [])) {
    await clientA.deleteSandbox(s.name).catch(() => {});
  }
});
