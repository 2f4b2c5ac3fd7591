// The dashboard's charts (uPlot), its two actions, and loading its content with the bearer token.
// No build step: plain browser JavaScript. The server renders the content (GET / when reads are public,
// GET /v1/dashboard/main otherwise); this script only swaps it in and draws the charts from its data.
"use strict";
(function () {
  const COLORS = { champion: "#1a7f37", canary: "#b58100", shadow: "#555" };
  const PALETTE = ["#6a4c93", "#c0392b", "#2c6fbb", "#16a085", "#d35400", "#7f8c8d"];
  const TOKEN_KEY = "lifelong-token";
  const plots = {};
  let current = null; // the data behind what is on screen

  // Align series sampled at different times on one x axis (uPlot wants a shared, sorted x).
  function align(named) {
    const xs = [...new Set(Object.values(named).flatMap((pts) => pts.map((p) => p.x)))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const ys = Object.values(named).map((pts) => {
      const y = new Array(xs.length).fill(null);
      pts.forEach((p) => { y[index.get(p.x)] = p.y; });
      return y;
    });
    return [xs, ...ys];
  }

  function draw(id, named, yLabel, range) {
    const el = document.getElementById(id);
    const names = Object.keys(named);
    const points = names.reduce((n, k) => n + named[k].length, 0);
    if (plots[id]) { plots[id].destroy(); delete plots[id]; }
    el.innerHTML = "";
    el.dataset.points = String(points);
    if (points === 0) {
      el.innerHTML = '<p class="empty">no data yet</p>';
      return;
    }
    const series = [{}].concat(names.map((n, i) => ({
      label: n, stroke: COLORS[n] || PALETTE[i % PALETTE.length], width: 2, spanGaps: true, points: { show: true, size: 6 },
    })));
    const opts = {
      width: Math.max(el.clientWidth, 380), height: 220, series: series,
      // UTC, as the events list and `lifelong events` show times; one point gets an hour either side
      // (uPlot spread a single timestamp over years, and widens it by 1000 days before it asks this
      // range, so the range is read from the data, not from the min and max it is given)
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: {
        x: { time: true, range: (u) => {
          const xs = u.data[0], lo = xs[0], hi = xs[xs.length - 1];
          return lo === hi ? [lo - 3600, hi + 3600] : [lo, hi];
        } },
        y: range ? { range: range } : {},
      },
      axes: [{}, { label: yLabel }],
    };
    plots[id] = new uPlot(opts, align(named), el);
  }

  function render(data) {
    const acc = {};
    for (const [variant, pts] of Object.entries(data.accuracy)) {
      acc[variant] = pts.map((p) => ({ x: p.ts, y: p.accuracy }));
    }
    draw("accuracy-chart", acc, "accuracy", [0, 1]);
    const drift = {};
    for (const d of data.drift) {  // the reports (alarms), by detector
      (drift[d.monitor] = drift[d.monitor] || []).push({ x: d.ts, y: d.score });
    }
    for (const c of data.drift_checks || []) {  // every block the data-drift test judged
      const name = c.monitor + " per block";
      (drift[name] = drift[name] || []).push({ x: c.ts, y: c.score });
    }
    draw("drift-chart", drift, "score", null);
  }

  function status(text, ok) {
    const el = document.getElementById("status");
    el.textContent = text;
    el.style.color = ok ? "#9be29b" : "#ff9c9c";
  }

  function headers() {
    const token = sessionStorage.getItem(TOKEN_KEY) || "";
    return token ? { "Authorization": "Bearer " + token } : {};
  }

  async function errorText(response) {
    const doc = await response.json().catch(() => ({}));
    return (doc.error && doc.error.message) || ("HTTP " + response.status);
  }

  // Bind the content's buttons and draw its charts (after the first render or a swap).
  function init() {
    const el = document.getElementById("dashboard-data");
    if (!el) return false;
    current = JSON.parse(el.textContent);
    document.querySelectorAll("button.promote").forEach((b) => b.addEventListener("click", () => promote(b.dataset.version)));
    render(current);
    return true;
  }

  // fetch, with a server that cannot be reached said on the status line (it threw, uncaught, and said nothing)
  async function reach(path, options) {
    try {
      return await fetch(path, options);
    } catch (err) {
      status("the server cannot be reached (" + err.message + "); try again when it is back", false);
      return null;
    }
  }

  // Fetch the server-rendered content with the token and swap it in.
  async function load() {
    const response = await reach("/v1/dashboard/main", { headers: headers() });
    if (!response) return false;
    if (!response.ok) {
      status(await errorText(response), false);
      return false;
    }
    document.getElementById("main").innerHTML = await response.text();
    status("", true);
    return init();
  }

  async function call(path, body) {
    const response = await reach(path, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, headers()),
      body: JSON.stringify(body || {}),
    });
    if (!response) return null;
    if (!response.ok) {
      status(await errorText(response), false);
      return null;
    }
    return response.json().catch(() => ({}));
  }

  async function promote(version) {
    // the page is reloaded first: a successful load clears the status line, which then says what happened
    if (await call("/v1/models/" + version + "/promote", { alias: "champion" }) && (await load())) {
      status("v" + version + " is the champion", true);
    }
  }

  async function rollback() {
    const doc = await call("/v1/rollback", { alias: "champion" });
    if (doc && (await load())) {
      status("champion rolled back to v" + doc.version, true);
    }
  }

  // What the server-rendered part shows: when it changes, the content is fetched again (the cards,
  // versions and events stayed as first drawn until an alias moved; only the charts followed).
  function shown(data) {
    return JSON.stringify([data.aliases, data.versions, data.events, data.champion_chain, data.readiness]);
  }

  async function refresh() {
    if (!current) {  // not loaded yet (the server was down when the token was typed): try again
      if (sessionStorage.getItem(TOKEN_KEY)) await load();
      return;
    }
    try {
      const response = await fetch("/v1/dashboard", { headers: headers() });
      if (!response.ok) return;
      const data = await response.json();
      if (shown(data) !== shown(current)) { await load(); return; }
      render(data);
      current = data;
    } catch (err) { /* the server restarts: try again at the next tick */ }
  }

  const token = document.getElementById("token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  let typing = null;
  token.addEventListener("input", () => {
    sessionStorage.setItem(TOKEN_KEY, token.value);
    clearTimeout(typing); // load once the typing pauses, not once per key
    if (!current && token.value) typing = setTimeout(load, 300);
  });
  document.getElementById("rollback").addEventListener("click", rollback);
  if (!init() && token.value) load();
  setInterval(refresh, 5000);
})();
