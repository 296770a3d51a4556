// users: user notifications (someone joins or leaves a room) with users all, in, out and none.
//
// Room G has watchers with users out, in and all (subscribed in that order); room H has one
// with users none and one with users all (out and none share a channel name in Kuzzle, so they
// watch different rooms here). A "joiner" subscribes to G and H, then unsubscribes; a "leaver"
// subscribes, then disconnects. After each phase a sentinel is published to a tail
// subscription every watcher holds: user notifications of the phase arrive before it.
//
// usage: node users.js ws://HOST:PORT

"use strict";

const { Inbox, connect, report, scenario, tagged, within } = require("./support");

const G = { equals: { room: "g" } };
const H = { equals: { room: "h" } };

scenario(async () => {
  const publisher = await connect("publisher");
  const watchers = {};
  for (const [who, filter, users] of [
    ["gOut", G, "out"],
    ["gIn", G, "in"],
    ["gAll", G, "all"],
    ["hNone", H, "none"],
    ["hAll", H, "all"],
  ]) {
    const kuzzle = await connect(who);
    const inbox = new Inbox(who);
    const tail = new Inbox(`${who} tail`);
    const roomId = await within(
      kuzzle.realtime.subscribe("i", "c", filter, inbox.callback, {
        users,
        volatile: { who },
      }),
      `${who} to subscribe`,
    );
    await within(
      kuzzle.realtime.subscribe("i", "c", { exists: "phase" }, tail.callback),
      `${who} to subscribe to the tail`,
    );
    const channel = kuzzle.realtime._subscriptions.get(roomId)[0].channel;
    watchers[who] = { kuzzle, inbox, tail };
    report("subscribed", {
      who,
      users,
      roomId,
      channel,
      sdkInstanceId: kuzzle.protocol.id,
      sdkName: kuzzle.sdkName,
    });
  }

  const endPhase = async (phase) => {
    await within(
      publisher.realtime.publish("i", "c", { tag: `end ${phase}`, phase }),
      `the end of phase ${phase}`,
    );
    for (const [who, { inbox, tail }] of Object.entries(watchers)) {
      await tail.until(tagged(`end ${phase}`), `the end of phase ${phase}`);
      report("received", { phase, who, notifications: inbox.drain() });
    }
  };
  await endPhase("setup");

  const joiner = await connect("joiner");
  report("joiner", { sdkInstanceId: joiner.protocol.id });
  const noop = () => {};
  const joined = {
    g: await within(
      joiner.realtime.subscribe("i", "c", G, noop, { volatile: { who: "joiner" } }),
      "joiner to subscribe to G",
    ),
    h: await within(
      joiner.realtime.subscribe("i", "c", H, noop, { volatile: { who: "joiner" } }),
      "joiner to subscribe to H",
    ),
  };
  await endPhase("join");

  // The unsubscribe request's own volatile is not what the watchers see: Kuzzle sends the
  // volatile given at subscribe time.
  for (const roomId of [joined.g, joined.h]) {
    await within(
      joiner.realtime.unsubscribe(roomId, { volatile: { who: "unsubscribe request" } }),
      "joiner to unsubscribe",
    );
  }
  await endPhase("unsubscribe");

  const leaver = await connect("leaver");
  report("leaver", { sdkInstanceId: leaver.protocol.id });
  for (const filter of [G, H]) {
    await within(
      leaver.realtime.subscribe("i", "c", filter, noop, { volatile: { who: "leaver" } }),
      "leaver to subscribe",
    );
  }
  leaver.disconnect();
  // A disconnection has no response to wait for: wait for its notifications, then end the
  // phase as the others.
  for (const who of ["gAll", "hAll"]) {
    await watchers[who].inbox.waitFor(
      (notification) => notification.type === "user" && notification.user === "out",
      "the leaver's departure",
    );
  }
  await endPhase("disconnect");
});
