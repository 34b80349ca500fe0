// A session backend whose Socket.IO server uses socket.io-msgpack-parser, for
// tests/test_msgpack.py (python twin: tests/backends/msgpack_backend.py).
//
//   PORT=8080 node tests/node/msgpack_backend.js
//
// Namespaces "/" and "/admin" each answer:
//   whoami, ack             -> {nsp, sid, transport: "websocket" or "polling", auth}
//   echo (...args), ack     -> acknowledges with its arguments
//   describe (...args), ack -> acknowledges with what the arguments are on this side, binary
//                              values as "<binary n>" (so a test sees bytes arrive as bytes)
//   push (name, ...args)    -> emits `name` with those arguments to the sender, on its namespace
//   ask (name, ...args)     -> emits `name` with those arguments asking for an ack, then emits
//                              "answer" with the list of the ack's arguments
//   binary                  -> emits "binary" with a Buffer and a Buffer nested in an object
//   undefined, ack          -> acknowledges with (undefined, {a: undefined, b: 1})
//   malformed               -> writes a binary message that is not MessagePack on the sender's
//                              Engine.IO connection
//   kick                    -> disconnects the sender from this namespace only
// "/locked" refuses every CONNECT with {message: "locked", data: {code: 403}}.
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const parser = require("socket.io-msgpack-parser");

const port = Number(process.env.PORT);
const httpServer = http.createServer((req, res) => {
  res.writeHead(req.url === "/" ? 200 : 404);
  res.end(req.url === "/" ? "ok" : "not found");
});
const io = new Server(httpServer, { parser, cors: { origin: "*" } });

function describe(value) {
  if (Buffer.isBuffer(value)) return `<binary ${value.length}>`;
  if (Array.isArray(value)) return value.map(describe);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)]));
  }
  return value === undefined ? "<undefined>" : value;
}

function serve(nsp) {
  nsp.on("connection", (socket) => {
    socket.on("whoami", (ack) =>
      ack({
        nsp: nsp.name,
        sid: socket.id,
        transport: socket.conn.transport.name,
        auth: socket.handshake.auth,
      }),
    );
    socket.on("echo", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(...args);
    });
    socket.on("describe", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(describe(args));
    });
    socket.on("push", (name, ...args) => socket.emit(name, ...args));
    socket.on("ask", (name, ...args) =>
      socket.emit(name, ...args, (...answer) => socket.emit("answer", answer)),
    );
    socket.on("binary", () =>
      socket.emit("binary", Buffer.from([0, 1, 2, 255]), { nested: [Buffer.from("hi")] }),
    );
    socket.on("undefined", (ack) => ack(undefined, { a: undefined, b: 1 }));
    socket.on("malformed", () => socket.conn.write(Buffer.from([0xc1])));
    socket.on("kick", () => socket.disconnect());
  });
}

serve(io.of("/"));
serve(io.of("/admin"));
const locked = io.of("/locked");
locked.use((socket, next) => {
  const error = new Error("locked");
  error.data = { code: 403 };
  next(error);
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
