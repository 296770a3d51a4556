// Socket.io scenarios run by tests/tests/socketio.rs: npm socket.io-client 4.x against the real
// switchyard host and its socketio plugin (with the websocket plugin next to it).
//
// usage: node scenarios.js SCENARIO SOCKETIO_URL WEBSOCKET_URL TRANSPORTS_JSON
//
// Each scenario prints one JSON object per line on stdout for every observation
// ({"event": ..., ...}) and exits 0; a failure prints "FAIL: <reason>" on stderr and exits 1.
// Nothing sleeps to synchronise: every wait is for an event, with a deadline.

"use strict";

const { io } = require("socket.io-client");
const WebSocket = require("ws");

const STEP_TIMEOUT = Number(process.env.SIO_STEP_TIMEOUT_MS || 10000);
const [scenarioName, sioUrl, wsUrl, transportsJson] = process.argv.slice(2);
const transports = JSON.parse(transportsJson || '["polling","websocket"]');
const sockets = [];
let nextId = 0;

function report(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

function fail(reason) {
  const text = reason instanceof Error ? reason.stack || reason.message : String(reason);
  process.stderr.write(`FAIL: ${text}\n`);
  process.exit(1);
}

/** `promise`, or a rejection naming `what` once `ms` pass. */
function within(promise, what, ms = STEP_TIMEOUT) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** The next `event` on `emitter`, with a deadline; resolves with its first argument. */
function once(emitter, event, what, ms = STEP_TIMEOUT) {
  return within(new Promise((resolve) => emitter.once(event, resolve)), what, ms);
}

/** A connected socket.io client; `events` records its engine's transport changes. */
async function connect(name, options = {}) {
  const socket = io(sioUrl, {
    transports,
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
    ...options,
  });
  sockets.push(socket);
  socket.events = [];
  socket.io.on("open", () => {
    socket.events.push(`open:${socket.io.engine.transport.name}`);
    socket.io.engine.on("upgrade", (transport) => socket.events.push(`upgrade:${transport.name}`));
  });
  socket.on("disconnect", (reason) => socket.events.push(`disconnect:${reason}`));
  await once(socket, "connect", `${name} to connect to ${sioUrl}`);
  return socket;
}

/** Sends a Kuzzle request on `kuzzle`; resolves with what is emitted on its requestId. */
function query(socket, request, what) {
  const requestId = request.requestId || `sio-${process.pid}-${nextId++}`;
  const answer = once(socket, requestId, what || `${request.controller}:${request.action}`);
  socket.emit("kuzzle", { ...request, requestId });
  return answer;
}

/** A plain WebSocket client on the websocket plugin: `query` resolves with the response. */
async function wsClient() {
  const ws = new WebSocket(wsUrl);
  await once(ws, "open", `a WebSocket connection to ${wsUrl}`);
  const pending = new Map();
  ws.on("message", (data) => {
    const message = JSON.parse(data.toString());
    const resolve = pending.get(message.room);
    if (resolve) {
      pending.delete(message.room);
      resolve(message);
    }
  });
  ws.query = (request) =>
    within(
      new Promise((resolve) => {
        const requestId = `ws-${nextId++}`;
        pending.set(requestId, resolve);
        ws.send(JSON.stringify({ ...request, requestId }));
      }),
      `the WebSocket answer to ${request.controller}:${request.action}`,
    );
  return ws;
}

/** Collects what arrives on `event` of `socket`; `until(tag)` waits for a document tagged so. */
function inbox(socket, event) {
  const items = [];
  let wake = () => {};
  socket.on(event, (notification) => {
    items.push(notification);
    wake();
  });
  items.until = (tag) =>
    within(
      new Promise((resolve) => {
        const check = () => {
          if (items.some((item) => item.result && item.result._source.tag === tag)) {
            resolve(items);
          }
        };
        wake = check;
        check();
      }),
      `a notification tagged ${tag} on ${event}`,
    );
  return items;
}

const tags = (items) => items.map((item) => item.result._source.tag);

const publish = (client, tag, extra = {}) => {
  const request = {
    controller: "realtime",
    action: "publish",
    index: "i",
    collection: "c",
    body: { tag, ...extra },
  };
  return client instanceof WebSocket ? client.query(request) : query(client, request);
};

const subscribe = async (socket, filter) => {
  const response = await query(socket, {
    controller: "realtime",
    action: "subscribe",
    index: "i",
    collection: "c",
    body: filter,
  });
  if (response.status !== 200) {
    throw new Error(`subscribe failed: ${JSON.stringify(response)}`);
  }
  return response.result;
};

const scenarios = {
  // Flow control (issue 13): 100 subscribers that keep reading, one publisher emitting 5,000
  // publications back to back without waiting for answers. Every subscriber must get all of
  // them, and every publication must be answered 200.
  async burst() {
    const SUBSCRIBERS = Number(process.env.SIO_BURST_SUBSCRIBERS || 100);
    const PUBLISHES = Number(process.env.SIO_BURST_PUBLISHES || 5000);
    const DEADLINE = 5 * STEP_TIMEOUT;
    const subscribers = await Promise.all(
      Array.from({ length: SUBSCRIBERS }, (_, i) => connect(`subscriber ${i}`)),
    );
    let complete = 0;
    let allDone = () => {};
    const done = new Promise((resolve) => {
      allDone = resolve;
    });
    const seen = [];
    for (const socket of subscribers) {
      const { channel } = await subscribe(socket, {});
      const got = new Uint8Array(PUBLISHES);
      const record = { count: 0, duplicates: 0 };
      seen.push(record);
      socket.on(channel, (notification) => {
        const n = notification.result._source.n;
        if (got[n]) {
          record.duplicates += 1;
          return;
        }
        got[n] = 1;
        record.count += 1;
        if (record.count === PUBLISHES) {
          complete += 1;
          if (complete === SUBSCRIBERS) {
            allDone();
          }
        }
      });
    }
    report("subscribed", { subscribers: SUBSCRIBERS });
    const publisher = await connect("publisher");
    const statuses = {};
    let answered = 0;
    const answers = new Promise((resolve) => {
      for (let n = 0; n < PUBLISHES; n++) {
        const requestId = `burst-${n}`;
        publisher.once(requestId, (response) => {
          statuses[response.status] = (statuses[response.status] || 0) + 1;
          answered += 1;
          if (answered === PUBLISHES) {
            resolve();
          }
        });
        publisher.emit("kuzzle", {
          controller: "realtime",
          action: "publish",
          index: "i",
          collection: "c",
          requestId,
          body: { n, pad: "x".repeat(100) },
        });
      }
    });
    await within(answers, `the answers to ${PUBLISHES} publications`, DEADLINE);
    await within(done, `${PUBLISHES} notifications on every subscriber`, DEADLINE).catch(() => {});
    report("burst", {
      statuses,
      counts: seen.map((record) => record.count),
      duplicates: seen.reduce((sum, record) => sum + record.duplicates, 0),
      disconnected: subscribers.filter((socket) => !socket.connected).length,
    });
  },

  // A request and its answer on the requestId event; with an ack; bad requests.
  async api() {
    const socket = await connect("client");
    report("connected", { id: socket.id });
    report("now", { response: await query(socket, { controller: "server", action: "now", requestId: "r-now" }) });
    const acked = await within(
      new Promise((resolve) => {
        const event = new Promise((r) => socket.once("r-ack", r));
        socket.emit("kuzzle", { controller: "server", action: "now", requestId: "r-ack" }, (ack) =>
          event.then((emitted) => resolve({ ack, emitted })),
        );
      }),
      "the acknowledged request",
    );
    report("acked", acked);
    report("unknown", { response: await query(socket, { controller: "nope", action: "x" }) });
    const invalid = await within(
      new Promise((resolve) => socket.emit("kuzzle", "not an object", resolve)),
      "the answer to a request that is not an object",
    );
    report("invalid", { response: invalid });
    // Other events are not Kuzzle's: ignored, and the connection carries on.
    socket.emit("something", { a: 1 });
    report("after", { response: await query(socket, { controller: "server", action: "now" }) });
    report("transports", { events: socket.events });
  },

  // Subscribe from socket.io; publications from WebSocket and socket.io; unsubscribe.
  async pubsub() {
    const subscriber = await connect("subscriber");
    const publisher = await connect("publisher");
    const ws = await wsClient();
    const red = await subscribe(subscriber, { equals: { color: "red" } });
    const tagged = await subscribe(subscriber, { exists: "tag" });
    report("subscribed", { red, tagged });
    const redItems = inbox(subscriber, red.channel);
    const allItems = inbox(subscriber, tagged.channel);

    await publish(ws, "ws1", { color: "red" });
    await redItems.until("ws1");
    await publish(publisher, "sio1", { color: "red" });
    await publish(ws, "blue", { color: "blue" });
    await allItems.until("blue");

    const unsubscribed = await query(subscriber, {
      controller: "realtime",
      action: "unsubscribe",
      body: { roomId: red.roomId },
    });
    report("unsubscribed", { response: unsubscribed });
    await publish(ws, "after", { color: "red" });
    await publish(publisher, "last");
    await allItems.until("last");
    report("received", { red: redItems, all: tags(allItems) });
    ws.close();
  },

  // The server goes away and comes back on the same port: the client reconnects by itself,
  // subscribes again and notifications resume.
  async reconnect() {
    const subscriber = await connect("subscriber");
    const ws = await wsClient();
    const red = await subscribe(subscriber, { equals: { color: "red" } });
    const items = inbox(subscriber, red.channel);
    await publish(ws, "before", { color: "red" });
    await items.until("before");
    ws.close();
    const disconnected = once(subscriber, "disconnect", "the disconnection", 3 * STEP_TIMEOUT);
    report("ready");
    const reason = await disconnected;
    await once(subscriber, "connect", "the reconnection", 3 * STEP_TIMEOUT);
    const again = await subscribe(subscriber, { equals: { color: "red" } });
    report("resubscribed", { reason, before: red, after: again });
    // The WebSocket listener moved (port 0): publish from the socket.io client itself.
    await publish(subscriber, "after", { color: "red" });
    await items.until("after");
    report("received", { red: tags(items), events: subscriber.events });
  },

  // An oversized request closes that client's transport only; it reconnects and carries on,
  // and a healthy client never notices.
  async oversized() {
    const healthy = await connect("healthy");
    const big = await connect("big");
    const lost = once(big, "disconnect", "the oversized client's disconnection");
    big.emit("kuzzle", {
      controller: "server",
      action: "now",
      requestId: "too-big",
      body: { padding: "x".repeat(Number(process.env.SIO_OVERSIZE || 70000)) },
    });
    const reason = await lost;
    await once(big, "connect", "the oversized client to reconnect");
    const after = await query(big, { controller: "server", action: "now" });
    const other = await query(healthy, { controller: "server", action: "now" });
    report("oversized", {
      reason,
      after: after.status,
      healthy: other.status,
      healthyEvents: healthy.events,
    });
  },
};

const scenario = scenarios[scenarioName];
if (!scenario) {
  fail(`unknown scenario ${scenarioName}; known: ${Object.keys(scenarios).join(", ")}`);
}
const overall = setTimeout(() => fail("the scenario took too long"), 12 * STEP_TIMEOUT);
scenario()
  .then(() => {
    clearTimeout(overall);
    for (const socket of sockets) {
      socket.disconnect();
    }
    report("done");
    process.exit(0);
  })
  .catch(fail);
