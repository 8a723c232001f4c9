// SPDX-License-Identifier: Apache-2.0
// Preloaded with `node -r` by the HTTP-fallback test: makes require("ws")
// fail exactly as it does for a user who has not installed the optional `ws`
// package, so that the langsmith client runs blocking commands over HTTP
// POST {dataplane_url}/execute instead of the WebSocket.
"use strict";
const Module = require("module");
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === "ws" || request.startsWith("ws/")) {
    const err = new Error(`Cannot find module '${request}'`);
    err.code = "MODULE_NOT_FOUND";
    throw err;
  }
  return resolve.call(this, request, ...rest);
};
