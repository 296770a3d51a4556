// notifications: three instances subscribe to {equals: {color: "red"}} with scope all, in and
// out, plus a "tail" filter; one writer runs every kind of write, each document entering,
// staying in, leaving or never matching the filter. A final write matching the tail proves
// nothing else is on its way. Each notification is reduced to {action, scope, id, event,
// updatedFields?, volatile?}.
//
// usage: node notifications.js ws://HOST:PORT

"use strict";

const { Inbox, connect, report, scenario, within } = require("./support");

scenario(async () => {
  const writer = await connect("writer");
  await within(writer.index.create("n"), "the index");
  await within(writer.collection.create("n", "c"), "the collection");
  const watchers = {};
  for (const scope of ["all", "in", "out"]) {
    const kuzzle = await connect(`scope ${scope}`);
    const inbox = new Inbox(`scope ${scope}`);
    const tail = new Inbox(`scope ${scope} tail`);
    await within(
      kuzzle.realtime.subscribe("n", "c", { equals: { color: "red" } }, inbox.callback, { scope }),
      `scope ${scope} to subscribe`,
    );
    await within(kuzzle.realtime.subscribe("n", "c", { equals: { tag: "end" } }, tail.callback), "tail");
    watchers[scope] = { inbox, tail };
  }

  const d = writer.document;
  const writes = [
    ["create d1 red", () => d.create("n", "c", { color: "red" }, "d1", { volatile: { v: 1 } })],
    ["create d2 blue", () => d.create("n", "c", { color: "blue" }, "d2")],
    ["replace d1 blue", () => d.replace("n", "c", "d1", { color: "blue" })],
    ["replace d2 red", () => d.replace("n", "c", "d2", { color: "red" })],
    ["update d2 stays", () => d.update("n", "c", "d2", { size: 1 })],
    ["update d2 leaves", () => d.update("n", "c", "d2", { color: "green" })],
    ["createOrReplace d3 new", () => d.createOrReplace("n", "c", "d3", { color: "red" })],
    ["createOrReplace d3 existing", () => d.createOrReplace("n", "c", "d3", { color: "red", n: 2 })],
    ["delete d3 matching", () => d.delete("n", "c", "d3")],
    ["delete d1 not matching", () => d.delete("n", "c", "d1")],
    ["update d2 enters", () => d.update("n", "c", "d2", { color: "red" })],
    ["mCreate d4 red d5 blue", () => d.mCreate("n", "c", [{ _id: "d4", body: { color: "red" } }, { _id: "d5", body: { color: "blue" } }])],
    ["mUpdate d4 leaves", () => d.mUpdate("n", "c", [{ _id: "d4", body: { color: "blue" } }])],
    ["deleteByQuery red", () => d.deleteByQuery("n", "c", { term: { color: "red" } })],
    ["upsert d6 created", () => d.upsert("n", "c", "d6", { color: "red" })],
    ["silent create d7", () => d.create("n", "c", { color: "red" }, "d7", { silent: true })],
    ["silent update d7 leaves", () => d.update("n", "c", "d7", { color: "blue" }, { silent: true })],
    ["update d7 enters", () => d.update("n", "c", "d7", { color: "red" })],
    ["mDelete d6 d7", () => d.mDelete("n", "c", ["d6", "d7"])],
    ["tail", () => d.create("n", "c", { tag: "end" }, "end")],
  ];
  for (const [name, write] of writes) {
    await within(write(), name);
  }
  for (const [scope, { inbox, tail }] of Object.entries(watchers)) {
    await tail.until((n) => n.result && n.result._id === "end", "the tail");
    const notifications = inbox.drain().map((n) => {
      const out = { action: n.action, scope: n.scope, id: n.result._id, event: n.event };
      if (n.result._updatedFields) {
        out.updatedFields = n.result._updatedFields;
      }
      if (n.volatile && n.volatile.v) {
        out.volatile = n.volatile.v;
      }
      return out;
    });
    report("received", { scope, notifications });
  }
});
