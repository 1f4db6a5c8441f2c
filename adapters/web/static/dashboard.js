// posbus web: renders the dashboard documents the server pushes (server-sent events).
// Read-only: the page sends nothing but the event-stream request. Every amount arrives
// as a decimal string already at the venue's precision; the script never computes with
// it, it only shows it (the exact value goes in the cell's title).
"use strict";

(function () {
  const byId = (id) => document.getElementById(id);
  let updates = 0;
  let lastDocument = 0;
  let interval = 1;

  function text(value) {
    return value === null || value === undefined || value === "" ? "-" : String(value);
  }

  function clock(ns) {
    if (ns === null || ns === undefined) return "-";
    // Nanoseconds exceed a double's exact range; milliseconds are all a clock shows.
    return new Date(Number(ns) / 1e6).toISOString().slice(11, 19) + "Z";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    const s = Math.floor(seconds);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d" + String(Math.floor((s % 86400) / 3600)).padStart(2, "0") + "h";
  }

  // A table cell: `field` names it for scripts and tests, `num` aligns it right,
  // `exact` is the unrounded value, `signed` colours a P&L by its sign.
  function td(value, opts) {
    const o = opts || {};
    const cell = document.createElement("td");
    cell.textContent = text(value);
    if (o.field) cell.dataset.field = o.field;
    if (o.num) cell.className = "num";
    if (o.exact !== undefined && o.exact !== null) cell.title = o.exact;
    if (o.signed && typeof value === "string") {
      cell.dataset.sign = value.startsWith("-") ? "neg" : /[1-9]/.test(value) ? "pos" : "zero";
    }
    if (o.state) cell.dataset.state = o.state;
    return cell;
  }

  function row(cells, data) {
    const tr = document.createElement("tr");
    tr.append(...cells);
    for (const [key, value] of Object.entries(data || {})) tr.dataset[key] = text(value);
    return tr;
  }

  function fill(tableId, items, makeRow, empty) {
    const table = byId(tableId);
    const body = table.tBodies[0];
    if (items === null || items === undefined) {
      body.replaceChildren(note(table, "not read: see the errors above"));
    } else if (items.length === 0) {
      body.replaceChildren(note(table, empty));
    } else {
      body.replaceChildren(...items.map(makeRow));
    }
  }

  function note(table, message) {
    const cell = document.createElement("td");
    cell.colSpan = table.tHead.rows[0].cells.length;
    cell.className = "empty";
    cell.textContent = message;
    return row([cell]);
  }

  // An amount with its exact value; P&L is coloured by its sign, fees (a cost) are not.
  function money(source, key) {
    const exact = source.exact && source.exact[key];
    return td(source[key], { field: key, num: true, signed: key !== "fees", exact: exact });
  }

  function renderTotals(doc) {
    fill("totals", doc.totals, (t) => row([
      td(t.currency, { field: "currency" }),
      money(t, "realized_pnl"), money(t, "unrealized_pnl"), money(t, "total_pnl"),
      money(t, "fees"),
      td(t.positions, { field: "positions", num: true }), td(t.open, { field: "open", num: true }),
    ], { currency: t.currency }), "no positions");
  }

  function renderAccounts(doc) {
    const rows = [];
    if (doc.accounts === null) {
      fill("accounts", null);
      return;
    }
    for (const account of doc.accounts) {
      const gateway = account.gateway || {};
      // One row per currency the account holds positions in; one row without P&L when none.
      const pnls = account.pnl === null ? [{ currency: "not read", exact: {} }]
        : account.pnl.length ? account.pnl : [{ currency: null, exact: {} }];
      for (const t of pnls) {
        rows.push(row([
          td(account.account, { field: "account" }),
          td(gateway.state, { field: "gateway", state: gateway.state }),
          td(gateway.breaker, { field: "breaker", state: gateway.breaker }),
          td(t.currency, { field: "currency" }),
          money(t, "realized_pnl"), money(t, "unrealized_pnl"), money(t, "total_pnl"),
          td(t.open, { field: "open", num: true }),
        ], { account: account.account }));
      }
    }
    fill("accounts", rows, (r) => r, "no accounts");
  }

  function renderRisk(doc) {
    const risk = doc.risk;
    const badge = byId("risk-state");
    badge.textContent = "risk " + text(risk && risk.state);
    badge.dataset.state = risk ? text(risk.state) : "";
    const detail = [];
    if (risk && risk.halt_reason) detail.push("halted: " + risk.halt_reason);
    if (risk && risk.cooldown_until_ns) detail.push("cool-down until " + clock(risk.cooldown_until_ns));
    byId("risk-detail").textContent = risk ? detail.join("; ") : "risk not read";
    fill("limits", risk && risk.limits, (l) => {
      const bar = document.createElement("td");
      bar.className = "bar-cell";
      const meter = document.createElement("div");
      meter.className = "bar";
      meter.dataset.level = l.level;
      const used = l.used_pct === null ? 0 : Math.min(100, Number(l.used_pct));
      meter.style.width = used + "%";
      bar.append(meter);
      return row([
        td(l.name, { field: "name" }), td(l.value, { field: "value", num: true }),
        td(l.limit, { field: "limit", num: true }),
        td(l.used_pct === null ? null : l.used_pct + " %", { field: "used", num: true, state: l.level }),
        bar,
      ], { limit: l.name, level: l.level });
    }, "no limits");
    const metrics = risk ? Object.entries(risk.metrics) : [];
    byId("risk-metrics").tBodies[0].replaceChildren(...metrics.map(([name, value]) =>
      row([td(name), td(value, { field: name, num: true })], { metric: name })));
    fill("decisions", risk && risk.decisions.slice(0, 10), (d) => row([
      td(d.order_id, { field: "order_id" }), td(d.approved ? "yes" : "no", { field: "approved" }),
      td(d.check, { field: "check" }), td(d.state, { field: "state", state: d.state }),
    ]), "no decisions yet");
  }

  function renderPositions(doc) {
    fill("positions", doc.positions, (p) => row([
      td(p.account, { field: "account" }), td(p.symbol, { field: "symbol" }),
      td(p.error ? "error: " + p.error : p.status, { field: "status" }),
      td(p.qty, { field: "qty", num: true, exact: p.exact.qty }),
      td(p.avg_entry_price, { field: "avg_entry_price", num: true, exact: p.exact.avg_entry_price }),
      td(p.mark, { field: "mark", num: true, exact: p.exact.mark }),
      money(p, "realized_pnl"), money(p, "unrealized_pnl"), money(p, "total_pnl"), money(p, "fees"),
      td(p.fills, { field: "fills", num: true }),
    ], { account: p.account, symbol: p.symbol }), "no positions");
  }

  function renderOrders(doc) {
    fill("orders", doc.orders, (o) => row([
      td(o.order_id, { field: "order_id" }), td(o.side, { field: "side" }),
      td(o.qty, { field: "qty", num: true }), td(o.filled_qty, { field: "filled_qty", num: true }),
      td(o.limit_price === null ? "market" : o.limit_price, { field: "limit_price", num: true }),
      td(o.status, { field: "status" }), td(clock(o.created_ts_ns), { field: "since" }),
    ], { order: o.order_id }), "no working orders");
  }

  function renderEvents(doc) {
    fill("risk-events", doc.risk_events.slice(0, 20), (e) => row([
      td(clock(e.ts_ns), { field: "time" }), td(e.event, { field: "event" }),
      td(e.previous_state ? e.previous_state + " \u2192 " + e.state : e.state, { field: "state", state: e.state }),
      td(e.reason, { field: "reason" }), td(e.sender, { field: "sender" }),
    ], { event: e.event }), "none heard since the dashboard started");
    fill("fills", doc.fills.slice(0, 20), (f) => row([
      td(clock(f.ts_ns), { field: "time" }), td(f.order_id, { field: "order_id" }),
      td(f.side, { field: "side" }), td(f.qty, { field: "qty", num: true }),
      td(f.price, { field: "price", num: true }), td(f.fee + " " + f.fee_currency, { field: "fee", num: true }),
    ], { order: f.order_id }), "none heard since the dashboard started");
    fill("quotes", doc.quotes, (q) => row([
      td(q.symbol, { field: "symbol" }), td(q.bid, { field: "bid", num: true }),
      td(q.ask, { field: "ask", num: true }), td(q.last, { field: "last", num: true }),
      td(clock(q.ts_ns), { field: "time" }),
    ], { symbol: q.symbol }), "none heard yet");
  }

  function renderWorkers(doc) {
    fill("workers", doc.workers, (w) => row([
      td(w.name, { field: "name" }), td(w.role, { field: "role" }),
      td(w.state, { field: "state", state: w.state }), td(w.pid, { field: "pid", num: true }),
      td(duration(w.uptime_s), { field: "uptime", num: true }),
      td(w.restarts, { field: "restarts", num: true }),
      td(w.role === "gateway" ? w.breaker : "", { field: "breaker", state: w.breaker }),
    ], { worker: w.name, state: w.state }), "no workers");
  }

  function render(doc) {
    const errors = byId("errors");
    errors.hidden = doc.errors.length === 0;
    errors.replaceChildren(...doc.errors.map((message) => {
      const line = document.createElement("div");
      line.textContent = message;
      return line;
    }));
    byId("updated").textContent = clock(doc.ts_ns);
    byId("stack-meta").textContent = text(doc.run_dir) + " \u00b7 " + doc.venue;
    renderTotals(doc);
    renderAccounts(doc);
    renderRisk(doc);
    renderPositions(doc);
    renderOrders(doc);
    renderEvents(doc);
    renderWorkers(doc);
    updates += 1;
    document.body.dataset.updates = String(updates);
    lastDocument = Date.now();
    interval = doc.interval_s;
  }

  // The server reads the stack every interval and pushes each reading: silence for
  // several intervals means the figures on the page are old, whatever the connection says.
  function watchStaleness() {
    const quiet = (Date.now() - lastDocument) / 1000;
    if (lastDocument && quiet > Math.max(5, 3 * interval) && byId("connection").dataset.state === "live") {
      connection("stale", "stale: no reading for " + Math.floor(quiet) + " s");
    }
  }

  function connection(state, label) {
    const element = byId("connection");
    element.dataset.state = state;
    element.textContent = label || state;
  }

  function connect() {
    const source = new EventSource("/api/events");
    source.addEventListener("dashboard", (event) => {
      connection("live");
      render(JSON.parse(event.data));
    });
    source.addEventListener("open", () => connection("live"));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (a new token after a restart) or gone: only the printed URL helps.
        connection("closed", "disconnected: open the URL posbus web printed");
      } else {
        connection("reconnecting");
      }
    });
  }

  connect();
  setInterval(watchStaleness, 1000);
})();
