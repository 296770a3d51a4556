// The SDK's Http protocol against the HTTP plugin, with a WebSocket SDK listening: the Http
// instance connects (GET /_publicApi, then auth:checkToken), calls server:now and publishes;
// the WebSocket instance receives the notification.
//
// usage: node http_publish.js ws://HOST:PORT http://HOST:PORT

"use strict";

const { Http, Kuzzle } = require("kuzzle-sdk");
const { Inbox, connect, fail, report, scenario, tagged, within } = require("./support");

scenario(async () => {
  const target = new URL(process.argv[3] || "");
  if (target.protocol !== "http:" || !target.port) {
    fail(`expected http://HOST:PORT as the second argument, got ${process.argv[3]}`);
  }

  const listener = await connect("ws");
  const inbox = new Inbox("ws");
  await within(
    listener.realtime.subscribe("i", "c", {}, inbox.callback),
    "the WebSocket instance to subscribe",
  );
  report("subscribed");

  const http = new Kuzzle(new Http(target.hostname, { port: Number(target.port) }));
  await within(http.connect(), `the Http instance to connect to ${target}`);
  const routes = http.protocol.routes;
  report("routes", { now: routes.server.now, publish: routes.realtime.publish });

  const now = await within(http.server.now(), "server:now over HTTP");
  report("now", { now });

  const published = await within(
    http.realtime.publish("i", "c", { tag: "fromHttp" }),
    "realtime:publish over HTTP",
  );
  report("published", { published });

  const [notification] = await inbox.until(tagged("fromHttp"), "the notification of fromHttp");
  report("notification", {
    action: notification.action,
    index: notification.index,
    collection: notification.collection,
    source: notification.result._source,
    protocol: notification.protocol,
    sdkInstanceId: notification.volatile && notification.volatile.sdkInstanceId,
    httpInstanceId: http.protocol.id,
  });
  http.disconnect();
});
