// SPDX-License-Identifier: Apache-2.0
// bench_pool.js: `make bench` figures of sandbox starts through sbxd's API
// as a user of the official langsmith client sees them, against an sbxd
// started with a prewarmed pool of the default image (tests/bench/
// bench_api.sh). Prints figures, asserts nothing; exits 1 if a figure could
// not be measured.
//
//  - cold boot: a create with a memory size no pool and no zygote serves
//  - pool: create -> first run("true") result, p50/p99, each create taken
//    from a refilled pool; ratio to the cold boot
"use strict";

const { SandboxClient } = require("langsmith/sandbox");

const ACCEL = process.env.SBX_BENCH_ACCEL || "unknown";
const RUNS = Number(process.env.SBX_BENCH_POOL_RUNS || 10);
const ENDPOINT = process.env.LANGSMITH_ENDPOINT;
const client = new SandboxClient();
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// sum of sbx_pool_ready over every source
async function poolReady() {
  const res = await fetch(`${ENDPOINT}/metrics`);
  const text = await res.text();
  let n = 0;
  for (const m of text.matchAll(/^sbx_pool_ready\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

async function waitPool(timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if ((await poolReady()) > 0) return;
    await sleep(100);
  }
  throw new Error(`the pool did not fill within ${timeoutMs / 1000} s`);
}

const createMs = [];

async function createAndRun(name, opts) {
  const a = now();
  const sb = await client.createSandbox({ name, timeout: 300, ...opts });
  createMs.push(now() - a);
  const r = await sb.run("true");
  const t = now() - a;
  if (r.exit_code !== 0) throw new Error(`true exited ${r.exit_code}`);
  await sb.delete();
  return t;
}

async function main() {
  // a shape nothing is prepared for: 640 MiB
  const cold = await createAndRun("bench-cold", { memBytes: 640 * 1024 * 1024 });
  console.log(`cold boot through the API, create -> first run("true"): ${cold.toFixed(0)} ms [${ACCEL}]`);
  const t = [];
  for (let i = 0; i < RUNS; i++) {
    await waitPool(600000);
    t.push(await createAndRun(`bench-pool-${i}`, {}));
  }
  t.sort((x, y) => x - y);
  const c = createMs.slice(1).sort((x, y) => x - y);
  const p50 = pct(t, 50);
  console.log(
    `from the pool, create -> first run("true"): p50 ${p50.toFixed(0)} ms, p99 ${pct(t, 99).toFixed(0)} ms over ${RUNS} creates, ${(cold / p50).toFixed(0)}x faster than the cold boot (the create alone: p50 ${pct(c, 50).toFixed(0)} ms) [${ACCEL}]`,
  );
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`bench_pool: not measured: ${e && e.message}`);
    process.exit(1);
  },
);
