// specifications: every write checked against its collection's validation specifications.
// A watcher subscribes to every document of the collection; the writer tries valid and
// invalid create, replace, createOrReplace, update (the merged document is checked), upsert,
// mCreate, mUpdate and updateByQuery, then a collection without specifications, then the same
// write after deleteSpecifications. Each step prints {event: "step", name, ok} or
// {event: "step", name, error: {id, status, message}}; the watcher's notifications, reduced to
// {action, id}, are reported once a final write ("end") arrives, proving refused writes sent
// none.
//
// usage: node specifications.js ws://HOST:PORT

"use strict";

const { Inbox, connect, report, scenario, within } = require("./support");

/** A result without `_kuzzle_info` (its timestamps change from run to run). */
function clean(value) {
  if (Array.isArray(value)) {
    return value.map(clean);
  }
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (k !== "_kuzzle_info") {
        out[k] = clean(v);
      }
    }
    return out;
  }
  return value === undefined ? null : value;
}

scenario(async () => {
  const kuzzle = await connect("writer");
  const step = async (name, promise) => {
    try {
      const value = await within(promise, name);
      report("step", { name, ok: clean(value) });
    } catch (error) {
      if (error.id === undefined) {
        throw error;
      }
      report("step", { name, error: { id: error.id, status: error.status, message: error.message } });
    }
  };
  const { collection, document: d } = kuzzle;
  await within(kuzzle.index.create("v"), "the index");
  await within(collection.create("v", "c"), "the collection");
  await within(collection.create("v", "plain"), "the plain collection");
  await step(
    "updateSpecifications",
    collection.updateSpecifications("v", "c", {
      strict: true,
      fields: {
        name: { type: "string", mandatory: true },
        age: { type: "integer" },
        tags: { type: "string", multivalued: { value: true } },
      },
    }),
  );

  const watcher = await connect("watcher");
  const inbox = new Inbox("watcher");
  await within(watcher.realtime.subscribe("v", "c", {}, inbox.callback), "the watcher to subscribe");

  await step("create valid", d.create("v", "c", { name: "a", age: 1, tags: ["x"] }, "a"));
  await step("create without a mandatory field", d.create("v", "c", { age: 2 }, "b"));
  await step("create with a wrong type", d.create("v", "c", { name: "b", age: "old" }, "b"));
  await step("create with an unspecified field", d.create("v", "c", { name: "b", extra: 1 }, "b"));
  await step("create with a unary multivalued field", d.create("v", "c", { name: "b", tags: "x" }, "b"));
  await step("create with an array in a unary field", d.create("v", "c", { name: ["b"] }, "b"));
  await step("replace invalid", d.replace("v", "c", "a", { age: 3 }));
  await step("createOrReplace invalid", d.createOrReplace("v", "c", "a", { name: 1 }));
  await step("update valid (merged)", d.update("v", "c", "a", { age: 5 }));
  await step("update invalid (merged)", d.update("v", "c", "a", { name: null }));
  await step("update with a wrong type", d.update("v", "c", "a", { age: 1.5 }));
  await step("upsert creating an invalid document", d.upsert("v", "c", "u", { age: 1 }));
  await step("upsert with a valid default", d.upsert("v", "c", "u", { age: 1 }, { default: { name: "u" } }));
  await step(
    "mCreate partial",
    d.mCreate("v", "c", [
      { _id: "m1", body: { name: "m" } },
      { _id: "m2", body: { age: 1 } },
    ]),
  );
  await step(
    "mUpdate partial",
    d.mUpdate("v", "c", [
      { _id: "m1", body: { age: "x" } },
      { _id: "a", body: { age: 7 } },
    ]),
  );
  await step("mCreate strict", d.mCreate("v", "c", [{ _id: "m3", body: { age: 1 } }], { strict: true }));
  await step("updateByQuery invalid", d.updateByQuery("v", "c", { ids: { values: ["a"] } }, { age: "x" }));
  await step("get a", d.get("v", "c", "a").then((doc) => doc._source));
  await step("count", d.count("v", "c", {}));
  await step("validate agrees", d.validate("v", "c", { name: "b", age: "old" }));
  await step("plain collection unaffected", d.create("v", "plain", { age: "old", extra: 1 }, "p"));
  await step("end", d.create("v", "c", { name: "end" }, "end"));
  const received = await inbox.until((n) => n.result && n.result._id === "end", "the end");
  const notifications = received.map((n) => ({ action: n.action, id: n.result._id }));
  report("received", { scope: "all", notifications });
  await step("deleteSpecifications", collection.deleteSpecifications("v", "c"));
  await step("create after deleteSpecifications", d.create("v", "c", { age: "old" }, "b"));
});
