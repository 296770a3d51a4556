// Filters and exact delivery: three subscriber instances with different filters, one
// publisher. Every subscriber collects what it receives up to the "last" sentinel, which is
// published after every other message: whatever a filter should not let through would have
// arrived before it.
//
// usage: node pubsub.js ws://HOST:PORT

"use strict";

const { Inbox, connect, report, scenario, tagged, within } = require("./support");

scenario(async () => {
  const publisher = await connect("publisher", { volatile: { app: "switchyard-tests" } });
  const red = await connect("red");
  const big = await connect("big");
  const every = await connect("every");
  report("instances", {
    publisher: publisher.protocol.id,
    red: red.protocol.id,
    big: big.protocol.id,
    every: every.protocol.id,
    sdkName: publisher.sdkName,
  });

  const inboxes = {
    red: new Inbox("red"),
    big: new Inbox("big"),
    every: new Inbox("every"),
    other: new Inbox("other"),
  };
  const rooms = {
    red: await within(
      red.realtime.subscribe("i", "c", { equals: { color: "red" } }, inboxes.red.callback),
      "red to subscribe",
    ),
    big: await within(
      big.realtime.subscribe(
        "i",
        "c",
        {
          bool: {
            must: [{ range: { size: { gte: 10 } } }],
            must_not: [{ equals: { color: "green" } }],
          },
        },
        inboxes.big.callback,
      ),
      "big to subscribe",
    ),
    every: await within(
      every.realtime.subscribe("i", "c", {}, inboxes.every.callback),
      "every to subscribe to i/c",
    ),
    other: await within(
      every.realtime.subscribe("i", "other", {}, inboxes.other.callback),
      "every to subscribe to i/other",
    ),
  };
  report("subscribed", { rooms });

  const messages = [
    ["i", "c", { tag: "m1", color: "blue", size: 3 }],
    ["i", "c", { tag: "m2", color: "red", size: 3 }],
    ["i", "c", { tag: "m3", color: "blue", size: 12 }],
    ["i", "c", { tag: "m4", color: "green", size: 20 }],
    ["i", "other", { tag: "m5", color: "red", size: 12 }],
    ["j", "c", { tag: "m6", color: "red", size: 50 }],
    ["i", "c", { tag: "last", color: "red", size: 99, nested: { list: [1, "two"] } }, "sentinel"],
    ["i", "other", { tag: "last" }],
  ];
  let seq = 0;
  for (const [index, collection, body, id] of messages) {
    seq += 1;
    const options = { volatile: { seq } };
    if (id) {
      options._id = id;
    }
    const published = await within(
      publisher.realtime.publish(index, collection, body, options),
      `the publication of ${body.tag} to ${index}/${collection}`,
    );
    report("published", { tag: body.tag, index, collection, published, at: Date.now() });
  }

  for (const [who, inbox] of Object.entries(inboxes)) {
    const notifications = await inbox.until(tagged("last"), "the last message");
    report("received", { who, notifications });
  }
});
