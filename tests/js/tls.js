// TLS scenarios run by tests/tests/it/tls.rs: the official Kuzzle SDK over wss://, socket.io-client
// over https:// (polling, then the upgrade to WebSocket inside TLS), and Node's own TLS client
// to read the certificate a handshake presents. The test's CA is trusted through
// NODE_EXTRA_CA_CERTS, as an application would trust a private CA.
//
// usage: node tls.js SCENARIO PORT
//   sdk       the SDK with sslConnection: server:now, then a subscription and a publication
//   serial    one handshake: prints the certificate's serial number and subject
//   reload    an SDK connection, then waits for a line on stdin (the test sends SIGHUP meanwhile),
//             then prints the serial a new handshake sees and whether the old connection still
//             answers
//   socketio  socket.io-client: connect, upgrade, server:now
//
// Prints one JSON object per line on stdout; a failure prints "FAIL: <reason>" on stderr and
// exits 1. Nothing sleeps: every wait is for an event, with a deadline.

"use strict";

const tls = require("tls");
const readline = require("readline");

const STEP_TIMEOUT = 10000;
const [scenarioName, portText] = process.argv.slice(2);
const port = Number(portText);

function report(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

function fail(reason) {
  const text = reason instanceof Error ? reason.stack || reason.message : String(reason);
  process.stderr.write(`FAIL: ${text}\n`);
  process.exit(1);
}

function within(promise, what, ms = STEP_TIMEOUT) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** One handshake on localhost:port: the presented certificate's serial and subject CN. */
function peerCertificate() {
  return within(
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: "localhost", port, servername: "localhost" }, () => {
        const certificate = socket.getPeerCertificate();
        const protocol = socket.getProtocol();
        socket.end();
        resolve({ serial: certificate.serialNumber, subject: certificate.subject.CN, protocol });
      });
      socket.on("error", reject);
    }),
    "a TLS handshake",
  );
}

async function sdk() {
  const { Kuzzle, WebSocket } = require("kuzzle-sdk");
  const kuzzle = new Kuzzle(new WebSocket("localhost", { port, sslConnection: true }));
  await within(kuzzle.connect(), "the SDK to connect over wss://");
  return kuzzle;
}

const scenarios = {
  async sdk() {
    const kuzzle = await sdk();
    const now = await within(kuzzle.server.now(), "server:now");
    report("now", { isNumber: typeof now === "number" });
    let notified;
    const notification = new Promise((resolve) => {
      notified = resolve;
    });
    await within(
      kuzzle.realtime.subscribe("i", "c", {}, (message) => notified(message)),
      "realtime:subscribe",
    );
    // 600 KB each way: many TLS records, partial socket writes on both sides.
    const big = "x".repeat(600 * 1024);
    await within(kuzzle.realtime.publish("i", "c", { over: "wss", big }), "realtime:publish");
    const message = await within(notification, "the notification");
    report("notification", {
      action: message.action,
      body: message.result._source.over,
      bigIntact: message.result._source.big === big,
    });
    kuzzle.disconnect();
  },

  async serial() {
    report("certificate", await peerCertificate());
  },

  async reload() {
    const kuzzle = await sdk();
    report("connected", await peerCertificate());
    const lines = readline.createInterface({ input: process.stdin });
    await within(new Promise((resolve) => lines.once("line", resolve)), "the test's go-ahead", 30000);
    lines.close();
    report("after", await peerCertificate());
    const now = await within(kuzzle.server.now(), "server:now on the old connection");
    report("old connection", { isNumber: typeof now === "number" });
    kuzzle.disconnect();
  },

  async socketio() {
    const { io } = require("socket.io-client");
    const socket = io(`https://localhost:${port}`, { transports: ["polling", "websocket"] });
    const upgraded = within(
      new Promise((resolve) => {
        socket.io.on("open", () => socket.io.engine.once("upgrade", (t) => resolve(t.name)));
      }),
      "the upgrade to WebSocket",
    );
    socket.on("connect_error", (error) => fail(error));
    await within(new Promise((resolve) => socket.once("connect", resolve)), "socket.io to connect");
    report("upgraded", { transport: await upgraded });
    const requestId = "sio-tls-1";
    const answer = within(
      new Promise((resolve) => socket.once(requestId, resolve)),
      "the answer to server:now",
    );
    socket.emit("kuzzle", { controller: "server", action: "now", requestId });
    const response = await answer;
    report("now", { status: response.status, transport: socket.io.engine.transport.name });
    socket.close();
  },
};

const scenario = scenarios[scenarioName];
if (!scenario) {
  fail(`unknown scenario ${scenarioName}`);
}
scenario().then(() => process.exit(0), fail);
