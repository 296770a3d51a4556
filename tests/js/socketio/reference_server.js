// The baseline of `switchyard-bench socketio-fanout`: a plain npm socket.io 4.x server doing
// the same job as the plugin (clients join a room; each publication is emitted to the room on
// an event named after it), with nothing else in the way. Prints {"port": N} when listening.
//
// Events: "join" (room, ack) joins a room; "publish" (room, payload, ack) emits `payload` on
// event `room` to every member of `room`, then acks.
//
// usage: node reference_server.js [PORT]

"use strict";

const { Server } = require("socket.io");

const io = new Server(Number(process.argv[2] || 0), { serveClient: false });
io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack();
  });
  socket.on("publish", (room, payload, ack) => {
    io.to(room).emit(room, payload);
    if (typeof ack === "function") ack();
  });
});
io.httpServer.on("listening", () => {
  process.stdout.write(`${JSON.stringify({ port: io.httpServer.address().port })}\n`);
});
