// documents: every index, collection and document action through the SDK's own methods, and
// the errors each error class gives. Each step prints {event: "step", name, ok} or
// {event: "step", name, error: {id, status, message}}; timestamps and generated ids are
// replaced by placeholders so the Rust side can compare exactly.
//
// usage: node documents.js ws://HOST:PORT

"use strict";

const { connect, report, scenario, within } = require("./support");

/** Placeholders for what changes from run to run. */
function clean(value, key) {
  if (Array.isArray(value)) {
    return value.map((item) => clean(item));
  }
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = clean(v, k);
    }
    return out;
  }
  if ((key === "createdAt" || key === "updatedAt") && typeof value === "number") {
    return "<time>";
  }
  if (key === "scrollId" && typeof value === "string") {
    return "<scroll>";
  }
  return value === undefined ? null : value;
}

scenario(async () => {
  const kuzzle = await connect("writer");
  const step = async (name, promise) => {
    try {
      const value = await within(promise, name);
      report("step", { name, ok: clean(value) });
      return value;
    } catch (error) {
      if (error.id === undefined) {
        throw error;
      }
      report("step", { name, error: { id: error.id, status: error.status, message: error.message } });
      return undefined;
    }
  };
  const { index, collection, document } = kuzzle;
  const wait = { refresh: "wait_for" };

  await step("index:create", index.create("shop"));
  await step("index:create again", index.create("shop"));
  await step("index:create bad name", index.create("Shop"));
  await step("index:exists", index.exists("shop"));
  await step("index:create other", index.create("other"));
  await step("index:list", index.list());
  await step("index:mDelete", index.mDelete(["other", "ghost"]));

  await step("collection:create", collection.create("shop", "items", { properties: { city: { type: "keyword" } } }));
  await step("collection:create bad name", collection.create("shop", "It.ems"));
  await step("collection:exists", collection.exists("shop", "items"));
  await step("collection:list", collection.list("shop"));
  await step("collection:getMapping", collection.getMapping("shop", "items"));
  await step("collection:updateMapping", collection.updateMapping("shop", "items", { properties: { age: { type: "integer" } } }));
  await step("collection:update", collection.update("shop", "items", { mappings: { _meta: { v: 1 } } }));
  await step("collection:getMapping after", collection.getMapping("shop", "items"));
  await step("collection:refresh", collection.refresh("shop", "items"));
  await step("collection:create temp", collection.create("shop", "temp"));
  await step("collection:delete", collection.delete("shop", "temp"));
  await step("collection:exists deleted", collection.exists("shop", "temp"));

  await step("document:create", document.create("shop", "items", { city: "paris", age: 3 }, "a", wait));
  await step("document:create existing", document.create("shop", "items", {}, "a"));
  await step("document:create unknown index", document.create("ghost", "items", {}, "a"));
  await step("document:create unknown collection", document.create("shop", "ghost", {}, "a"));
  await step("document:create bad refresh", document.create("shop", "items", {}, "b", { refresh: "soon" }));
  await step("document:get", document.get("shop", "items", "a"));
  await step("document:get missing", document.get("shop", "items", "zz"));
  await step("document:exists", document.exists("shop", "items", "a"));
  await step("document:createOrReplace new", document.createOrReplace("shop", "items", "b", { city: "rome", age: 5 }));
  await step("document:createOrReplace existing", document.createOrReplace("shop", "items", "b", { city: "rome", age: 6 }));
  await step("document:replace", document.replace("shop", "items", "a", { city: "paris", age: 4 }));
  await step("document:replace missing", document.replace("shop", "items", "zz", {}));
  await step("document:update", document.update("shop", "items", "a", { tag: "x" }));
  await step("document:update source", document.update("shop", "items", "a", { tag: "y" }, { source: true }));
  await step("document:update missing", document.update("shop", "items", "zz", { tag: "x" }));
  await step("document:upsert create", document.upsert("shop", "items", "c", { city: "oslo" }, { default: { age: 9 } }));
  await step("document:upsert update", document.upsert("shop", "items", "c", { age: 10 }, { source: true }));
  await step("document:deleteFields", document.deleteFields("shop", "items", "c", ["age"], { source: true }));
  await step("document:count", document.count("shop", "items", {}));
  await step("document:count term", document.count("shop", "items", { query: { term: { city: "rome" } } }));
  await step("document:count koncorde", document.count("shop", "items", { query: { range: { age: { gte: 4 } } } }, { lang: "koncorde" }));

  const page = await step("document:search", document.search("shop", "items", { sort: ["age"] }, { from: 0, size: 2 }));
  if (page) {
    const next = await within(page.next(), "the next page");
    report("step", { name: "document:search next", ok: clean(next && next.hits.map((hit) => hit._id)) });
  }
  await step("document:search by id", document.search("shop", "items", { query: { match: { _id: "b" } } }));
  await step("document:search unknown keyword", document.search("shop", "items", { query: { equals: { city: "rome" } } }));
  await step("document:search forbidden key", document.search("shop", "items", { nope: 1 }));
  await step("document:search too many", document.search("shop", "items", {}, { size: 10001 }));
  const scrolled = await step("document:search scroll", document.search("shop", "items", { sort: ["age"] }, { size: 1, scroll: "10s" }));
  if (scrolled) {
    const ids = scrolled.hits.map((hit) => hit._id);
    for (let next = await scrolled.next(); next; next = await next.next()) {
      ids.push(...next.hits.map((hit) => hit._id));
    }
    report("step", { name: "document:scroll all", ok: ids });
  }
  await step("document:scroll unknown", kuzzle.query({ controller: "document", action: "scroll", scrollId: "nope" }));

  await step("document:mCreate", document.mCreate("shop", "items", [
    { _id: "m1", body: { age: 1 } },
    { _id: "a", body: { age: 1 } },
    { _id: "m2", body: "nope" },
  ]));
  await step("document:mCreate strict", document.mCreate("shop", "items", [{ _id: "a", body: {} }], { strict: true }));
  await step("document:mCreate too many", document.mCreate("shop", "items", Array.from({ length: 201 }, (_, i) => ({ _id: `x${i}`, body: {} }))));
  await step("document:mReplace", document.mReplace("shop", "items", [{ _id: "m1", body: { age: 2 } }, { _id: "zz", body: {} }]));
  await step("document:mCreateOrReplace", document.mCreateOrReplace("shop", "items", [{ _id: "m1", body: { age: 3 } }, { _id: "m3", body: { age: 3 } }]));
  await step("document:mUpdate", document.mUpdate("shop", "items", [{ _id: "m1", body: { tag: "u" } }, { _id: "zz", body: {} }]));
  await step("document:mUpsert", document.mUpsert("shop", "items", [{ _id: "m3", changes: { tag: "v" } }, { _id: "m4", changes: { tag: "w" }, default: { age: 4 } }]));
  await step("document:mGet", document.mGet("shop", "items", ["m1", "zz"]));
  await step("document:mGet strict", document.mGet("shop", "items", ["zz"], { strict: true }));
  await step("document:mExists", kuzzle.query({ controller: "document", action: "mExists", index: "shop", collection: "items", body: { ids: ["m1", "zz"] } }).then((r) => r.result));
  await step("document:mDelete", document.mDelete("shop", "items", ["m4", "zz"]));
  await step("document:updateByQuery", document.updateByQuery("shop", "items", { term: { age: 3 } }, { tag: "q" }));
  await step("document:deleteByQuery", document.deleteByQuery("shop", "items", { query: { term: { tag: "q" } } }));
  await step("document:validate", document.validate("shop", "items", { any: 1 }));
  await step("document:delete", document.delete("shop", "items", "b"));
  await step("document:get deleted", document.get("shop", "items", "b"));
  await step("document:delete missing", document.delete("shop", "items", "b"));

  // The SDK suite's specifications scenario, then validation against them and a reset.
  await step("collection:updateSpecifications", collection.updateSpecifications("shop", "items", { strict: false }));
  await step("collection:getSpecifications", collection.getSpecifications("shop", "items").then((s) => s.validation));
  await step("collection:validateSpecifications", collection.validateSpecifications("shop", "items", { strict: true }));
  await step("collection:validateSpecifications bad", collection.validateSpecifications("shop", "items", { strict: true, fields: { a: { type: "nope" } } }));
  await step("collection:updateSpecifications bad", collection.updateSpecifications("shop", "items", { nope: true }));
  await step("collection:updateSpecifications strict", collection.updateSpecifications("shop", "items", { strict: true, fields: { city: { type: "string", mandatory: true } } }));
  await step("document:validate strict", document.validate("shop", "items", { age: 1 }));
  await step("collection:truncate", collection.truncate("shop", "items", wait));
  await step("document:count truncated", document.count("shop", "items", {}));
  await step("admin:resetDatabase", kuzzle.query({ controller: "admin", action: "resetDatabase" }).then((r) => r.result));
  await step("index:list after reset", index.list());
  await step("collection:getSpecifications after reset", collection.getSpecifications("shop", "items").then((s) => s.validation.strict));
  await step("collection:deleteSpecifications", collection.deleteSpecifications("shop", "items"));
  await step("collection:getSpecifications deleted", collection.getSpecifications("shop", "items"));
  await step("index:delete missing", index.delete("shop"));
});
