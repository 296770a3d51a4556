// subscribeToSelf: instance P holds two subscriptions to the same room (so the same channel),
// one with subscribeToSelf:false; instance Q holds one with subscribeToSelf:false. P and Q
// take turns publishing. The server sends every notification; the SDK drops the ones whose
// volatile.sdkInstanceId is its own.
//
// usage: node self.js ws://HOST:PORT

"use strict";

const { Inbox, connect, report, scenario, tagged, within } = require("./support");

scenario(async () => {
  const p = await connect("p");
  const q = await connect("q");
  report("instances", { p: p.protocol.id, q: q.protocol.id });

  const inboxes = {
    pNoSelf: new Inbox("pNoSelf"),
    pWithSelf: new Inbox("pWithSelf"),
    qNoSelf: new Inbox("qNoSelf"),
  };
  const rooms = {
    pNoSelf: await within(
      p.realtime.subscribe("i", "c", {}, inboxes.pNoSelf.callback, { subscribeToSelf: false }),
      "p to subscribe (subscribeToSelf false)",
    ),
    pWithSelf: await within(
      p.realtime.subscribe("i", "c", {}, inboxes.pWithSelf.callback),
      "p to subscribe (default)",
    ),
    qNoSelf: await within(
      q.realtime.subscribe("i", "c", {}, inboxes.qNoSelf.callback, { subscribeToSelf: false }),
      "q to subscribe (subscribeToSelf false)",
    ),
  };
  report("subscribed", { rooms });

  const turns = [
    [p, "p1"],
    [q, "q2"],
    [p, "p3"],
    [q, "q4"],
    [q, "lastFromQ"],
    [p, "lastFromP"],
  ];
  for (const [kuzzle, tag] of turns) {
    await within(kuzzle.realtime.publish("i", "c", { tag }), `the publication of ${tag}`);
  }

  const ends = { pNoSelf: "lastFromQ", pWithSelf: "lastFromP", qNoSelf: "lastFromP" };
  for (const [who, inbox] of Object.entries(inboxes)) {
    const notifications = await inbox.until(tagged(ends[who]), ends[who]);
    report("received", { who, notifications });
  }
});
