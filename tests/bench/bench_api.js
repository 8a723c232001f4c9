// SPDX-License-Identifier: Apache-2.0
// bench_api.js: `make bench` figures for sbxd's API, measured with the
// official langsmith@0.12.0 sandbox client (as its users see them). Started
// by tests/bench/bench_api.sh, which runs a private sbxd and sets
// LANGSMITH_ENDPOINT, LANGSMITH_API_KEY and SBX_BENCH_ACCEL. Prints figures,
// asserts nothing; exits 1 if a figure could not be measured.
//
//  - create -> first run("true") result (cold boot through the API)
//  - run("true") round trip over the WebSocket, p50/p99
//  - upload (write) and download (read) of a 256 MiB random file, MiB/s
//  - 10 sandboxes created at once: wall time until all are ready
"use strict";

const crypto = require("node:crypto");
const { SandboxClient } = require("langsmith/sandbox");

const ACCEL = process.env.SBX_BENCH_ACCEL || "unknown";
const RUNS = Number(process.env.SBX_BENCH_RUNS || 100);
const FILE_MIB = Number(process.env.SBX_BENCH_FILE_MIB || 256);
const PARALLEL = Number(process.env.SBX_BENCH_PARALLEL || 10);

const client = new SandboxClient();
const now = () => performance.now();
const ms = (t) => `${t.toFixed(0)} ms`;
let failed = 0;

function fig(text) {
  console.log(`${text} [${ACCEL}]`);
}
function miss(what, e) {
  failed++;
  console.log(`${what}: not measured: ${e && e.constructor ? e.constructor.name : ""}: ${e && e.message}`);
}
function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main() {
  let sb = null;
  // 1. cold boot through the API
  let t0 = now();
  let t1 = 0;
  try {
    sb = await client.createSandbox({ name: "bench-api", timeout: 300 });
    t1 = now();
    const r = await sb.run("true");
    const t2 = now();
    if (r.exit_code !== 0) throw new Error(`true exited ${r.exit_code}`);
    fig(`create -> first run("true") result: ${ms(t2 - t0)} (create ${ms(t1 - t0)}, first run ${ms(t2 - t1)})`);
  } catch (e) {
    if (t1) fig(`create (wait_for_ready): ${ms(t1 - t0)}`);
    miss(t1 ? 'first run("true")' : "create", e);
  }

  // 2. round trip of run("true") over the WebSocket
  if (sb) {
    try {
      for (let i = 0; i < 3; i++) await sb.run("true");
      const t = [];
      for (let i = 0; i < RUNS; i++) {
        const a = now();
        await sb.run("true");
        t.push(now() - a);
      }
      t.sort((x, y) => x - y);
      fig(`run("true") round trip (WebSocket): p50 ${pct(t, 50).toFixed(1)} ms, p99 ${pct(t, 99).toFixed(1)} ms over ${RUNS} runs`);
    } catch (e) {
      miss('run("true") round trip', e);
    }
  }

  // 3. upload and download of a large random file
  if (sb) {
    const path = "/var/tmp/bench-api.bin";
    const data = crypto.randomBytes(FILE_MIB * 1024 * 1024);
    let up = null;
    try {
      const a = now();
      await sb.write(path, data, 1200);
      up = (FILE_MIB * 1000) / (now() - a);
    } catch (e) {
      miss("upload", e);
    }
    if (up !== null) {
      try {
        const a = now();
        const back = await sb.read(path, 1200);
        const down = (FILE_MIB * 1000) / (now() - a);
        const same = Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(data);
        fig(`upload ${up.toFixed(1)} MiB/s, download ${down.toFixed(1)} MiB/s (${FILE_MIB} MiB of random bytes${same ? "" : "; READ BACK DIFFERENT BYTES"})`);
        if (!same) failed++;
      } catch (e) {
        miss("download", e);
        fig(`upload ${up.toFixed(1)} MiB/s (${FILE_MIB} MiB of random bytes)`);
      }
      await sb.run(`rm -f ${path}`).catch(() => {});
    }
  }
  if (sb) await sb.delete().catch((e) => miss("delete", e));

  // 4. PARALLEL sandboxes created at once
  const names = Array.from({ length: PARALLEL }, (_, i) => `bench-par-${i}`);
  try {
    const a = now();
    const each = await Promise.all(
      names.map(async (name) => {
        const s = now();
        await client.createSandbox({ name, timeout: 900 });
        return now() - s;
      }),
    );
    const wall = now() - a;
    each.sort((x, y) => x - y);
    fig(`${PARALLEL} sandboxes created concurrently: ${ms(wall)} wall (each ready after ${ms(each[0])} to ${ms(each[each.length - 1])})`);
  } catch (e) {
    miss(`${PARALLEL} concurrent creates`, e);
  }
  const a = now();
  await Promise.all(names.map((n) => client.deleteSandbox(n).catch(() => {})));
  fig(`deleting them concurrently: ${ms(now() - a)} wall`);
  // whatever is left (a failed step)
  for (const s of await client.listSandboxes().catch(() => [])) {
    await client.deleteSandbox(s.name).catch(() => {});
  }
}

main().then(
  () => process.exit(failed ? 1 : 0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
