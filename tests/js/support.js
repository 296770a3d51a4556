// Shared helpers for the SDK scenarios run by tests/tests/sdk.rs.
//
// Each scenario connects official Kuzzle SDK instances (kuzzle-sdk 7.x, WebSocket protocol) to
// the server URL given as its first argument, prints one JSON object per line on stdout for
// every observation ({"event": ..., ...}), and exits 0. Any failure, rejected promise or
// timeout prints "FAIL: <reason>" on stderr and exits 1. Nothing sleeps: every wait is for an
// event or a promise, with a deadline.

"use strict";

const { Kuzzle, WebSocket } = require("kuzzle-sdk");

/** Deadline of each single wait (ms). */
const STEP_TIMEOUT = Number(process.env.SDK_STEP_TIMEOUT_MS || 10000);
/** Deadline of a whole scenario (ms). */
const SCENARIO_TIMEOUT = Number(process.env.SDK_SCENARIO_TIMEOUT_MS || 45000);

const started = Date.now();
const instances = [];

/** Prints one observation line. */
function report(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

/** Fails the scenario: message on stderr, exit status 1. */
function fail(reason) {
  const text = reason instanceof Error ? reason.stack || reason.message : String(reason);
  process.stderr.write(`FAIL: ${text}\n`);
  process.exit(1);
}

/** `promise`, or a rejection naming `what` once `ms` pass. */
function within(promise, what, ms = STEP_TIMEOUT) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** The next emission of `event` on `emitter` (an SDK instance), with a deadline. */
function once(emitter, event, what, ms = STEP_TIMEOUT) {
  return within(
    new Promise((resolve) => {
      const listener = (...args) => {
        emitter.removeListener(event, listener);
        resolve(args);
      };
      emitter.on(event, listener);
    }),
    what,
    ms,
  );
}

/** `ws://host:port` from argv[2]. */
function serverUrl() {
  const url = process.argv[2];
  if (!url) {
    fail(`usage: node ${process.argv[1]} ws://HOST:PORT`);
  }
  const parsed = new URL(url);
  if (parsed.protocol !== "ws:" || !parsed.port) {
    fail(`expected ws://HOST:PORT, got ${url}`);
  }
  return { host: parsed.hostname, port: Number(parsed.port), url };
}

/**
 * A connected SDK instance named `name`. `options` go to `new Kuzzle` (e.g. `volatile`),
 * `protocolOptions` to `new WebSocket`.
 */
async function connect(name, options = {}, protocolOptions = {}) {
  return connectTo(name, serverUrl().url, options, protocolOptions);
}

/** As `connect`, to `url` (`ws://HOST:PORT`) instead of argv[2]: scenarios with several servers. */
async function connectTo(name, url, options = {}, protocolOptions = {}) {
  const parsed = new URL(url);
  const [host, port] = [parsed.hostname, Number(parsed.port)];
  const kuzzle = new Kuzzle(new WebSocket(host, { port, ...protocolOptions }), options);
  instances.push(kuzzle);
  kuzzle.on("networkError", (error) => {
    process.stderr.write(`[${name}] networkError: ${error.message}\n`);
  });
  await within(kuzzle.connect(), `${name} to connect to ${url}`);
  return kuzzle;
}

/**
 * Collects what an SDK callback receives. `callback` is the function to give the SDK;
 * `until(predicate)` waits for the first new item matching it and returns every item received
 * since the previous `until`, that one included.
 */
class Inbox {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.cursor = 0;
    this.wake = null;
    this.callback = (notification) => {
      this.items.push(notification);
      if (this.wake) {
        this.wake();
      }
    };
  }

  async until(predicate, what, ms = STEP_TIMEOUT) {
    const index = await this.waitFor(predicate, what, ms);
    const batch = this.items.slice(this.cursor, index + 1);
    this.cursor = index + 1;
    return batch;
  }

  /** Waits for a new item matching `predicate` without marking anything read; its index. */
  async waitFor(predicate, what, ms = STEP_TIMEOUT) {
    const deadline = Date.now() + ms;
    for (;;) {
      const index = this.items.findIndex((item, i) => i >= this.cursor && predicate(item, i));
      if (index >= 0) {
        return index;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.name}: timed out after ${ms} ms waiting for ${what}; received since the ` +
            `last wait: ${JSON.stringify(this.items.slice(this.cursor))}`,
        );
      }
      // Woken by the next item, or at the deadline.
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Waits for `count` new items; returns them and marks them read. */
  async take(count, what, ms = STEP_TIMEOUT) {
    const index = await this.waitFor(
      (_, i) => i === this.cursor + count - 1,
      `${count} × ${what}`,
      ms,
    );
    const batch = this.items.slice(this.cursor, index + 1);
    this.cursor = index + 1;
    return batch;
  }

  /** Everything received since the last `until` (and marks it read). */
  drain() {
    const batch = this.items.slice(this.cursor);
    this.cursor = this.items.length;
    return batch;
  }
}

/** A document notification whose `_source.tag` is `tag`. */
function tagged(tag) {
  return (notification) =>
    notification.type === "document" &&
    notification.result &&
    notification.result._source &&
    notification.result._source.tag === tag;
}

/** The rejection of `promise` as `{id, status, message}` (fails if it resolves). */
async function rejection(promise, what) {
  try {
    const value = await within(promise, what);
    throw new Error(`${what} succeeded (${JSON.stringify(value)}), expected an error`);
  } catch (error) {
    if (error.id === undefined) {
      throw error;
    }
    return { id: error.id, status: error.status, message: error.message };
  }
}

/** Runs a scenario: reports `done`, disconnects every instance and exits 0; fails otherwise. */
function scenario(body) {
  process.on("unhandledRejection", (error) => fail(error));
  const watchdog = setTimeout(
    () => fail(`scenario still running after ${SCENARIO_TIMEOUT} ms`),
    SCENARIO_TIMEOUT,
  );
  body().then(
    () => {
      clearTimeout(watchdog);
      report("done", { ms: Date.now() - started });
      for (const kuzzle of instances) {
        kuzzle.disconnect();
      }
      process.exit(0);
    },
    (error) => fail(error),
  );
}

module.exports = {
  Inbox,
  STEP_TIMEOUT,
  connect,
  connectTo,
  fail,
  once,
  rejection,
  report,
  scenario,
  tagged,
  within,
};
