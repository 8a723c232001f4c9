// SPDX-License-Identifier: Apache-2.0
// Child process of the HTTP-fallback test (run with `node -r ./no-ws.js`):
// looks up sandbox argv[2] with the langsmith client, runs argv[3] with a
// blocking run(), and prints one JSON line: the result, whether `ws` could be
// loaded, and every HTTP request the client made.
"use strict";
const seen = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (url, init) => {
  seen.push(`${(init && init.method) || "GET"} ${url}`);
  return realFetch(url, init);
};
const { SandboxClient } = require("langsmith/sandbox");

(async () => {
  let wsLoadable = true;
  try {
    require("ws");
  } catch {
    wsLoadable = false;
  }
  const client = new SandboxClient();
  const sb = await client.getSandbox(process.argv[2]);
  const result = await sb.run(process.argv[3], { timeout: 30 });
  console.log(JSON.stringify({ wsLoadable, dataplane: sb.dataplane_url, result, seen }));
})().catch((e) => {
  console.log(JSON.stringify({ error: `${e.constructor.name}: ${e.message}`, seen }));
  process.exitCode = 1;
});
