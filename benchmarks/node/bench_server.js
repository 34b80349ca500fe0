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
//
// For the feature prices (benchmarks/features.py), each unset by default:
//   BENCH_NAMESPACES=/second[,/third]  also serves these namespaces, with the same two events
//     (on every server of the process);
//   BENCH_RECOVERY_PATH=/recovery/socket.io/  also serves, on the same port, a JSON server with
//     connectionStateRecovery on (every emitted event then carries an offset);
//   BENCH_MSGPACK_PATH=/msgpack/socket.io/  also serves, on the same port, a server speaking
//     socket.io-msgpack-parser.
// One process for all of them, so that a feature and the plain row it is divided by share the
// same Node process (the same JIT state, the same core) rather than two that may differ.
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

const extraNamespaces = (process.env.BENCH_NAMESPACES || "")
  .split(",")
  .map((name) => name.trim())
  .filter((name) => name.length > 0);
const msgpackParser = () => require(path.join(NODE_MODULES, "socket.io-msgpack-parser"));
const several = Boolean(process.env.BENCH_RECOVERY_PATH || process.env.BENCH_MSGPACK_PATH);

function serve(options) {
  const io = new Server(httpServer, {
    maxHttpBufferSize: 64 * 1024 * 1024,
    // socket.io's own defaults otherwise (per-message deflate off, ping 25 s / 20 s).
    ...options,
    // Several servers on one port: an upgrade for another's path is not to be cut after 1 s.
    ...(several ? { destroyUpgrade: false } : {}),
  });
  for (const nsp of [io.of("/"), ...extraNamespaces.map((name) => io.of(name))]) {
    nsp.on("connection", (socket) => {
      socket.on("echo", (...args) => {
        const ack = args.pop();
        if (typeof ack === "function") ack(...args);
      });
      socket.on("ping", (...args) => {
        if (args.length > 0 && typeof args[args.length - 1] === "function") args.pop();
        socket.emit("pong", ...args);
      });
    });
  }
  return io;
}

const servers = [
  serve({
    path: process.env.BENCH_PATH || "/socket.io/",
    ...(process.env.BENCH_PARSER === "msgpack" ? { parser: msgpackParser() } : {}),
  }),
];
if (process.env.BENCH_RECOVERY_PATH) {
  servers.push(
    serve({
      path: process.env.BENCH_RECOVERY_PATH,
      // Every event stays stored this long (pruned once a minute): short, as nothing reconnects.
      connectionStateRecovery: { maxDisconnectionDuration: 10 * 1000 },
    }),
  );
}
if (process.env.BENCH_MSGPACK_PATH) {
  servers.push(serve({ path: process.env.BENCH_MSGPACK_PATH, parser: msgpackParser() }));
}

function shutdown() {
  let open = servers.length;
  for (const io of servers) io.close(() => --open === 0 && process.exit(0));
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
