// specification_types: Kuzzle's validation types, their typeOptions, nested fields, defaultValue
// and validators, through the official SDK. Bad specifications are refused (updateSpecifications)
// or described (validateSpecifications); then one collection gets specifications using every
// type, and each write breaks one rule. Defaults are read back with get; realtime:publish is
// checked and defaulted like a create, and a watcher subscribed to the collection reports what
// it received once the final publish ("end") arrives, proving refused messages sent nothing.
// Each step prints {event: "step", name, ok} or {event: "step", name, error: {id, status, message}}.
//
// usage: node specification_types.js ws://HOST:PORT

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
  const { collection, document: d, realtime } = kuzzle;
  await within(kuzzle.index.create("t"), "the index");
  await within(collection.create("t", "c"), "the collection");

  const bad = (name, spec) => step(`bad ${name}`, collection.updateSpecifications("t", "c", spec));
  await bad("type name", { fields: { a: { type: "geoPoint" } } });
  await bad("string length", { fields: { a: { type: "string", typeOptions: { length: { min: 3, max: 1 } } } } });
  await bad("numeric range", { fields: { a: { type: "numeric", typeOptions: { range: { min: "0" } } } } });
  await bad("enum values", { fields: { a: { type: "enum" } } });
  await bad("date formats", { fields: { a: { type: "date", typeOptions: { formats: ["nope"] } } } });
  await bad("geo_shape types", { fields: { a: { type: "geo_shape", typeOptions: { shapeTypes: ["blob"] } } } });
  await bad("option of another type", { fields: { a: { type: "boolean", typeOptions: { notEmpty: true } } } });
  await bad("missing level", { fields: { "a/b": { type: "string" } } });
  await bad("children of a string", { fields: { a: { type: "string" }, "a/b": { type: "string" } } });
  await bad("validators", { validators: [{ nope: {} }] });
  await step(
    "validateSpecifications lists every problem",
    collection.validateSpecifications("t", "c", {
      fields: { a: { type: "email", typeOptions: { notEmpty: "yes" } }, b: { type: "nope" } },
    }),
  );

  await step(
    "updateSpecifications",
    collection.updateSpecifications("t", "c", {
      strict: true,
      fields: {
        name: { type: "string", mandatory: true, typeOptions: { length: { min: 2, max: 10 } } },
        age: { type: "integer", typeOptions: { range: { min: 0, max: 150 } } },
        score: { type: "numeric", typeOptions: { range: { max: 10 } } },
        ok: { type: "boolean" },
        born: { type: "date", typeOptions: { formats: ["strict_date"], range: { min: "1900-01-01" } } },
        mail: { type: "email" },
        site: { type: "url", typeOptions: { notEmpty: true } },
        ip: { type: "ip_address" },
        color: { type: "enum", typeOptions: { values: ["red", "blue"] }, defaultValue: "red" },
        where: { type: "geo_point" },
        zone: { type: "geo_shape", typeOptions: { shapeTypes: ["circle"] } },
        meta: { type: "anything" },
        address: { type: "object", typeOptions: { strict: true } },
        "address/city": { type: "string", mandatory: true },
        "address/zip": { type: "string", defaultValue: "00000" },
        tags: { type: "string", multivalued: { value: true, maxCount: 2 } },
        status: { type: "string", defaultValue: "new" },
      },
      validators: [{ not: { equals: { name: "forbidden" } } }],
    }),
  );

  const watcher = await connect("watcher");
  const inbox = new Inbox("watcher");
  await within(watcher.realtime.subscribe("t", "c", {}, inbox.callback), "the watcher to subscribe");

  const everything = {
    name: "ann",
    age: 30,
    score: 9.5,
    ok: true,
    born: "1990-05-17",
    mail: "ann@example.com",
    site: "https://example.com/ann",
    ip: "192.168.0.1",
    where: { lat: 43.6, lon: 3.9 },
    zone: { type: "circle", coordinates: [3.9, 43.6], radius: "10km" },
    meta: { list: [1, "two"] },
    address: { city: "Montpellier" },
    tags: ["a", "b"],
  };
  await step("create with every type", d.create("t", "c", everything, "ann"));
  await step("defaults were stored", d.get("t", "c", "ann").then((doc) => doc._source));
  const create = (name, body) => step(name, d.create("t", "c", { name: "bob", ...body }, "bob"));
  await create("string too short", { name: "b" });
  await create("integer over its maximum", { age: 200 });
  await create("integer with a fraction", { age: 1.5 });
  await create("integer as a string", { age: "1" });
  await create("numeric over its maximum", { score: 11 });
  await create("boolean", { ok: "yes" });
  await create("date format", { born: "17/05/1990" });
  await create("date before its minimum", { born: "1800-01-01" });
  await create("email", { mail: "bob@" });
  await create("url empty", { site: "" });
  await create("url", { site: "no way" });
  await create("ip_address", { ip: "999.1.1.1" });
  await create("enum", { color: "green" });
  await create("geo_point", { where: { lat: 1 } });
  await create("geo_shape type not allowed", { zone: { type: "point", coordinates: [1, 2] } });
  await create("nested mandatory", { address: {} });
  await create("nested strict", { address: { city: "x", street: "y" } });
  await create("too many elements", { tags: ["a", "b", "c"] });
  await create("validators", { name: "forbidden" });
  await step("update sets a default on null", d.update("t", "c", "ann", { status: null }));
  await step("replace fills defaults", d.replace("t", "c", "ann", { name: "ann", address: { city: "Paris" } }));
  await step("get after replace", d.get("t", "c", "ann").then((doc) => doc._source));
  await step(
    "validate lists nested problems",
    d.validate("t", "c", { name: "a", address: { city: 1 }, tags: "x" }),
  );

  await step("publish valid", realtime.publish("t", "c", { name: "pub", address: { city: "Nice" } }));
  await step("publish invalid", realtime.publish("t", "c", { name: "p" }));
  await step("publish refused by validators", realtime.publish("t", "c", { name: "forbidden" }));
  await step("publish strict", realtime.publish("t", "c", { name: "pub", extra: 1 }));
  await step("publish elsewhere", realtime.publish("t", "other", { anything: 1 }));
  await step("end", realtime.publish("t", "c", { name: "end" }));
  const received = await inbox.until((n) => n.result && n.result._source && n.result._source.name === "end", "the end");
  const notifications = received.map((n) => ({ action: n.action, id: n.result._id || null, source: clean(n.result._source) }));
  report("received", { scope: "all", notifications });
  await step("deleteSpecifications", collection.deleteSpecifications("t", "c"));
  await step("publish after deleteSpecifications", realtime.publish("t", "c", { name: "p" }));
});
