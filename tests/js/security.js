// Security with the official SDK: a fresh server is open to anonymous users; createFirstAdmin
// with reset:true closes it (401 for anonymous); login (wrong, then right), checkToken,
// getMyRights, a restricted user's 403, logout revoking the token, and TokenExpired pushed to
// a connection whose token expires (its subscription dropped on the server).
//
// usage: node security.js ws://HOST:PORT

"use strict";

const { Inbox, connect, once, report, scenario, within } = require("./support");

/** The error a promise rejects with, as `{id, status, message}`. */
async function failure(promise, what) {
  try {
    await within(promise, what);
  } catch (error) {
    return { id: error.id, status: error.status, message: error.message };
  }
  throw new Error(`${what} succeeded`);
}

scenario(async () => {
  const admin = await connect("admin");
  report("anonymousCheck", { result: await within(admin.auth.checkToken(), "checkToken") });
  await within(admin.realtime.publish("i", "c", { open: true }), "an anonymous publish");
  report("openPublish");

  const first = await within(
    admin.security.createFirstAdmin(
      "root",
      {
        content: { name: "Root" },
        credentials: { local: { username: "root", password: "s3cret" } },
      },
      { reset: true },
    ),
    "createFirstAdmin",
  );
  report("firstAdmin", { _id: first._id, profileIds: first.content.profileIds });
  report("anonymousDenied", {
    error: await failure(admin.realtime.publish("i", "c", {}), "a denied publish"),
  });
  report("wrongPassword", {
    error: await failure(admin.auth.login("local", { username: "root", password: "nope" }), "a bad login"),
  });

  const jwt = await within(admin.auth.login("local", { username: "root", password: "s3cret" }), "login");
  const check = await within(admin.auth.checkToken(jwt), "checkToken(jwt)");
  report("loggedIn", { valid: check.valid, kuid: check.kuid, prefix: jwt.slice(0, 6) });
  await within(admin.realtime.publish("i", "c", { asAdmin: true }), "an admin publish");
  const rights = await within(admin.auth.getMyRights(), "getMyRights");
  report("rights", { rights });

  await within(
    admin.security.createRestrictedUser(
      { content: {}, credentials: { local: { username: "bob", password: "pw" } } },
      "bob",
    ),
    "createRestrictedUser",
  );
  const bob = await connect("bob");
  await within(bob.auth.login("local", { username: "bob", password: "pw" }), "bob's login");
  report("bobDenied", {
    error: await failure(bob.realtime.publish("i", "c", {}), "bob's publish"),
  });
  const bobJwt = bob.jwt;
  await within(bob.auth.logout(), "bob's logout");
  const after = await within(admin.auth.checkToken(bobJwt), "checkToken(bob's old jwt)");
  report("afterLogout", { result: after });

  // A token expiring while its connection holds a subscription.
  const short = await connect("short");
  await within(
    short.auth.login("local", { username: "root", password: "s3cret" }, "2s"),
    "a 2s login",
  );
  const frames = [];
  const original = short.protocol.client.onmessage;
  short.protocol.client.onmessage = (payload) => {
    const data = JSON.parse(payload.data || payload);
    if (data.type === "TokenExpired") {
      frames.push(data);
    }
    original(payload);
  };
  const inbox = new Inbox("short");
  const roomId = await within(short.realtime.subscribe("i", "c", {}, inbox.callback), "subscribe");
  report("subscribed", { count: await within(admin.realtime.count(roomId), "count before") });
  await once(short, "tokenExpired", "the tokenExpired event", 10000);
  report("tokenExpired", { frames });
  // Its only subscriber gone, the room itself is gone.
  report("unsubscribed", { error: await failure(admin.realtime.count(roomId), "count after") });
});
