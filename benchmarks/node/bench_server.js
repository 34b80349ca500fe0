// The Node socket.io 4 server of the benchmarks: `echo` acknowledges with its arguments, `ping`
// answers `pong` with its arguments. Nothing else, so that the server costs the same for every
// client it is measured with.
//
//   PORT=0 BENCH_PATH=/bench/socket.io/ node benchmarks/node/bench_server.js [--watch-stdin]
//
// PORT is required (0 picks a free port); BENCH_PATH is the Socket.IO path (default
// /socket.io/, as a session backend behind the dev server's token proxy serves it);
// BENCH_PARSER=msgpack makes it speak socket.io-msgpack-parser (default: socket.io's JSON). Prints
// "listening on PORT" once. With --watch-stdin it exits when its standard input closes (the
// benchmark runner that started it is gone). Node modules are looked up in tests/node.
"use strict";

const http = require("http");
const path = require("path");

const NODE_MODULES = path.resolve(__dirname, "..", "..", "tests", "node", "node_modules");
const { Server } = require(path.join(NODE_MODULES, "socket.io"));

const port = Number(process.env.PORT);
if (process.env.PORT === undefined || !Number.isInteger(port) || port < 0) {
  console.error("bench_server.js: the environment variable PORT (a number) is required");
  process.exit(1);
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(req.url === "/" ? 200 : 404, { "content-type": "text/plain" });
  res.end(req.url === "/" ? "ok" : "not found");
});

const io = new Server(httpServer, {
  path: process.env.BENCH_PATH || "/socket.io/",
  maxHttpBufferSize: 64 * 1024 * 1024,
  // socket.io's own defaults otherwise (per-message deflate off, ping 25 s / 20 s).
  ...(process.env.BENCH_PARSER === "msgpack"
    ? { parser: require(path.join(NODE_MODULES, "socket.io-msgpack-parser")) }
    : {}),
});

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = args.pop();
    if (typeof ack === "function") ack(...args);
  });
  socket.on("ping", (...args) => {
    if (args.length > 0 && typeof args[args.length - 1] === "function") args.pop();
    socket.emit("pong", ...args);
  });
});

function shutdown() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
if (process.argv.includes("--watch-stdin")) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
