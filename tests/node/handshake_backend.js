// A session backend that reports each socket's handshake, for tests/test_handshake.py.
//
//   PORT=8080 node tests/node/handshake_backend.js
//
// Namespaces "/" and "/x" answer:
//   handshake, ack -> {nsp, query: socket.handshake.query, auth: socket.handshake.auth}
//   echo (...args), ack -> acknowledges with its arguments
//   record (...args) -> keeps the arguments; `records`, ack -> every record kept so far
//                       (the Engine.IO query items too are visible per socket, not kept)
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT);
const httpServer = http.createServer((req, res) => {
  res.writeHead(req.url === "/" ? 200 : 404);
  res.end(req.url === "/" ? "ok" : "not found");
});
const io = new Server(httpServer, { cors: { origin: "*" } });
const records = [];

function serve(nsp) {
  nsp.on("connection", (socket) => {
    socket.on("handshake", (ack) =>
      ack({ nsp: nsp.name, query: socket.handshake.query, auth: socket.handshake.auth }),
    );
    socket.on("echo", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(...args);
    });
    socket.on("record", (...args) => records.push(args));
    socket.on("records", (ack) => ack(records));
  });
}

serve(io.of("/"));
serve(io.of("/x"));

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
