// A session backend with connection state recovery, for tests/test_recovery.py.
//
//   PORT=8080 node tests/node/recovery_backend.js [--recovery on|off] [--max-disconnection MS]
//
// With `--recovery on` (the default) the server has socket.io's connectionStateRecovery
// (maxDisconnectionDuration: MS, default 2 minutes): it appends an offset to every event it
// emits without an ack and restores a socket that comes back in time.
//
// Namespaces "/" and "/extra" each tick: every 10 ms they emit ("tick", n) to the sockets that
// subscribed (room "ticks"), n counting from 0 per namespace, whether anybody listens or not.
// Each answers:
//   subscribe, ack            -> joins room "ticks"; acknowledges with the next n
//   whoami, ack               -> {sid, recovered, auth, tick: the next n, connected_at: n when
//                                this socket connected, disconnected_at: n when the last socket
//                                of the namespace disconnected (null if none did)}
//   push (name, ...args)      -> emits `name` with those arguments to the sender
//   push_volatile (name, ...) -> the same, volatile (no offset, not stored)
//   push_acked (name, ...args)-> emits `name` with those arguments and an ack callback; the
//                                acknowledgement's arguments come back as an "acked" event
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function option(name, fallback) {
  const index = process.argv.indexOf(name);
  return index === -1 ? fallback : process.argv[index + 1];
}

const port = Number(process.env.PORT);
const recovery = option("--recovery", "on") === "on";
const maxDisconnection = Number(option("--max-disconnection", String(2 * 60 * 1000)));

const httpServer = http.createServer((req, res) => {
  res.writeHead(req.url === "/" ? 200 : 404);
  res.end(req.url === "/" ? "ok" : "not found");
});
const io = new Server(httpServer, {
  cors: { origin: "*" },
  connectionStateRecovery: recovery
    ? { maxDisconnectionDuration: maxDisconnection, skipMiddlewares: true }
    : undefined,
});

function serve(nsp) {
  let next = 0;
  let disconnectedAt = null;
  setInterval(() => {
    nsp.to("ticks").emit("tick", next);
    next += 1;
  }, 10);
  nsp.on("connection", (socket) => {
    const connectedAt = next;
    socket.on("subscribe", (ack) => {
      socket.join("ticks");
      if (typeof ack === "function") ack(next);
    });
    socket.on("whoami", (ack) =>
      ack({
        sid: socket.id,
        recovered: socket.recovered,
        auth: socket.handshake.auth,
        tick: next,
        connected_at: connectedAt,
        disconnected_at: disconnectedAt,
      }),
    );
    socket.on("push", (name, ...args) => socket.emit(name, ...args));
    socket.on("push_volatile", (name, ...args) => socket.volatile.emit(name, ...args));
    socket.on("push_acked", (name, ...args) =>
      socket.timeout(10000).emit(name, ...args, (err, ...reply) => {
        socket.emit("acked", err ? "no answer" : reply);
      }),
    );
    socket.on("disconnect", () => {
      disconnectedAt = next;
    });
  });
}

serve(io.of("/"));
serve(io.of("/extra"));

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
