// A socket.io 4 server for the transport tests: the same "peer protocol" as the Python peer in
// tests/transport_peers.py, with the knobs the tests need (path, ping timing, limits).
//
//   node tests/node/peer_server.js '{"path": "/TOKEN/socket.io/", "pingInterval": 200}'
//
// Listens on 127.0.0.1 on a free port and prints "listening on PORT" once.
//
// It emits "welcome" {sid} to each socket as it connects (the Python peer does so from its
// connect handler, i.e. before the CONNECT answer).
//
// Events it handles:
//   echo (...args), ack          acknowledges with exactly its arguments
//   push (name, ...args)         emits `name` with those arguments to the sender
//   ask (name, ...args)          emits `name` with those arguments asking for an ack, then emits
//                                "answer" with the list of the ack's arguments
//   whoami, ack                  acknowledges with {sid, auth, header: x-peer-test header}
//   kick                         disconnects the sender (a server-side disconnect)
// A CONNECT whose auth has {"reject": true} is refused with message "rejected by peer".
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const options = JSON.parse(process.argv[2] || "{}");

const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});

const io = new Server(httpServer, {
  path: options.path || "/socket.io/",
  pingInterval: options.pingInterval || 25000,
  pingTimeout: options.pingTimeout || 20000,
  maxHttpBufferSize: options.maxHttpBufferSize || 64 * 1024 * 1024,
  transports: ["polling", "websocket"],
});

io.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  if (auth.reject) {
    const err = new Error("rejected by peer");
    err.data = { reason: "test" };
    next(err);
  } else {
    next();
  }
});

function splitAck(args) {
  if (args.length > 0 && typeof args[args.length - 1] === "function") {
    return [args.slice(0, -1), args[args.length - 1]];
  }
  return [args, () => {}];
}

io.on("connection", (socket) => {
  socket.emit("welcome", { sid: socket.id });
  socket.on("echo", (...raw) => {
    const [args, ack] = splitAck(raw);
    ack(...args);
  });
  socket.on("push", (name, ...args) => socket.emit(name, ...args));
  socket.on("ask", (name, ...args) => {
    socket.timeout(10000).emit(name, ...args, (err, ...answer) => {
      socket.emit("answer", err ? { error: String(err) } : answer);
    });
  });
  socket.on("whoami", (ack) => {
    const auth = socket.handshake.auth;
    ack({
      sid: socket.id,
      auth: auth && Object.keys(auth).length > 0 ? auth : null,
      header: socket.handshake.headers["x-peer-test"] || null,
    });
  });
  socket.on("kick", () => socket.disconnect(true));
});

process.on("SIGTERM", () => process.exit(0));
// The test process owns this server: when its stdin closes, the test is gone.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

httpServer.listen(0, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
