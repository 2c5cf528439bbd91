/* revproxy dashboard: polls /api/stats and /api/status every 2 s and draws small charts on
 * <canvas> (no library, no external asset). Counters in /api/stats are monotonic: the page
 * turns them into rates by diffing two polls. With a bearer token on the admin listener the
 * page asks for it once (a form, not a prompt), keeps it in sessionStorage and sends it. */
(function () {
  "use strict";

  var PERIOD_MS = 2000;
  var KEEP = 90; // points per chart: 3 minutes at one poll every 2 s
  var TOKEN_KEY = "revproxy-admin-token";
  var CLASSES = ["2xx", "3xx", "4xx", "5xx", "1xx"];
  var COLORS = {
    "1xx": "#8e8e93", "2xx": "#1a7f37", "3xx": "#1f6feb", "4xx": "#b76e00", "5xx": "#c62828",
    p50: "#1a7f37", p90: "#b76e00", p99: "#c62828", rate: "#1f6feb", ratio: "#8250df",
    blocked: "#c62828", detected: "#b76e00"
  };

  var history = { rate: [], status: {}, latency: { p50: [], p90: [], p99: [] }, ratio: [],
                  blocked: [], detected: [], members: {} };
  CLASSES.forEach(function (c) { history.status[c] = []; });
  var previous = null; // the last /api/stats document and when it arrived
  var polls = 0;
  var waitingForToken = false;

  function $(id) { return document.getElementById(id); }

  function push(list, value) {
    list.push(value);
    if (list.length > KEEP) list.shift();
  }

  /* Per-second rate of a monotonic counter between two polls; 0 when it went backwards
   * (the proxy restarted) or no time passed. */
  function rate(now, before, seconds) {
    if (!(seconds > 0) || typeof now !== "number" || typeof before !== "number") return 0;
    var delta = now - before;
    return delta > 0 ? delta / seconds : 0;
  }

  function num(value) { return typeof value === "number" && isFinite(value) ? value : 0; }

  function fmt(value, digits) {
    value = num(value);
    if (value >= 1000) return Math.round(value).toLocaleString("en");
    return value.toFixed(digits === undefined ? (value < 10 ? 1 : 0) : digits);
  }

  function text(id, value) { var el = $(id); if (el) el.textContent = value; }

  function setValue(id, value, label) {
    var el = $(id);
    if (!el) return;
    el.dataset.value = String(value);
    el.textContent = label;
  }

  // -- drawing -------------------------------------------------------------------------------
  function prepare(canvas) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || 260, height = canvas.clientHeight || 110;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return { ctx: ctx, width: width, height: height };
  }

  function scaleMax(series, fixed) {
    if (fixed) return fixed;
    var top = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v > top) top = v; }); });
    if (top <= 0) return 1;
    var step = Math.pow(10, Math.floor(Math.log(top) / Math.LN10));
    return Math.ceil(top / step) * step;
  }

  /* Lines (or stacked areas) of the last KEEP values, newest at the right. The canvas carries
   * data-points (how many polls it shows) and data-last (the newest value of the first
   * series), so a test or a person can read what it drew. */
  function chart(canvas, series, options) {
    if (!canvas) return;
    options = options || {};
    var p = prepare(canvas), ctx = p.ctx, w = p.width, h = p.height, pad = options.bare ? 2 : 16;
    var top = scaleMax(options.stacked ? [{ values: stackTotals(series) }] : series, options.max);
    var step = (w - 2) / (KEEP - 1);
    var y = function (v) { return h - pad - (Math.min(v, top) / top) * (h - pad - 4); };
    if (!options.bare) { // the baseline and the scale's top value
      ctx.strokeStyle = getComputedStyle(document.body).getPropertyValue("--line") || "#ddd";
      ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(0, h - pad + .5); ctx.lineTo(w, h - pad + .5); ctx.stroke();
      ctx.fillStyle = getComputedStyle(document.body).getPropertyValue("--muted") || "#667";
      ctx.font = "10px system-ui, sans-serif";
      ctx.fillText((options.format || fmt)(top) + (options.unit || ""), 2, 10);
    }
    var base = null;
    series.forEach(function (s) {
      var values = s.values, start = w - 1 - (values.length - 1) * step;
      if (!values.length) return;
      var lifted = values.map(function (v, i) { return v + (options.stacked && base ? base[i] : 0); });
      ctx.beginPath();
      lifted.forEach(function (v, i) {
        var x = start + i * step;
        if (i === 0) ctx.moveTo(x, y(v)); else ctx.lineTo(x, y(v));
      });
      ctx.strokeStyle = s.color; ctx.lineWidth = 1.6; ctx.stroke();
      if (options.stacked || options.fill) {
        for (var i = values.length - 1; i >= 0; i--) {
          ctx.lineTo(start + i * step, y(options.stacked && base ? base[i] : 0));
        }
        ctx.closePath(); ctx.globalAlpha = .25; ctx.fillStyle = s.color; ctx.fill(); ctx.globalAlpha = 1;
      }
      base = lifted;
    });
    var first = series[0] ? series[0].values : [];
    canvas.dataset.points = String(first.length);
    canvas.dataset.last = String(first.length ? first[first.length - 1] : 0);
  }

  function stackTotals(series) {
    var totals = [];
    series.forEach(function (s) { s.values.forEach(function (v, i) { totals[i] = (totals[i] || 0) + v; }); });
    return totals;
  }

  function legend(id, entries) {
    var el = $(id);
    if (!el) return;
    el.textContent = "";
    entries.forEach(function (e) {
      var span = document.createElement("span"), swatch = document.createElement("i");
      swatch.style.background = e.color;
      span.appendChild(swatch);
      span.appendChild(document.createTextNode(e.label));
      el.appendChild(span);
    });
  }

  // -- the documents -------------------------------------------------------------------------
  function takeStats(stats, receivedAt) {
    var seconds = 0;
    if (previous) {
      seconds = num(stats.time) - num(previous.stats.time);
      if (!(seconds > 0)) seconds = (receivedAt - previous.at) / 1000;
    }
    var before = previous ? previous.stats : null;
    var requests = stats.requests || {}, was = before ? (before.requests || {}) : {};
    var perSecond = before ? rate(requests.total, was.total, seconds) : 0;
    push(history.rate, perSecond);
    CLASSES.forEach(function (c) { push(history.status[c], before ? rate(requests[c], was[c], seconds) : 0); });
    var latency = stats.latency_ms || {};
    ["p50", "p90", "p99"].forEach(function (q) { push(history.latency[q], num(latency[q])); });
    var cache = stats.cache || {};
    push(history.ratio, num(cache.ratio));
    var fw = stats.firewall || {}, fwWas = before ? (before.firewall || {}) : {};
    push(history.blocked, before ? rate(fw.blocked, fwWas.blocked, seconds) : 0);
    push(history.detected, before ? rate(fw.detected, fwWas.detected, seconds) : 0);
    takeMembers(stats.members || {}, before ? (before.members || {}) : null, seconds);

    setValue("rate", perSecond, fmt(perSecond));
    text("total", fmt(num(requests.total), 0));
    text("connections", fmt(num(stats.connections), 0));
    var errors = history.status["5xx"][history.status["5xx"].length - 1];
    setValue("errors-rate", errors, fmt(errors) + " 5xx/s");
    setValue("p99", num(latency.p99), "p99 " + fmt(latency.p99) + " ms");
    setValue("hit-ratio", num(cache.ratio), (num(cache.ratio) * 100).toFixed(1) + " %");
    text("cache-hits", fmt(cache.hits, 0)); text("cache-misses", fmt(cache.misses, 0));
    text("cache-stale", fmt(cache.stale, 0));
    var blocked = history.blocked[history.blocked.length - 1];
    setValue("blocks", blocked, fmt(blocked) + " blocked/s");
    text("fw-blocked", fmt(fw.blocked, 0)); text("fw-detected", fmt(fw.detected, 0));
    text("rate-limited", fmt(stats.rate_limited, 0));
    previous = { stats: stats, at: receivedAt };
    drawCharts();
  }

  function takeMembers(members, before, seconds) {
    Object.keys(members).forEach(function (pool) {
      Object.keys(members[pool] || {}).forEach(function (name) {
        var key = pool + "/" + name, now = members[pool][name] || {};
        var was = before && before[pool] && before[pool][name];
        var h = history.members[key] || (history.members[key] = { requests: [], errors: [] });
        push(h.requests, was ? rate(now.requests, was.requests, seconds) : 0);
        push(h.errors, was ? rate(now.errors, was.errors, seconds) : 0);
        h.latest = now;
      });
    });
  }

  function drawCharts() {
    chart($("chart-rate"), [{ values: history.rate, color: COLORS.rate }], { fill: true, unit: "/s" });
    chart($("chart-status"), CLASSES.map(function (c) { return { values: history.status[c], color: COLORS[c] }; }),
          { stacked: true, unit: "/s" });
    legend("legend-status", CLASSES.slice(0, 4).map(function (c) { return { label: c, color: COLORS[c] }; }));
    chart($("chart-latency"), ["p50", "p90", "p99"].map(function (q) { return { values: history.latency[q], color: COLORS[q] }; }),
          { unit: " ms" });
    legend("legend-latency", ["p50", "p90", "p99"].map(function (q) { return { label: q, color: COLORS[q] }; }));
    chart($("chart-cache"), [{ values: history.ratio, color: COLORS.ratio }],
          { max: 1, fill: true, format: function (v) { return Math.round(v * 100) + "%"; } });
    chart($("chart-firewall"), [{ values: history.blocked, color: COLORS.blocked },
                                { values: history.detected, color: COLORS.detected }], { unit: "/s" });
  }

  /* The pools and members: from /api/status (state, weight, in-flight, EWMA), with the
   * per-member traffic of /api/stats; falls back to /api/stats alone. */
  function poolList(status) {
    var pools = status && status.pools, out = [];
    if (pools && typeof pools === "object") {
      Object.keys(pools).sort().forEach(function (name) {
        var pool = pools[name] || {};
        out.push({ name: name, policy: pool.policy, members: (pool.members || []).map(function (m) {
          return { name: m.name, state: m.state, inflight: m.in_flight, weight: m.weight, ewma: m.ewma_ms };
        }) });
      });
      return out;
    }
    var members = previous && previous.stats.members || {};
    Object.keys(members).sort().forEach(function (name) {
      out.push({ name: name, members: Object.keys(members[name]).sort().map(function (m) {
        var s = members[name][m]; return { name: m, state: s.state, inflight: s.inflight };
      }) });
    });
    return out;
  }

  function cell(row, value, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    if (value instanceof Node) td.appendChild(value); else td.textContent = value;
    row.appendChild(td);
    return td;
  }

  function renderPools(status) {
    var root = $("pools");
    if (!root) return;
    var pools = poolList(status);
    root.textContent = "";
    root.dataset.count = String(pools.length);
    pools.forEach(function (pool) {
      var box = document.createElement("article");
      box.className = "pool"; box.dataset.pool = pool.name;
      var title = document.createElement("h2");
      title.textContent = pool.name + " ";
      if (pool.policy) { var small = document.createElement("small"); small.textContent = pool.policy; title.appendChild(small); }
      box.appendChild(title);
      var wrap = document.createElement("div"); wrap.className = "table-wrap";
      var table = document.createElement("table"), head = table.insertRow();
      ["member", "state", "req/s", "err/s", "in flight", "weight", "traffic"].forEach(function (h, i) {
        var th = document.createElement("th"); th.textContent = h; if (i >= 2 && i < 6) th.className = "num"; head.appendChild(th);
      });
      pool.members.forEach(function (m) {
        var h = history.members[pool.name + "/" + m.name] || { requests: [], errors: [] };
        var live = h.latest || {};
        var row = table.insertRow();
        row.dataset.member = m.name;
        cell(row, m.name);
        var state = m.state || live.state || "?";
        cell(row, state, "state-" + String(state).replace(/[^a-z-]/g, ""));
        var reqs = h.requests.length ? h.requests[h.requests.length - 1] : 0;
        var errs = h.errors.length ? h.errors[h.errors.length - 1] : 0;
        cell(row, fmt(reqs), "num").dataset.value = String(reqs);
        cell(row, fmt(errs), "num");
        cell(row, fmt(m.inflight !== undefined ? m.inflight : live.inflight, 0), "num");
        cell(row, m.weight === undefined ? "-" : fmt(m.weight, 2), "num");
        var spark = document.createElement("canvas");
        cell(row, spark);
        chart(spark, [{ values: h.requests, color: COLORS.rate }, { values: h.errors, color: COLORS["5xx"] }], { bare: true, fill: true });
      });
      wrap.appendChild(table); box.appendChild(wrap); root.appendChild(box);
    });
  }

  // -- polling -------------------------------------------------------------------------------
  function get(path) {
    var headers = { "Accept": "application/json" }, token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    return fetch(path, { headers: headers, cache: "no-store" }).then(function (response) {
      if (response.status === 401) { var e = new Error("unauthorized"); e.status = 401; throw e; }
      if (!response.ok) throw new Error(path + ": HTTP " + response.status);
      return response.json();
    });
  }

  function setState(state, label) {
    var el = $("state"); el.dataset.state = state; el.textContent = label;
  }

  function askForToken(rejected) {
    waitingForToken = true;
    var form = $("login");
    form.hidden = false;
    text("login-error", rejected ? "that token was refused" : "");
    $("token").focus();
  }

  function poll() {
    if (waitingForToken) return Promise.resolve();
    return Promise.all([get("api/stats"), get("api/status")]).then(function (docs) {
      polls += 1;
      document.body.dataset.polls = String(polls);
      takeStats(docs[0], Date.now());
      renderPools(docs[1]);
      if (docs[1] && docs[1].source) text("source", docs[1].source);
      setState("ok", "live");
      text("updated", "updated " + new Date().toLocaleTimeString());
    }).catch(function (error) {
      if (error.status === 401) {
        var had = !!sessionStorage.getItem(TOKEN_KEY);
        sessionStorage.removeItem(TOKEN_KEY);
        setState("error", "token needed");
        askForToken(had);
      } else {
        setState("error", "unreachable: " + error.message);
      }
    });
  }

  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    $("login").hidden = true;
    waitingForToken = false;
    poll();
  });

  window.revproxyDashboard = { rate: rate, history: history, poll: poll };
  window.addEventListener("resize", drawCharts);
  poll();
  setInterval(poll, PERIOD_MS);
})();
