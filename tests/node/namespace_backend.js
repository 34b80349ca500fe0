// A session backend with several Socket.IO namespaces, for tests/test_namespaces.py.
//
//   PORT=8080 node tests/node/namespace_backend.js
//
// Namespaces "/", "/admin" and "/game" each answer:
//   whoami, ack        -> {nsp, sid, engine: the Engine.IO connection id, engines: how many
//                         Engine.IO connections the server has, auth}
//   echo (...args), ack -> acknowledges with its arguments
//   push (name, ...args) -> emits `name` with those arguments to the sender, on its namespace
//   ghost               -> writes an EVENT for namespace "/ghost" (never opened) on the sender's
//                          Engine.IO connection, then emits "after_ghost" on its namespace
//   kick                -> disconnects the sender from this namespace only
// "/locked" refuses every CONNECT with {message: "locked", data: {code: 403}}.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT);
const httpServer = http.createServer((req, res) => {
  res.writeHead(req.url === "/" ? 200 : 404);
  res.end(req.url === "/" ? "ok" : "not found");
});
const io = new Server(httpServer, { cors: { origin: "*" } });

function serve(nsp) {
  nsp.on("connection", (socket) => {
    socket.on("whoami", (ack) =>
      ack({
        nsp: nsp.name,
        sid: socket.id,
        engine: socket.conn.id,
        engines: io.engine.clientsCount,
        auth: socket.handshake.auth,
      }),
    );
    socket.on("echo", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(...args);
    });
    socket.on("push", (name, ...args) => socket.emit(name, ...args));
    socket.on("ghost", () => {
      socket.conn.write('2/ghost,["boo"]');
      socket.emit("after_ghost");
    });
    socket.on("kick", () => socket.disconnect());
  });
}

serve(io.of("/"));
serve(io.of("/admin"));
serve(io.of("/game"));
const locked = io.of("/locked");
locked.use((socket, next) => {
  const error = new Error("locked");
  error.data = { code: 403 };
  next(error);
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
