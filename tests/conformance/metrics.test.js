// SPDX-License-Identifier: Apache-2.0
// sbxd conformance: GET /metrics (Prometheus text 0.0.4) against the suite's
// sbxd (tests/conformance/conformance.sh sets LANGSMITH_ENDPOINT and
// LANGSMITH_API_KEY): the format's rules, and the event counters after a
// real sandbox ran a command and a client asked for an unknown sandbox.
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const { SandboxClient, LangSmithResourceNotFoundError } = require("langsmith/sandbox");

const ENDPOINT = process.env.LANGSMITH_ENDPOINT;
if (!ENDPOINT || !process.env.LANGSMITH_API_KEY) {
  throw new Error("run me through tests/conformance/conformance.sh (LANGSMITH_ENDPOINT, keys)");
}
const client = new SandboxClient();
const NAME = "conf-metrics";

// name{labels} value → { families, samples: Map("name{labels}" → value) },
// asserting the text format rules a scraper relies on.
function parse(text) {
  const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$/;
  const families = new Map();
  const samples = new Map();
  let current = null;
  let prevBucket = -1;
  let infBucket = -1;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ")) continue;
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice(7).split(" ");
      assert.match(name, NAME_RE, line);
      assert.ok(!families.has(name), `family twice: ${line}`);
      families.set(name, type);
      current = name;
      prevBucket = infBucket = -1;
      continue;
    }
    assert.ok(!line.startsWith("#"), `unknown comment: ${line}`);
    const m = SAMPLE_RE.exec(line);
    assert.ok(m, `bad sample line: ${line}`);
    assert.ok(current && m[1].startsWith(current), `sample before its TYPE: ${line}`);
    const v = Number(m[3]);
    assert.ok(!Number.isNaN(v), line);
    samples.set(m[1] + (m[2] || ""), v);
    if (m[1].endsWith("_bucket")) {
      assert.ok(v >= prevBucket, `buckets decrease: ${line}`);
      prevBucket = v;
      if (m[2].includes('le="+Inf"')) infBucket = v;
    } else if (families.get(current) === "histogram" && m[1].endsWith("_count")) {
      assert.equal(v, infBucket, `+Inf != _count: ${line}`);
    }
  }
  return { families, samples };
}

async function scrape() {
  const r = await fetch(`${ENDPOINT}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") || "", /^text\/plain/);
  return parse(await r.text());
}

function errorsByKind(samples) {
  const m = new Map();
  for (const [k, v] of samples) {
    const g = /^sbx_errors_total\{kind="([^"]*)"\}$/.exec(k);
    if (g) m.set(g[1], v);
  }
  return m;
}

after(async () => {
  await client.deleteSandbox(NAME).catch(() => {});
});

test("metrics: the exposition follows the text format", async () => {
  const { families } = await scrape();
  for (const f of ["sbx_sandboxes", "sbx_create_seconds", "sbx_exec_start_seconds",
    "sbx_stream_bytes_total", "sbx_errors_total"]) {
    assert.ok(families.has(f), `no family ${f}`);
  }
  assert.equal(families.get("sbx_create_seconds"), "histogram");
  assert.equal(families.get("sbx_stream_bytes_total"), "counter");
});

test("metrics: a sandbox's create, exec and output are counted", { timeout: 300_000 }, async () => {
  const before = (await scrape()).samples;
  const sb = await client.createSandbox({ name: NAME, timeout: 240 });
  const r = await sb.run("head -c 5000 /dev/zero | tr '\\0' x");
  assert.equal(r.stdout.length, 5000);
  const now = (await scrape()).samples;
  const out = 'sbx_stream_bytes_total{direction="stdout"}';
  assert.ok(now.get(out) - before.get(out) >= 5000, `${out}: ${before.get(out)} → ${now.get(out)}`);
  assert.ok(now.get("sbx_create_seconds_count") >= 1);
  assert.ok(now.get("sbx_exec_start_seconds_count") >= 1);
  await client.deleteSandbox(NAME);
});

test("metrics: an unknown sandbox counts one error of its kind", async () => {
  const before = errorsByKind((await scrape()).samples);
  await assert.rejects(client.getSandbox("conf-metrics-no-such-box"), LangSmithResourceNotFoundError);
  const now = errorsByKind((await scrape()).samples);
  const grown = [...now].filter(([k, v]) => v !== (before.get(k) || 0));
  assert.equal(grown.length, 1, JSON.stringify(grown));
  assert.equal(grown[0][1] - (before.get(grown[0][0]) || 0), 1);
});
