// Automatic reconnection: a subscriber and a publisher are connected; the script prints
// {"event":"ready"} and the test restarts the server on the same port. Both SDK instances must
// reconnect by themselves (Kuzzle's default: a new attempt every second), the subscriber must
// re-send its subscriptions (same roomId and channel: they are deterministic) and
// notifications must resume.
//
// usage: node reconnect.js ws://HOST:PORT

"use strict";

const { Inbox, STEP_TIMEOUT, connect, once, report, scenario, tagged, within } = require(
  "./support",
);

scenario(async () => {
  const subscriber = await connect("subscriber");
  const publisher = await connect("publisher");

  // Observe every realtime:subscribe response the subscriber gets, its automatic re-subscribes
  // included (the SDK gives no event for those).
  const responses = new Inbox("subscribe responses");
  const query = subscriber.query.bind(subscriber);
  subscriber.query = (request, options) => {
    const pending = query(request, options);
    if (request.controller === "realtime" && request.action === "subscribe") {
      pending.then(
        (response) => responses.callback({ ...response.result, filter: request.body }),
        () => {},
      );
    }
    return pending;
  };

  const red = new Inbox("red");
  const big = new Inbox("big");
  await within(
    subscriber.realtime.subscribe("i", "c", { equals: { color: "red" } }, red.callback),
    "the red subscription",
  );
  await within(
    subscriber.realtime.subscribe("i", "c", { range: { size: { gte: 10 } } }, big.callback, {
      scope: "in",
      users: "all",
      volatile: { who: "subscriber" },
    }),
    "the big subscription",
  );
  report("subscribed", { rooms: await responses.take(2, "subscribe response") });

  const publish = (body) =>
    within(publisher.realtime.publish("i", "c", body), `the publication of ${body.tag}`);
  await publish({ tag: "before", color: "red", size: 12 });
  report("received", {
    phase: "before",
    red: await red.until(tagged("before"), "before"),
    big: await big.until(tagged("before"), "before"),
  });

  const events = [];
  for (const [name, kuzzle] of [
    ["subscriber", subscriber],
    ["publisher", publisher],
  ]) {
    for (const event of ["disconnected", "networkError", "reconnected"]) {
      kuzzle.on(event, () => events.push({ who: name, event }));
    }
  }
  const reconnected = Promise.all([
    once(subscriber, "reconnected", "the subscriber to reconnect", 3 * STEP_TIMEOUT),
    once(publisher, "reconnected", "the publisher to reconnect", 3 * STEP_TIMEOUT),
  ]);
  const restartedAt = Date.now();
  report("ready");

  await reconnected;
  report("reconnected", { ms: Date.now() - restartedAt });
  const again = await responses.take(2, "automatic re-subscription");
  report("resubscribed", { rooms: again });

  await publish({ tag: "blue", color: "blue", size: 1 });
  await publish({ tag: "after", color: "red", size: 12 });
  report("received", {
    phase: "after",
    red: await red.until(tagged("after"), "after"),
    big: await big.until(tagged("after"), "after"),
  });
  const redRoom = again.find((r) => r.filter.equals).roomId;
  report("count", { count: await within(subscriber.realtime.count(redRoom), "count") });
  report("events", { events });
});
