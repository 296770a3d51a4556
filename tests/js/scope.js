// scope: four instances subscribe to the same filter with scope all, in, out and none. A
// publication is a document entering the scope ("in"), so only all and in receive it. Each
// instance also holds a "tail" subscription that receives the last message: whatever its
// scoped subscription should not receive would have arrived before it.
//
// usage: node scope.js ws://HOST:PORT

"use strict";

const { Inbox, connect, report, scenario, tagged, within } = require("./support");

scenario(async () => {
  const publisher = await connect("publisher");
  const watchers = {};
  for (const scope of ["all", "in", "out", "none"]) {
    const kuzzle = await connect(`scope ${scope}`);
    const inbox = new Inbox(`scope ${scope}`);
    const tail = new Inbox(`scope ${scope} tail`);
    const roomId = await within(
      kuzzle.realtime.subscribe("i", "c", { equals: { kind: "x" } }, inbox.callback, { scope }),
      `scope ${scope} to subscribe`,
    );
    await within(
      kuzzle.realtime.subscribe("i", "c", { equals: { kind: "end" } }, tail.callback),
      `scope ${scope} to subscribe to the tail`,
    );
    // The channel the server answered (the SDK keeps it in its Room object).
    const channel = kuzzle.realtime._subscriptions.get(roomId)[0].channel;
    watchers[scope] = { inbox, tail };
    report("subscribed", { scope, roomId, channel });
  }

  for (const body of [
    { tag: "x1", kind: "x" },
    { tag: "y1", kind: "y" },
    { tag: "x2", kind: "x" },
    { tag: "last", kind: "end" },
  ]) {
    await within(publisher.realtime.publish("i", "c", body), `the publication of ${body.tag}`);
  }
  for (const [scope, { inbox, tail }] of Object.entries(watchers)) {
    const tailed = await tail.until(tagged("last"), "last");
    report("received", { scope, notifications: inbox.drain(), tail: tailed });
  }
});
