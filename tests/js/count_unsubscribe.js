// realtime.count and realtime.unsubscribe: two instances subscribe with equivalent filters
// (one room), one leaves. After leaving, a raw listener on the old channel checks that the
// server stopped sending there, not only that the SDK stopped listening.
//
// usage: node count_unsubscribe.js ws://HOST:PORT

"use strict";

const { Inbox, connect, rejection, report, scenario, tagged, within } = require("./support");

scenario(async () => {
  const a = await connect("a");
  const b = await connect("b");
  const publisher = await connect("publisher");
  const aRed = new Inbox("aRed");
  const aTail = new Inbox("aTail");
  const bRed = new Inbox("bRed");

  const rooms = {
    a: await within(
      a.realtime.subscribe("i", "c", { equals: { color: "red" } }, aRed.callback),
      "a to subscribe",
    ),
    b: await within(
      b.realtime.subscribe("i", "c", { and: [{ equals: { color: "red" } }] }, bRed.callback),
      "b to subscribe",
    ),
    aTail: await within(
      a.realtime.subscribe("i", "c", { equals: { tail: true } }, aTail.callback),
      "a to subscribe to the tail",
    ),
  };
  report("subscribed", { rooms });
  report("count", {
    step: "both subscribed",
    count: await within(a.realtime.count(rooms.a), "count"),
  });

  const publish = (body) =>
    within(publisher.realtime.publish("i", "c", body), `the publication of ${body.tag}`);

  await publish({ tag: "before", color: "red" });
  const [seen] = await aRed.until(tagged("before"), "before");
  await bRed.until(tagged("before"), "before");
  const channel = seen.room;
  report("channel", { who: "a", channel });

  await within(a.realtime.unsubscribe(rooms.a), "a to unsubscribe");
  report("count", {
    step: "a left",
    count: await within(b.realtime.count(rooms.a), "count"),
  });

  // Listen on a's old channel below the SDK's rooms.
  const aRaw = new Inbox("aRaw");
  a.protocol.on(channel, aRaw.callback);

  await publish({ tag: "after", color: "red" });
  await publish({ tag: "last", color: "red", tail: true });
  report("received", {
    who: "aTail",
    notifications: await aTail.until(tagged("last"), "last"),
  });
  report("received", { who: "bRed", notifications: await bRed.until(tagged("last"), "last") });
  report("received", { who: "aRed", notifications: aRed.drain() });
  report("received", { who: "aRaw", notifications: aRaw.drain() });

  await within(b.realtime.unsubscribe(rooms.b), "b to unsubscribe");
  report("error", {
    step: "count of a room nobody is in",
    error: await rejection(b.realtime.count(rooms.a), "count of an empty room"),
  });
  report("error", {
    step: "unsubscribe again",
    error: await rejection(a.realtime.unsubscribe(rooms.a), "a second unsubscribe"),
  });
});
