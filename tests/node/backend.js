// The example session backend in Node: the same protocol as jamsocket_rt/dev/example_backend.py
// (whose docstring documents the events), so every test can run against both servers.
//
//   PORT=8080 SESSION_BACKEND_ID=demo node tests/node/backend.js
//
// PORT is required (0 picks a free port); prints "listening on PORT" (the real port) once.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

// Engine.IO's limit for one message or polling request, large enough for benchmark payloads.
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

const rawPort = process.env.PORT;
if (!rawPort) {
  console.error("backend.js: the environment variable PORT is required");
  process.exit(1);
}
const port = Number(rawPort);
if (!Number.isInteger(port) || port < 0) {
  console.error(`backend.js: PORT must be a number, not ${JSON.stringify(rawPort)}`);
  process.exit(1);
}
const backendId = process.env.SESSION_BACKEND_ID || "local";

const records = [];

// socket.io answers its own path and hands every other request to this listener.
const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/") {
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    res.end("ok");
  } else {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    res.end("not found");
  }
});

// PING_INTERVAL_MS and PING_TIMEOUT_MS (optional) shorten Engine.IO's liveness check for tests.
const io = new Server(httpServer, {
  maxHttpBufferSize: MAX_MESSAGE_BYTES,
  cors: { origin: "*" },
  pingInterval: Number(process.env.PING_INTERVAL_MS) || 25000,
  pingTimeout: Number(process.env.PING_TIMEOUT_MS) || 20000,
});

function number(value, fallback = 0) {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

// Splits a handler's arguments into the event's own and the acknowledgement callback, if any.
function splitAck(args) {
  if (args.length > 0 && typeof args[args.length - 1] === "function") {
    return [args.slice(0, -1), args[args.length - 1]];
  }
  return [args, () => {}];
}

// A malformed event must never crash the room: log it and carry on, as python-socketio does.
function on(socket, event, handler) {
  socket.on(event, async (...raw) => {
    const [args, ack] = splitAck(raw);
    try {
      await handler(args, ack);
    } catch (err) {
      console.error(`backend.js: event ${event} failed:`, err);
    }
  });
}

io.on("connection", (socket) => {
  const headers = {};
  for (const [name, value] of Object.entries(socket.handshake.headers)) {
    if (name.startsWith("x-verified-")) {
      headers[name] = Array.isArray(value) ? value.join(",") : value;
    }
  }
  const rawAuth = socket.handshake.auth;
  // socket.io-client sends {} when the application gave no auth; python-socketio gives null.
  const auth = rawAuth && Object.keys(rawAuth).length > 0 ? rawAuth : null;
  let userData = null;
  if (headers["x-verified-user-data"] !== undefined) {
    try {
      userData = JSON.parse(headers["x-verified-user-data"]);
    } catch {
      userData = null;
    }
  }

  // socket.io sent CONNECT before this handler, so welcome comes right after it.
  socket.emit("welcome", {
    backend_id: backendId,
    sid: socket.id,
    user: headers["x-verified-username"] ?? null,
    user_data: userData,
  });

  on(socket, "echo", (args, ack) => ack(...args));
  on(socket, "ping", (args) => socket.emit("pong", ...args));
  on(socket, "broadcast", (args) => io.emit("broadcast", ...args));
  on(socket, "record", (args) => {
    records.push(args.length > 0 ? args[0] : null);
  });
  on(socket, "records", (args, ack) => ack([...records]));
  on(socket, "reset_records", (args, ack) => {
    records.length = 0;
    ack(true);
  });
  on(socket, "whoami", (args, ack) =>
    ack({ sid: socket.id, backend_id: backendId, headers, auth }),
  );
  on(socket, "sleep", async (args, ack) => {
    const seconds = Math.max(0, number(args[0]));
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    ack(true);
  });
  on(socket, "emit_many", (args, ack) => {
    const spec = args[0] !== null && typeof args[0] === "object" ? args[0] : {};
    const event = typeof spec.event === "string" ? spec.event : "item";
    const count = Math.max(0, Math.trunc(number(spec.count)));
    const payload = spec.payload === undefined ? null : spec.payload;
    for (let i = 0; i < count; i++) {
      socket.emit(event, { i, payload });
    }
    ack(count);
  });
  // process.exit, not a graceful close: a crash closes no connection politely.
  on(socket, "exit", (args) => process.exit(Math.trunc(number(args[0], 1))));
  // true closes the underlying connection too, as python-socketio's client does on its own.
  on(socket, "disconnect_me", () => socket.disconnect(true));
});

function shutdown() {
  // io.close() disconnects every socket and closes the HTTP server.
  io.close(() => process.exit(0));
  // Keep-alive HTTP connections could hold the close back: don't wait for them for long.
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
