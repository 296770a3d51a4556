// cluster_three: three nodes A, B and C sharing Redis and PostgreSQL. One SDK subscriber per
// node listens to everything on i/c; SDK writers on B and C publish and create, update and
// delete documents; every subscriber must hear each event exactly once, whichever node made it.
// Then `realtime:count` and `realtime:list` asked on each node must add up the three nodes.
//
// The Rust side has made every node subscribe to the collection's Redis channel first (and
// created the index and collection), so nothing published here can precede a node's listening.
//
// usage: node cluster_three.js ws://A ws://B ws://C

"use strict";

const { Inbox, connectTo, report, scenario, within } = require("./support");

const [urlA, urlB, urlC] = process.argv.slice(2);

/** What identifies a notification in the reports. */
function summary(notification) {
  const result = notification.result || {};
  return {
    type: notification.type,
    action: notification.action,
    scope: notification.scope,
    id: result._id === undefined ? null : result._id,
    tag: result._source && result._source.tag !== undefined ? result._source.tag : null,
  };
}

/** `ask()` until `done(answer)`, every 20 ms, for 10 s at most: another node's counts reach
 * this one at its next heartbeat (this converges, it does not synchronise). */
async function until(ask, done, what) {
  const deadline = Date.now() + 10000;
  let last;
  for (;;) {
    last = await within(ask(), what);
    if (done(last)) {
      return last;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} never converged; last answer: ${JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

scenario(async () => {
  const subscribers = {
    A: await connectTo("subscriber on A", urlA),
    B: await connectTo("subscriber on B", urlB),
    C: await connectTo("subscriber on C", urlC),
  };
  const writerB = await connectTo("writer on B", urlB);
  const writerC = await connectTo("writer on C", urlC);

  const inboxes = {};
  const rooms = {};
  for (const [node, kuzzle] of Object.entries(subscribers)) {
    inboxes[node] = new Inbox(`subscriber on ${node}`);
    rooms[node] = await within(
      kuzzle.realtime.subscribe("i", "c", {}, inboxes[node].callback),
      `the subscription on ${node}`,
    );
  }
  report("subscribed", { rooms });

  // Counts and lists, asked on each node, add up the three.
  const room = rooms.A;
  for (const [node, kuzzle] of Object.entries(subscribers)) {
    const count = await until(
      () => kuzzle.realtime.count(room),
      (count) => count === 3,
      `realtime:count on ${node}`,
    );
    const list = await until(
      () => kuzzle.query({ controller: "realtime", action: "list" }).then((r) => r.result),
      (list) => list.i && list.i.c && list.i.c[room] === 3,
      `realtime:list on ${node}`,
    );
    report("counted", { node, count, list });
  }

  const wait = { refresh: "wait_for" };
  const steps = [
    ["B", "publish pb1", () => writerB.realtime.publish("i", "c", { tag: "pb1" })],
    ["C", "publish pc1", () => writerC.realtime.publish("i", "c", { tag: "pc1" })],
    ["B", "create b1", () => writerB.document.create("i", "c", { tag: "b1" }, "b1", wait)],
    ["C", "create c1", () => writerC.document.create("i", "c", { tag: "c1" }, "c1", wait)],
    // Documents are shared (one PostgreSQL): C updates what B created, B deletes C's.
    ["C", "update b1", () => writerC.document.update("i", "c", "b1", { tag: "b1u" }, wait)],
    ["B", "delete c1", () => writerB.document.delete("i", "c", "c1", wait)],
    ["B", "publish pb2", () => writerB.realtime.publish("i", "c", { tag: "pb2" })],
    ["C", "publish pc2", () => writerC.realtime.publish("i", "c", { tag: "pc2" })],
    // Last from each writer: once a subscriber has both, everything else from B and C (each
    // node's events travel in order) has arrived, and anything more would be a duplicate.
    ["B", "end of B", () => writerB.realtime.publish("i", "c", { tag: "endB" })],
    ["C", "end of C", () => writerC.realtime.publish("i", "c", { tag: "endC" })],
  ];
  for (const [node, what, step] of steps) {
    await within(step(), `${what} on ${node}`);
  }
  report("written", { steps: steps.map(([node, what]) => `${node}: ${what}`) });

  const isTag = (tag) => (notification) =>
    notification.result && notification.result._source && notification.result._source.tag === tag;
  for (const [node, inbox] of Object.entries(inboxes)) {
    await inbox.waitFor(isTag("endB"), "B's last publication");
    await inbox.waitFor(isTag("endC"), "C's last publication");
  }
  // One more round trip through every node before reading what arrived: a late duplicate of
  // anything above would come before this.
  await within(writerB.realtime.publish("i", "c", { tag: "finalB" }), "finalB");
  await within(writerC.realtime.publish("i", "c", { tag: "finalC" }), "finalC");
  for (const [node, inbox] of Object.entries(inboxes)) {
    await inbox.waitFor(isTag("finalB"), "finalB");
    await inbox.waitFor(isTag("finalC"), "finalC");
    report("received", { who: node, notifications: inbox.drain().map(summary) });
  }
});
