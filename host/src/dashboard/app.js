// The kappa dashboard: polls /v1/status every second and updates the page in
// place; promote, rollback, retire and diff call the same HTTP API as the CLI.
// Every value from the server is written with textContent or setAttribute,
// never parsed as HTML. When the server needs a bearer token (kappa serve
// --token), the page asks for it and keeps it in sessionStorage (this tab
// only, gone when it closes), sending it with every API call.
"use strict";

(() => {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const numbers = new Intl.NumberFormat("en-US");

  // An element with attributes and children (strings become text nodes).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  // ------------------------------------------------------------ history

  // Per version, what each poll saw over the last minutes: the charts.
  const HISTORY_POINTS = 300; // 5 minutes at one poll a second
  const history = new Map(); // id -> [{ rate, lag }]

  function remember(v) {
    let points = history.get(v.id);
    if (!points) history.set(v.id, (points = []));
    points.push({ rate: v.events_per_second, lag: v.lag ?? 0 });
    if (points.length > HISTORY_POINTS) points.shift();
    return points;
  }

  // A polyline of `values` scaled to its own maximum, in a w×h box.
  function line(values, w, h, cls) {
    const max = Math.max(...values, 1);
    const step = values.length > 1 ? w / (HISTORY_POINTS - 1) : 0;
    const x0 = w - step * (values.length - 1);
    const points = values
      .map((v, i) => `${(x0 + i * step).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`)
      .join(" ");
    return svg("polyline", { class: cls, points, fill: "none" });
  }

  function renderChart(chart, points) {
    const w = 160;
    const h = 26;
    chart.textContent = "";
    chart.append(
      svg("rect", { class: "frame", x: 0.5, y: 0.5, width: w - 1, height: h - 1 }),
      line(points.map((p) => p.rate), w, h, "rate-line"),
      line(points.map((p) => p.lag), w, h, "lag-line"),
    );
    chart.dataset.points = String(points.length);
    const last = points[points.length - 1];
    const peak = Math.max(...points.map((p) => p.rate));
    chart.setAttribute(
      "aria-label",
      `last ${points.length} s: events/s now ${fmtRate(last.rate)} (peak ${fmtRate(peak)}), lag now ${numbers.format(last.lag)}`,
    );
    chart.querySelector("title")?.remove();
    const title = svg("title");
    title.textContent = `${chart.getAttribute("aria-label")} · blue: events/s, orange: lag`;
    chart.append(title);
  }

  // One small bar per partition: applied / end offset.
  function renderPartitions(box, v) {
    box.hidden = v.state !== "replaying";
    if (box.hidden) return;
    const bars = box.children;
    while (bars.length < v.end_offsets.length) {
      box.append(el("progress", { class: "partition", max: 1, value: 0 }));
    }
    v.end_offsets.forEach((end, p) => {
      const bar = bars[p];
      const applied = Math.min(v.applied_offsets[p] ?? 0, end);
      bar.max = Math.max(end, 1);
      bar.value = end === 0 ? 1 : applied;
      bar.dataset.partition = String(p);
      bar.title = `partition ${p}: ${numbers.format(applied)} / ${numbers.format(end)}`;
    });
    box.title = `${v.threads} thread${v.threads === 1 ? "" : "s"}`;
  }

  function setText(e, text) {
    const t = String(text);
    if (e.textContent !== t) e.textContent = t;
  }

  const TOKEN_KEY = "kappa-token";
  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null;
    }
  }

  // Shows the token form: after a 401, or to forget a stored token.
  function showTokenForm() {
    $("token-form").hidden = false;
    $("token-forget").hidden = !storedToken();
  }

  // Calls the API; throws an Error carrying the server's own message.
  async function api(method, path, body) {
    const options = { method, headers: { Accept: "application/json" } };
    const token = storedToken();
    if (token) options.headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (e) {
      throw new Error(`cannot reach the kappa server (${e.message})`);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (response.status === 401) showTokenForm();
    if (!response.ok) {
      const message =
        (data && data.error && data.error.message) || text || response.statusText;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  let messageTimer = null;
  function showMessage(text, kind) {
    const box = $("message");
    clearTimeout(messageTimer);
    box.dataset.kind = kind;
    box.textContent = "";
    box.append(el("span", { class: "message-text", text }));
    const close = el("button", { type: "button", class: "close", "aria-label": "Dismiss" }, "×");
    close.addEventListener("click", () => {
      box.hidden = true;
    });
    box.append(close);
    box.hidden = false;
    if (kind === "ok") {
      messageTimer = setTimeout(() => {
        box.hidden = true;
      }, 6000);
    }
  }

  // Runs an action from a button: disables it meanwhile, reports the outcome.
  async function act(button, work, done) {
    button.disabled = true;
    try {
      const result = await work();
      if (done) showMessage(done(result), "ok");
      await poll(false);
    } catch (e) {
      showMessage(e.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------ status

  const processors = new Map(); // name -> { section, tbody, rows: Map(id -> row) }
  let lastStatus = null;

  function fmtRate(r) {
    return r >= 100 ? numbers.format(Math.round(r)) : r.toFixed(r > 0 ? 1 : 0);
  }

  function fmtEta(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function failureText(f) {
    if (!f) return "";
    let place = "";
    if (f.partition !== null && f.partition !== undefined) {
      place = `at partition ${f.partition}`;
      if (f.offset !== null && f.offset !== undefined) place += ` offset ${f.offset}`;
      place += ": ";
    }
    return `failed ${place}${f.message}`;
  }

  function processorView(p) {
    let view = processors.get(p.name);
    if (view) return view;
    const alias = el("span", { class: "alias" });
    const rollback = el("button", { type: "button", class: "rollback", title: "Point the alias back at the previous version" }, "Roll back");
    rollback.addEventListener("click", () =>
      act(
        rollback,
        () => api("POST", `/v1/processors/${encodeURIComponent(p.name)}/rollback`),
        (r) => `${r.name}: rolled back; alias now points to ${r.promoted}`,
      ),
    );
    const tbody = el("tbody");
    const section = el(
      "section",
      { class: "card processor", "data-processor": p.name },
      el(
        "div",
        { class: "processor-head" },
        el("h2", { text: p.name }),
        el("span", { class: "muted topic" }),
        alias,
        rollback,
      ),
      el(
        "table",
        { class: "versions" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ...["version", "state", "progress", "lag", "events/s", "ETA", "digest", ""].map((h) =>
              el("th", { text: h, class: ["lag", "events/s", "ETA"].includes(h) ? "num" : "" }),
            ),
          ),
        ),
        tbody,
      ),
    );
    $("processors").append(section);
    view = { section, tbody, alias, rollback, rows: new Map() };
    processors.set(p.name, view);
    return view;
  }

  function versionRow(view, v) {
    let row = view.rows.get(v.id);
    if (row) return row;
    const promote = el("button", { type: "button", class: "promote" }, "Promote");
    promote.addEventListener("click", () =>
      act(
        promote,
        () =>
          api("POST", `/v1/processors/${encodeURIComponent(v.name)}/promote`, {
            version: v.version,
            force: false,
          }),
        (r) => `${r.name}: alias now points to ${r.promoted}`,
      ),
    );
    const retire = el("button", { type: "button", class: "retire" }, "Retire");
    retire.addEventListener("click", () => {
      if (!window.confirm(`Retire ${v.id}? Its worker stops and its view is dropped.`)) return;
      act(
        retire,
        () =>
          api(
            "DELETE",
            `/v1/processors/${encodeURIComponent(v.name)}/versions/${encodeURIComponent(v.version)}`,
          ),
        (r) => `retired ${r.id}; its view was dropped`,
      );
    });
    const cells = {
      version: el("td", { class: "version" }, el("div", { text: v.version })),
      deployed: el("div", { class: "deployed muted" }),
      badge: el("span", { class: "badge" }),
      failure: el("div", { class: "failure" }),
      bar: el("progress", { class: "replay", max: 1, value: 0 }),
      progressText: el("span", { class: "progress-text" }),
      partitions: el("div", { class: "partitions" }),
      chart: svg("svg", { class: "chart", width: 160, height: 26, viewBox: "0 0 160 26", role: "img" }),
      lag: el("td", { class: "num lag" }),
      rate: el("td", { class: "num rate" }),
      eta: el("td", { class: "num eta" }),
      digest: el("code", { class: "digest" }),
      promote,
      retire,
    };
    row = el(
      "tr",
      { class: "version-row", "data-version": v.id },
      cells.version,
      el("td", { class: "state" }, cells.badge, cells.failure),
      el("td", { class: "progress" }, cells.bar, cells.progressText, cells.partitions, cells.chart),
      cells.lag,
      cells.rate,
      cells.eta,
      el("td", {}, cells.digest),
      el("td", { class: "actions" }, promote, retire),
    );
    cells.version.append(cells.deployed);
    row.cells_ = cells;
    view.tbody.append(row);
    view.rows.set(v.id, row);
    return row;
  }

  function renderVersion(view, v, promoted) {
    const row = versionRow(view, v);
    const c = row.cells_;
    // Counted from where the version started (the earliest retained offsets
    // on Kafka), like its progress, so that the count and the share agree.
    const ends = v.end_offsets.reduce((a, b) => a + b, 0);
    const lag = v.lag ?? 0;
    const total =
      v.progress !== null && v.progress < 1 ? Math.round(lag / (1 - v.progress)) : Math.max(ends, lag);
    const done = Math.max(0, total - lag);
    row.dataset.state = v.state;
    setText(c.badge, v.state.replace("_", " "));
    c.badge.dataset.state = v.state;
    setText(c.failure, failureText(v.failure));
    c.failure.hidden = !v.failure;
    if (v.state === "retired") {
      c.bar.hidden = true;
      setText(c.progressText, "view dropped");
    } else {
      c.bar.hidden = false;
      c.bar.max = Math.max(total, 1);
      c.bar.value = total === 0 ? 1 : done;
      setText(
        c.progressText,
        `${numbers.format(done)} / ${numbers.format(total)} (${(v.progress * 100).toFixed(1)}%)`,
      );
    }
    setText(c.lag, v.state === "retired" ? "–" : numbers.format(v.lag));
    setText(c.rate, fmtRate(v.events_per_second));
    setText(c.eta, v.state === "replaying" ? fmtEta(v.eta_seconds) : "–");
    setText(c.digest, v.digest.slice(0, 12));
    c.digest.title = `sha256 ${v.digest}`;
    renderPartitions(c.partitions, v);
    if (v.state === "retired") c.chart.setAttribute("display", "none");
    if (v.state !== "retired") renderChart(c.chart, remember(v));
    setText(c.deployed, `deployed ${new Date(v.deployed_at_ms).toLocaleString()}`);
    c.deployed.title = settingsText(v.settings);
    const active = v.state !== "retired" && v.state !== "failed";
    c.promote.hidden = !active || v.version === promoted;
    // The server refuses to promote a partial view: offered once caught up.
    c.promote.disabled = v.state === "replaying";
    c.promote.title =
      v.state === "replaying"
        ? "Still replaying: the server refuses to promote a partial view"
        : `Point the alias ${v.name} at ${v.version}`;
    c.retire.hidden = v.state === "retired" || v.version === promoted;
  }

  // A version's deploy settings, as `kappa deploy` flags.
  function settingsText(s) {
    if (!s) return "";
    const parts = [
      `--on-error ${s.on_error}`,
      `--batch-timeout-ms ${s.batch_timeout_ms}`,
      `--memory-limit-mb ${Math.round(s.memory_limit_bytes / 1048576)}`,
    ];
    if (s.threads) parts.push(`--threads ${s.threads}`);
    if (s.auto_promote) parts.push("--auto-promote");
    if (s.config) parts.push(`--config ${JSON.stringify(s.config)}`);
    return `settings: ${parts.join(" ")}`;
  }

  function renderStatus(status) {
    lastStatus = status;
    $("empty").hidden = status.processors.length > 0;
    for (const p of status.processors) {
      const view = processorView(p);
      setText(view.section.querySelector(".topic"), `topic ${p.topic}`);
      view.alias.textContent = "";
      view.alias.append(
        "alias → ",
        el("strong", { class: "alias-current", text: p.promoted ? `${p.name}@${p.promoted}` : "nothing yet" }),
      );
      if (p.previous) view.alias.append(el("span", { class: "muted" }, ` (previous ${p.previous})`));
      view.rollback.hidden = !p.previous;
      for (const v of p.versions) renderVersion(view, v, p.promoted);
    }
    const topicRows = $("topic-rows");
    topicRows.textContent = "";
    for (const t of status.topics) {
      topicRows.append(
        el(
          "tr",
          { "data-topic": t.name },
          el("td", { text: t.name }),
          el("td", { class: "num", text: t.partitions }),
          el("td", { class: "num", text: numbers.format(t.end_offsets.reduce((a, b) => a + b, 0)) }),
          el("td", { class: "muted", text: t.end_offsets.join(", ") }),
        ),
      );
    }
    renderDiffChoices(status);
  }

  function setConnection(state, text) {
    const c = $("connection");
    c.dataset.state = state;
    setText(c, text);
  }

  let pollTimer = null;
  async function poll(reschedule = true) {
    try {
      renderStatus(await api("GET", "/v1/status"));
      setConnection("ok", `live · ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      setConnection("error", e.message);
    }
    if (reschedule) {
      clearTimeout(pollTimer);
      pollTimer = setTimeout(poll, POLL_MS);
    }
  }

  // ------------------------------------------------------------ diff

  // Fills a <select> with options, keeping the current choice when it is
  // still offered, else taking `fallback`.
  function setOptions(select, values, fallback) {
    const current = select.value;
    const key = values.join("\n");
    if (select.dataset.values !== key) {
      select.textContent = "";
      for (const v of values) select.append(el("option", { value: v, text: v }));
      select.dataset.values = key;
    }
    if (values.includes(current)) select.value = current;
    else if (fallback !== undefined && values.includes(fallback)) select.value = fallback;
  }

  function renderDiffChoices(status) {
    const names = status.processors.map((p) => p.name);
    setOptions($("diff-processor"), names, names[0]);
    const p = status.processors.find((x) => x.name === $("diff-processor").value);
    if (!p) return;
    const versions = p.versions.filter((v) => v.state !== "retired").map((v) => v.version);
    const a = p.promoted && versions.includes(p.promoted) ? p.promoted : versions[0];
    const b = [...versions].reverse().find((v) => v !== a);
    setOptions($("diff-a"), versions, a);
    setOptions($("diff-b"), versions, b);
  }

  let diffQuery = null; // { name, a, b, prefix, limit }
  let diffPages = []; // `after` of each page shown so far; the last is the current one
  let diffNext = null;

  function isObject(v) {
    return v !== null && typeof v === "object" && !Array.isArray(v);
  }

  // A value as nested lines, fields named by `changed` paths highlighted.
  function valueNode(value, changed, path, top) {
    if (value === undefined || value === null) {
      return top ? el("span", { class: "absent", text: "—" }) : el("span", { class: "scalar", text: "null" });
    }
    if (!isObject(value)) {
      const text = top && typeof value === "string" ? value : JSON.stringify(value);
      return el("span", { class: "scalar", text });
    }
    const box = el("div", { class: "object" });
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      const line = el("div", { class: "field", "data-path": p }, el("span", { class: "field-name", text: k }), ": ");
      if (changed.has(p)) line.classList.add("changed");
      else if ([...changed].some((c) => c.startsWith(`${p}.`))) line.classList.add("inner-changed");
      line.append(valueNode(v, changed, p, false));
      box.append(line);
    }
    return box;
  }

  function renderDiff(report) {
    $("diff-result").hidden = false;
    const c = report.counts;
    const at = Object.entries(report.offsets)
      .map(([p, o]) => `${p}:${o}`)
      .join(" ");
    setText(
      $("diff-summary"),
      `${report.a} vs ${report.b}${report.prefix ? ` (keys ${report.prefix}*)` : ""} at offsets ${at || "–"}: ` +
        `${numbers.format(c.added)} added, ${numbers.format(c.removed)} removed, ` +
        `${numbers.format(c.changed)} changed, ${numbers.format(c.unchanged)} unchanged`,
    );
    renderMoves(report.rows);
    setText($("diff-head-a"), report.a);
    setText($("diff-head-b"), report.b);
    const rows = $("diff-rows");
    rows.textContent = "";
    if (report.rows.length === 0) {
      rows.append(el("tr", {}, el("td", { colspan: 4, class: "muted", text: "No differing rows on this page." })));
    }
    for (const r of report.rows) {
      const changed = new Set((r.fields || []).map((f) => f.path));
      const summary = (r.fields || []).map((f) =>
        el(
          "div",
          { class: "field-change" },
          el("code", { text: f.path }),
          `: ${f.a === undefined || f.a === null ? "—" : JSON.stringify(f.a)} → ${f.b === undefined || f.b === null ? "—" : JSON.stringify(f.b)}`,
        ),
      );
      rows.append(
        el(
          "tr",
          { class: "diff-row", "data-change": r.change, "data-key": r.key },
          el("td", { class: "key" }, el("code", { text: r.key }), ...summary),
          el("td", {}, el("span", { class: `change change-${r.change}`, text: r.change })),
          el("td", { class: "side side-a" }, valueNode(r.a, changed, "", true)),
          el("td", { class: "side side-b" }, valueNode(r.b, changed, "", true)),
        ),
      );
    }
    diffNext = report.next_after ?? null;
    $("diff-next").disabled = diffNext === null;
    $("diff-first").disabled = diffPages.length <= 1;
    setText($("diff-page"), `page ${diffPages.length}${diffNext === null ? " (last)" : ""}`);
  }

  // For each numeric field that changed in this page's rows, how its value
  // moved (b − a): how many rows, the smallest, median and largest change,
  // and a small histogram.
  function renderMoves(rows) {
    const moves = new Map(); // path -> [b - a]
    for (const r of rows) {
      for (const f of r.fields || []) {
        if (typeof f.a === "number" && typeof f.b === "number") {
          if (!moves.has(f.path)) moves.set(f.path, []);
          moves.get(f.path).push(f.b - f.a);
        }
      }
    }
    const box = $("diff-moves");
    box.textContent = "";
    box.hidden = moves.size === 0;
    const signed = (n) => (n > 0 ? `+${numbers.format(n)}` : numbers.format(n));
    for (const [path, deltas] of moves) {
      deltas.sort((x, y) => x - y);
      const median = deltas[Math.floor(deltas.length / 2)];
      const lo = deltas[0];
      const hi = deltas[deltas.length - 1];
      const bins = new Array(10).fill(0);
      for (const d of deltas) bins[hi === lo ? 0 : Math.min(9, Math.floor(((d - lo) / (hi - lo)) * 10))]++;
      const top = Math.max(...bins);
      const chart = svg("svg", { class: "histogram", width: 100, height: 20, viewBox: "0 0 100 20", role: "img" });
      bins.forEach((n, i) => {
        const h = top ? (n / top) * 18 : 0;
        chart.append(svg("rect", { x: i * 10 + 1, y: 19 - h, width: 8, height: h }));
      });
      box.append(
        el(
          "div",
          { class: "move", "data-path": path },
          el("code", { text: path }),
          chart,
          ` ${deltas.length} rows changed by ${signed(lo)} to ${signed(hi)}, median ${signed(median)} (this page)`,
        ),
      );
    }
  }

  async function loadDiff(button) {
    const q = diffQuery;
    const after = diffPages[diffPages.length - 1];
    const params = new URLSearchParams({
      a: `${q.name}@${q.a}`,
      b: `${q.name}@${q.b}`,
      limit: String(q.limit),
    });
    if (q.waitMs > 0) params.set("wait_ms", String(q.waitMs));
    if (q.prefix) params.set("prefix", q.prefix);
    if (after !== null && after !== undefined) params.set("after", after);
    button.disabled = true;
    try {
      renderDiff(await api("GET", `/v1/diff?${params}`));
      $("message").hidden = true;
    } catch (e) {
      diffPages.pop();
      if (diffPages.length === 0) diffPages = [null];
      showMessage(e.message, "error");
    } finally {
      button.disabled = false;
      if (button.id === "diff-next") button.disabled = diffNext === null;
    }
  }

  function start() {
    $("diff-processor").addEventListener("change", () => lastStatus && renderDiffChoices(lastStatus));
    $("diff-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const limit = Math.min(1000, Math.max(1, parseInt($("diff-limit").value, 10) || 20));
      diffQuery = {
        name: $("diff-processor").value,
        a: $("diff-a").value,
        b: $("diff-b").value,
        prefix: $("diff-prefix").value,
        limit,
        // Like `kappa diff --wait SECONDS`: wait for a replaying version.
        waitMs: Math.min(3600, Math.max(0, parseFloat($("diff-wait").value) || 0)) * 1000,
      };
      if (!diffQuery.name || !diffQuery.a || !diffQuery.b) {
        showMessage("choose a processor and two of its versions to compare", "error");
        return;
      }
      diffPages = [null];
      loadDiff($("diff-run"));
    });
    $("diff-next").addEventListener("click", () => {
      if (!diffQuery || diffNext === null) return;
      diffPages.push(diffNext);
      loadDiff($("diff-next"));
    });
    $("diff-first").addEventListener("click", () => {
      if (!diffQuery) return;
      diffPages = [null];
      loadDiff($("diff-first"));
    });
    if (storedToken()) showTokenForm();
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      try {
        sessionStorage.setItem(TOKEN_KEY, token);
      } catch (_) {
        showMessage("this browser does not allow storing the token for this tab", "error");
        return;
      }
      $("token-input").value = "";
      $("token-forget").hidden = false;
      showMessage("token saved for this tab; it is sent with every request", "ok");
      poll(false);
    });
    $("token-forget").addEventListener("click", () => {
      try {
        sessionStorage.removeItem(TOKEN_KEY);
      } catch (_) {
        // nothing stored
      }
      $("token-forget").hidden = true;
      poll(false);
    });
    poll();
  }

  start();
})();
