// The admin page in a real browser: Debian's chromium driven by playwright-core (no browser
// download). Loads the page from the admin listener, reports the protocols it shows, checks
// the requests/s and notifications/s charts are flat before any traffic, then subscribes and
// publishes through the Kuzzle SDK over WebSocket and waits for both to move and the room to
// appear.
//
// usage: node admin_page.js ws://HOST:PORT http://ADMIN_HOST:PORT [screenshot.png]
// CHROMIUM names the browser binary (default /usr/bin/chromium).

"use strict";

const { chromium } = require("playwright-core");
const { Inbox, STEP_TIMEOUT, connect, report, scenario, tagged, within } = require("./support");

const adminUrl = process.argv[3];
const screenshot = process.argv[4];
let browser = null;

/** The value of `data-<key>` of chart `name`'s canvas. */
function chart(page, name, key) {
  return page.$eval(`#chart-${name}`, (canvas, key) => canvas.dataset[key], key);
}

scenario(async () => {
  browser = await within(
    chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      // The tests run as root in CI, where Chromium's sandbox cannot start.
      args: ["--no-sandbox"],
    }),
    "chromium to start",
  );
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const failures = [];
  page.on("pageerror", (error) => failures.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) => failures.push(`request failed: ${request.url()}`));
  await page.goto(adminUrl, { timeout: STEP_TIMEOUT });
  report("title", { title: await page.title() });

  await page.waitForSelector("#protocols tbody .protocol-name", { timeout: STEP_TIMEOUT });
  const protocols = await page.$$eval("#protocols tbody tr", (rows) =>
    rows.map((row) => Array.from(row.cells, (cell) => cell.textContent)),
  );
  report("protocols", { rows: protocols });

  // Two samples make one rate: no traffic yet, so it is 0; deliveries are not reported yet.
  await page.waitForFunction(
    () => Number(document.getElementById("chart-requests").dataset.points) >= 1,
    null,
    { timeout: STEP_TIMEOUT },
  );
  report("before", {
    requests: await chart(page, "requests", "max"),
    notifications: await chart(page, "notifications", "max"),
    deliveries: await chart(page, "deliveries", "last"),
    slowConsumerCloses: await chart(page, "slowConsumerCloses", "last"),
  });

  const subscriber = await connect("subscriber");
  const publisher = await connect("publisher");
  const inbox = new Inbox("subscriber");
  await within(
    subscriber.realtime.subscribe("shop", "orders", { range: { total: { gte: 100 } } }, inbox.callback),
    "the subscription",
  );
  const published = 20;
  for (let n = 0; n < published; n += 1) {
    await within(
      publisher.realtime.publish("shop", "orders", { total: 100 + n, tag: `order-${n}` }),
      "a publication",
    );
  }
  await inbox.until(tagged(`order-${published - 1}`), "the last order");

  await page.waitForFunction(
    () => Number(document.getElementById("chart-requests").dataset.max) > 0,
    null,
    { timeout: STEP_TIMEOUT },
  );
  await page.waitForFunction(
    () => Number(document.getElementById("chart-notifications").dataset.max) > 0,
    null,
    { timeout: STEP_TIMEOUT },
  );
  await page.waitForFunction(
    () => document.querySelector("#rooms tbody code") !== null,
    null,
    { timeout: STEP_TIMEOUT },
  );
  const rooms = await page.$$eval("#rooms tbody tr", (rows) =>
    rows.map((row) => Array.from(row.cells, (cell) => cell.textContent)),
  );
  const connections = await page.$$eval("#protocols tbody tr", (rows) =>
    rows.map((row) => [row.cells[0].textContent, row.cells[6].textContent]),
  );
  report("after", {
    requestsMoved: Number(await chart(page, "requests", "max")) > 0,
    notificationsMoved: Number(await chart(page, "notifications", "max")) > 0,
    rooms,
    connections,
  });

  if (screenshot) {
    // A chart with a shape: keep publishing until it holds twenty samples.
    let n = published;
    while (Number(await chart(page, "requests", "points")) < 20) {
      await within(
        publisher.realtime.publish("shop", "orders", { total: 100 + (n % 50), tag: `more-${n}` }),
        "a publication",
      );
      n += 1;
    }
    await page.screenshot({ path: screenshot, fullPage: true });
    report("screenshot", { path: screenshot });
  }
  report("failures", { failures });
  await browser.close();
});
