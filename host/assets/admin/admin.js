// The admin page: polls /api/overview once a second, keeps the last minutes of samples and
// draws them. Plain JavaScript, no library; every text from the server goes through
// textContent (room filters are user input).
"use strict";

/** Seconds of history each chart shows. */
const WINDOW_SECONDS = 300;
/** Milliseconds between two polls. */
const POLL_MS = 1000;
/** The counters charted as rates, by the `data-counter` of their canvas. */
const COUNTERS = ["requests", "notifications", "deliveries", "slowConsumerCloses"];

/** Per counter: [{t: seconds, v: rate or null}], oldest first. */
const series = Object.fromEntries(COUNTERS.map((name) => [name, []]));
let previous = null;

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.appendChild(cell);
  return tr;
}

function fill(tableId, rows, emptyText, columns) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const td = element("td", emptyText);
    td.colSpan = columns;
    const tr = row([td]);
    tr.className = "empty";
    body.appendChild(tr);
  }
}

function formatRate(value) {
  if (value === null || value === undefined) return "n/a";
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function formatUptime(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
}

function renderProtocols(protocols) {
  fill(
    "protocols",
    protocols.map((p) =>
      row([
        element("td", p.name, "protocol-name"),
        element("td", `${p.plugin} ${p.version}`),
        element("td", p.pluginApi),
        element("td", p.library, "mono"),
        element("td", p.listening.length ? p.listening.join(", ") : "not listening", "mono"),
        element("td", p.enabled ? "enabled" : "disabled (hook panics)", p.enabled ? "enabled" : "disabled"),
        element("td", p.connections, "number"),
        element("td", p.requests, "number"),
      ]),
    ),
    "no protocols enabled",
    8,
  );
}

function renderRooms(rooms) {
  document.getElementById("room-count").textContent = `(${rooms.count} in all)`;
  fill(
    "rooms",
    rooms.busiest.map((room) => {
      const filter = element("td");
      filter.appendChild(element("code", JSON.stringify(room.filter)));
      return row([
        element("td", `${room.index} / ${room.collection}`),
        filter,
        element("td", room.subscribers, "number"),
      ]);
    }),
    "no subscriptions",
    3,
  );
}

function renderWarnings(warnings) {
  fill(
    "warnings",
    warnings.map((w) =>
      row([
        element("td", new Date(w.timeMs).toLocaleTimeString()),
        element("td", w.level, `level-${w.level}`),
        element("td", w.target, "mono"),
        element("td", w.message, "mono"),
      ]),
    ),
    "none since start-up",
    4,
  );
}

/** A round upper bound for the y axis: 1, 2 or 5 times a power of ten. */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function drawChart(canvas, points, now) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const known = points.filter((p) => p.v !== null);
  const max = niceMax(Math.max(0, ...known.map((p) => p.v)));
  const left = 40, right = width - 6, top = 8, bottom = height - 18;
  // The x axis spans the samples kept, from one minute up to the whole window.
  const span = Math.min(WINDOW_SECONDS, Math.max(60, points.length ? now - points[0].t : 0));
  const x = (t) => right - ((now - t) / span) * (right - left);
  const y = (v) => bottom - (v / max) * (bottom - top);

  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#667085";
  g.strokeStyle = "#e4e7ec";
  g.lineWidth = 1;
  for (const v of [0, max / 2, max]) {
    g.beginPath();
    g.moveTo(left, Math.round(y(v)) + 0.5);
    g.lineTo(right, Math.round(y(v)) + 0.5);
    g.stroke();
    g.textAlign = "right";
    g.fillText(formatRate(v), left - 4, y(v) + 4);
  }
  g.textAlign = "left";
  g.fillText(span >= 120 ? `-${Math.round(span / 60)} min` : `-${Math.round(span)} s`, left, height - 4);
  g.textAlign = "right";
  g.fillText("now", right, height - 4);

  if (known.length === 0) {
    g.textAlign = "center";
    g.fillStyle = "#98a2b3";
    g.font = "13px system-ui, sans-serif";
    const text = points.length === 0 ? "waiting for data" : "n/a: not reported yet";
    g.fillText(text, (left + right) / 2, (top + bottom) / 2);
    return;
  }
  g.beginPath();
  known.forEach((p, i) => (i === 0 ? g.moveTo(x(p.t), y(p.v)) : g.lineTo(x(p.t), y(p.v))));
  g.strokeStyle = "#2563eb";
  g.lineWidth = 1.5;
  g.stroke();
  g.lineTo(x(known[known.length - 1].t), bottom);
  g.lineTo(x(known[0].t), bottom);
  g.closePath();
  g.fillStyle = "rgba(37, 99, 235, 0.12)";
  g.fill();
}

function renderCharts(now) {
  for (const name of COUNTERS) {
    const points = series[name];
    const canvas = document.getElementById(`chart-${name}`);
    drawChart(canvas, points, now);
    const known = points.filter((p) => p.v !== null);
    const last = points.length ? points[points.length - 1].v : null;
    // Read by the browser test, and handy when inspecting the page.
    canvas.dataset.points = String(known.length);
    canvas.dataset.last = last === null ? "n/a" : String(last);
    canvas.dataset.max = known.length ? String(Math.max(...known.map((p) => p.v))) : "n/a";
    document.getElementById(`value-${name}`).textContent =
      last === null ? (points.length ? "n/a" : "") : `${formatRate(last)} now`;
  }
}

function update(overview) {
  const now = performance.now() / 1000;
  if (previous) {
    const elapsed = Math.max(now - previous.t, 0.001);
    for (const name of COUNTERS) {
      const a = overview.counters[name];
      const b = previous.counters[name];
      const rate = a === null || b === null || a === undefined || b === undefined
        ? null
        : Math.max(0, (a - b) / elapsed);
      series[name].push({ t: now, v: rate });
      while (series[name].length && series[name][0].t < now - WINDOW_SECONDS) series[name].shift();
    }
  }
  previous = { t: now, counters: overview.counters };

  const node = overview.node ? ` · node ${overview.node}` : "";
  document.getElementById("version").textContent =
    `${overview.version} · plugin-api ${overview.pluginApi} · up ${formatUptime(overview.uptimeSeconds)}${node}`;
  renderProtocols(overview.protocols);
  renderRooms(overview.rooms);
  renderWarnings(overview.warnings);
  renderCharts(now);
}

function setStatus(text, ok) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = `status ${ok ? "ok" : "down"}`;
}

async function poll() {
  try {
    const response = await fetch("/api/overview", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const overview = await response.json();
    update(overview);
    setStatus(overview.draining ? "shutting down" : "live", !overview.draining);
  } catch (error) {
    setStatus(`unreachable (${error.message})`, false);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
