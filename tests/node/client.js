// A real socket.io-client, driven by JSON lines: lets Python tests put a Node peer in a room.
//
//   node tests/node/client.js URL [PATH] [TRANSPORTS] [OPTIONS]
//
//   URL         the origin, e.g. http://127.0.0.1:8080
//   PATH        the Socket.IO path (default /socket.io/)
//   TRANSPORTS  comma-separated, e.g. websocket or polling,websocket (default: the library's)
//   OPTIONS     JSON merged into the io() options, e.g. {"auth": {...}, "reconnection": false}
//
// Commands on stdin, one JSON object a line:
//   {"op": "emit", "event": E, "args": [...]}
//   {"op": "call", "id": ID, "event": E, "args": [...], "timeout": MS}   (timeout optional)
//   {"op": "disconnect"}   {"op": "connect"}   {"op": "close"} (disconnects and exits 0)
// Output on stdout, one JSON object a line, in the order things happen:
//   {"type": "connect", "id": SID}          {"type": "connect_error", "message": M}
//   {"type": "disconnect", "reason": R}     {"type": "event", "event": E, "args": [...]}
//   {"type": "ack", "id": ID, "args": [...]} or {"type": "ack", "id": ID, "error": "timeout"}
//   {"type": "error", "message": M}         (a command it could not run)
//   {"type": "closed"}                      (the last line)
// Binary values travel as {"$bytes": BASE64} both ways. End of stdin counts as close, so the
// client never outlives its test.
"use strict";

const readline = require("readline");
const { io } = require("socket.io-client");

const [url, path = "/socket.io/", transports = "", options = "{}"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node client.js URL [PATH] [TRANSPORTS] [OPTIONS_JSON]");
  process.exit(2);
}

function write(obj) {
  // Writes to a pipe are synchronous on Linux, so nothing is lost on exit.
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// JSON has no bytes: wrap them (Buffer.toJSON would otherwise turn them into number arrays).
function toWire(value) {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return { $bytes: Buffer.from(value).toString("base64") };
  }
  if (value instanceof ArrayBuffer) {
    return { $bytes: Buffer.from(value).toString("base64") };
  }
  if (Array.isArray(value)) {
    return value.filter((v) => typeof v !== "function").map(toWire);
  }
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = toWire(v);
    return out;
  }
  return value;
}

function fromWire(value) {
  if (Array.isArray(value)) return value.map(fromWire);
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$bytes" && typeof value.$bytes === "string") {
      return Buffer.from(value.$bytes, "base64");
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = fromWire(v);
    return out;
  }
  return value;
}

const opts = { path, ...JSON.parse(options) };
if (transports) opts.transports = transports.split(",").map((t) => t.trim());
const socket = io(url, opts);

socket.on("connect", () => write({ type: "connect", id: socket.id }));
socket.on("connect_error", (err) => write({ type: "connect_error", message: String(err.message) }));
socket.on("disconnect", (reason) => write({ type: "disconnect", reason }));
socket.onAny((event, ...args) => write({ type: "event", event, args: toWire(args) }));

let closed = false;
function close() {
  if (closed) return;
  closed = true;
  socket.close();
  write({ type: "closed" });
  process.exit(0);
}

function run(cmd) {
  const args = Array.isArray(cmd.args) ? fromWire(cmd.args) : [];
  switch (cmd.op) {
    case "emit":
      socket.emit(cmd.event, ...args);
      break;
    case "call": {
      const target = typeof cmd.timeout === "number" ? socket.timeout(cmd.timeout) : socket;
      const withTimeout = typeof cmd.timeout === "number";
      target.emit(cmd.event, ...args, (...res) => {
        if (withTimeout) {
          const err = res.shift();
          if (err) {
            write({ type: "ack", id: cmd.id, error: "timeout" });
            return;
          }
        }
        write({ type: "ack", id: cmd.id, args: toWire(res) });
      });
      break;
    }
    case "disconnect":
      socket.disconnect();
      break;
    case "connect":
      socket.connect();
      break;
    case "close":
      close();
      break;
    default:
      write({ type: "error", message: `unknown op ${JSON.stringify(cmd.op)}` });
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    write({ type: "error", message: `bad JSON: ${err.message}` });
    return;
  }
  try {
    run(cmd);
  } catch (err) {
    write({ type: "error", message: String(err && err.message ? err.message : err) });
  }
});
lines.on("close", close);
