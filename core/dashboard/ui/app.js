// The Weft dashboard: reads the controller's admin API (GET /v1/status,
// GET /v1/stats) with the admin token and draws it. Everything it shows
// is built with DOM calls and textContent, never HTML strings: names,
// paths and reasons come from the mesh and from callers.
"use strict";

(function () {
  const TOKEN_KEY = "weft-admin-token";
  const REFRESH_MS = 5000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  let loads = 0;
  let timer = null;
  let lastOK = 0;

  // --- the token: from the URL fragment (#token=...), never sent to the
  // server in a URL, or pasted; kept in this tab's sessionStorage only.
  function takeTokenFromFragment() {
    const frag = window.location.hash.replace(/^#/, "");
    if (!frag) return;
    const params = new URLSearchParams(frag);
    const tok = params.get("token");
    if (tok) {
      sessionStorage.setItem(TOKEN_KEY, tok.trim());
    }
    // Drop the fragment so the token is not left in the address bar,
    // the history or a bookmark.
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  function showLogin(message) {
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setState(message ? "unauthorized" : "signed-out", message ? "token refused" : "no token");
  }

  function setState(state, text) {
    const el = $("state");
    el.dataset.state = state;
    el.dataset.loads = String(loads);
    el.textContent = text;
  }

  // --- fetching
  class HTTPError extends Error {
    constructor(status, body) { super("HTTP " + status + ": " + body); this.status = status; }
  }

  async function getJSON(path) {
    const resp = await fetch(path, {
      headers: { "Authorization": "Bearer " + token(), "Accept": "application/json" },
      cache: "no-store", credentials: "omit", redirect: "error", referrerPolicy: "no-referrer",
    });
    if (!resp.ok) {
      throw new HTTPError(resp.status, (await resp.text()).slice(0, 300));
    }
    // Configuration versions are uint64, and replicated controllers' lie
    // above 2^63 (the policy's raft index in the high bits), where a
    // JavaScript number cannot tell neighbours apart: read them as text
    // (a quote inside a JSON string is escaped, so no string value matches).
    const text = await resp.text();
    return JSON.parse(text.replace(/"(version|acked_version|rejected_version)":\s*(\d+)/g, '"$1":"$2"'));
  }

  // ver reads a configuration version (text or number) exactly.
  function ver(v) {
    try { return BigInt(v || 0); } catch (e) { return 0n; }
  }

  async function refresh() {
    clearTimeout(timer);
    if (!token()) { showLogin(""); return; }
    try {
      const [status, stats] = await Promise.all([
        getJSON("/v1/status"),
        getJSON("/v1/stats").catch((e) => {
          if (e instanceof HTTPError && e.status === 404) return null; // a controller without the collector
          throw e;
        }),
      ]);
      loads++;
      lastOK = Date.now();
      $("login").hidden = true;
      $("main").hidden = false;
      render(status, stats);
      if (stats) {
        setState("ok", "live");
      } else {
        setState("no-stats", "no metrics");
      }
    } catch (e) {
      if (e instanceof HTTPError && e.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin("The controller refused this token. Paste the one in DATA_DIR/admin.token.");
        return;
      }
      const age = lastOK ? Math.round((Date.now() - lastOK) / 1000) + " s old" : "no data yet";
      setState(lastOK ? "stale" : "error", "cannot reach the controller (" + age + ")");
      $("meta").textContent = String(e.message || e);
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  // --- small builders
  function el(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") n.className = v;
      else if (k === "text") n.textContent = v;
      else n.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      n.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return n;
  }

  function svg(tag, attrs, ...children) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") n.textContent = v;
      else n.setAttribute(k, String(v));
    }
    for (const c of children) if (c) n.append(c);
    return n;
  }

  function fillTable(id, rows, emptyText, columns) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      body.append(el("tr", {}, el("td", { class: "empty", colspan: columns, text: emptyText })));
      return;
    }
    for (const r of rows) body.append(r);
  }

  const fmt = {
    rps(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); },
    pct(v) { return (v * 100).toFixed(v >= 0.9995 || v === 0 ? 0 : 1) + "%"; },
    ms(v) { return !v ? "-" : v >= 1000 ? (v / 1000).toFixed(2) + " s" : v >= 10 ? v.toFixed(0) + " ms" : v.toFixed(1) + " ms"; },
    int(v) { return Number(v || 0).toLocaleString("en-US"); },
    time(s) { const d = new Date(s); return isNaN(d) ? "" : d.toLocaleTimeString([], { hour12: false }); },
    rel(s) {
      const d = new Date(s);
      if (isNaN(d) || d.getFullYear() < 2000) return "";
      let sec = Math.round((d - Date.now()) / 1000);
      const past = sec < 0; sec = Math.abs(sec);
      const txt = sec < 90 ? sec + " s" : sec < 5400 ? Math.round(sec / 60) + " min" : sec < 172800 ? Math.round(sec / 3600) + " h" : Math.round(sec / 86400) + " d";
      return past ? txt + " ago" : "in " + txt;
    },
  };

  // The colour of a success rate: what the graph and the pills share.
  function grade(g) {
    if (!g || !g.requests) return (g && g.denied) ? "bad" : "idle";
    if (g.success_rate >= 0.99) return "ok";
    if (g.success_rate >= 0.95) return "warn";
    return "bad";
  }
  const COLOR = { ok: "#1f9d55", warn: "#d99a00", bad: "#d64545", idle: "#a9b0bd" };

  function ratePill(g) {
    if (!g || !g.requests) return el("span", { class: "pill idle", text: "-" });
    const k = grade(g);
    const bar = el("span", { class: "bar" }, el("span"));
    bar.firstChild.style.width = Math.max(2, g.success_rate * 100) + "%";
    bar.firstChild.style.background = COLOR[k];
    return el("span", {}, bar, el("span", { class: "pill " + k, text: fmt.pct(g.success_rate) }));
  }

  // A sparkline of one figure of a series.
  function spark(series, key, color, fixedMax) {
    const w = 120, h = 26, pad = 2;
    const s = svg("svg", { class: "spark", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img" });
    const pts = (series || []).filter((p) => typeof p[key] === "number");
    if (pts.length < 2) {
      s.append(svg("line", { x1: pad, x2: w - pad, y1: h - pad, y2: h - pad, stroke: "#e3e6ec", "stroke-width": 1 }));
      return s;
    }
    const vals = pts.map((p) => p[key]);
    const max = fixedMax || Math.max(...vals) || 1;
    const min = fixedMax ? Math.min(...vals, fixedMax * 0.9) : 0;
    const span = max - min || 1;
    const xy = vals.map((v, i) => [pad + (i * (w - 2 * pad)) / (vals.length - 1), h - pad - ((v - min) * (h - 2 * pad)) / span]);
    const line = xy.map(([x, y], i) => (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1)).join(" ");
    s.append(svg("path", { d: line + ` L${w - pad} ${h - pad} L${pad} ${h - pad} Z`, fill: color, "fill-opacity": 0.12, stroke: "none" }));
    s.append(svg("path", { d: line, fill: "none", stroke: color, "stroke-width": 1.5, "stroke-linejoin": "round" }));
    const last = xy[xy.length - 1];
    s.append(svg("circle", { cx: last[0], cy: last[1], r: 2, fill: color }));
    s.append(svg("title", { text: `${key}: last ${vals[vals.length - 1]}` }));
    return s;
  }

  // --- the model the panels share
  function model(status, stats) {
    const services = new Map(); // name -> {name, instances, healthy, golden, series}
    const svc = (name) => {
      if (!services.has(name)) services.set(name, { name, instances: 0, healthy: 0, critical: 0, golden: null, series: null });
      return services.get(name);
    };
    for (const i of status.instances || []) {
      const s = svc(i.service);
      s.instances++;
      if (i.health === "critical") s.critical++; else s.healthy++;
    }
    const edges = [];
    if (stats) {
      for (const s of stats.services || []) { const m = svc(s.service); m.golden = s.golden; m.series = s.series; }
      for (const e of stats.edges || []) {
        const caller = e.caller || "(outside the mesh)";
        svc(caller); svc(e.callee);
        edges.push({ caller, callee: e.callee, golden: e.golden || {}, series: e.series, routes: e.routes || [] });
      }
    }
    return { services, edges };
  }

  // --- topology: a layered drawing (Sugiyama-style), callers left of
  // callees. An edge that spans layers passes through a slot of its own
  // in each layer between, so it never crosses a service's box.
  function layout(names, edges) {
    const rank = new Map(names.map((n) => [n, 0]));
    // Longest path from the sources, bounded (a cycle stops growing at n).
    for (let pass = 0; pass < names.length; pass++) {
      let changed = false;
      for (const e of edges) {
        if (e.caller === e.callee) continue;
        const r = rank.get(e.caller) + 1;
        if (r > rank.get(e.callee) && r < names.length) { rank.set(e.callee, r); changed = true; }
      }
      if (!changed) break;
    }
    // Squeeze out empty layers.
    const used = [...new Set(rank.values())].sort((a, b) => a - b);
    const squeeze = new Map(used.map((r, i) => [r, i]));
    for (const n of names) rank.set(n, squeeze.get(rank.get(n)));
    const layers = used.map(() => []);
    const preds = new Map(); // item -> items before it
    const addPred = (item, p) => { if (!preds.has(item)) preds.set(item, []); preds.get(item).push(p); };
    for (const n of names) layers[rank.get(n)].push({ id: n, real: true });
    // Virtual slots of the edges that skip layers.
    const chains = new Map();
    edges.forEach((e, i) => {
      const a = rank.get(e.caller), b = rank.get(e.callee);
      if (e.caller === e.callee || b <= a) return;
      let prev = e.caller;
      const chain = [];
      for (let l = a + 1; l < b; l++) {
        const id = "\u0000" + i + ":" + l;
        layers[l].push({ id, real: false });
        addPred(id, prev);
        chain.push(id);
        prev = id;
      }
      addPred(e.callee, prev);
      chains.set(i, chain);
    });
    // Order each layer by the mean position of what precedes it (sweeps).
    const pos = new Map();
    layers.forEach((l) => { l.sort((x, y) => x.id.localeCompare(y.id)); l.forEach((it, i) => pos.set(it.id, i)); });
    for (let sweep = 0; sweep < 3; sweep++) {
      for (let li = 1; li < layers.length; li++) {
        const key = (it) => {
          const ps = (preds.get(it.id) || []).filter((p) => pos.has(p)).map((p) => pos.get(p));
          return ps.length ? ps.reduce((x, y) => x + y, 0) / ps.length : pos.get(it.id);
        };
        const keys = new Map(layers[li].map((it) => [it.id, key(it)]));
        layers[li].sort((x, y) => keys.get(x.id) - keys.get(y.id) || x.id.localeCompare(y.id));
        layers[li].forEach((it, i) => pos.set(it.id, i));
      }
    }
    return { layers, chains };
  }

  function drawGraph(m) {
    const host = $("graph");
    host.replaceChildren();
    const names = [...m.services.keys()].sort();
    const NW = 176, NH = 54, VH = 26, GX = 120, GY = 22, PAD = 24;
    if (!names.length) {
      const s = svg("svg", { width: 400, height: 60, viewBox: "0 0 400 60" });
      s.append(svg("text", { x: 200, y: 34, "text-anchor": "middle", class: "empty", text: "No services yet." }));
      host.append(s);
      return;
    }
    const { layers, chains } = layout(names, m.edges);
    const height = (l) => l.reduce((h, it) => h + (it.real ? NH : VH), 0) + Math.max(0, l.length - 1) * GY;
    const tallest = Math.max(...layers.map(height));
    const hasBack = m.edges.some((e) => e.caller !== e.callee && layers.findIndex((l) => l.some((it) => it.id === e.callee)) <= layers.findIndex((l) => l.some((it) => it.id === e.caller)));
    const W = PAD * 2 + layers.length * NW + (layers.length - 1) * GX;
    const H = PAD * 2 + tallest + (hasBack ? 50 : 0) + 16;
    const at = new Map();
    layers.forEach((l, li) => {
      let y = PAD + 16 + (tallest - height(l)) / 2;
      for (const it of l) {
        const h = it.real ? NH : VH;
        at.set(it.id, { x: PAD + li * (NW + GX), y, h, layer: li });
        y += h + GY;
      }
    });
    const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "service topology" });
    const defs = svg("defs");
    for (const [k, c] of Object.entries(COLOR)) {
      defs.append(svg("marker", { id: "arrow-" + k, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" },
        svg("path", { d: "M0 0 L10 5 L0 10 z", fill: c })));
    }
    root.append(defs);
    const edgeLayer = svg("g"), labelLayer = svg("g"), nodeLayer = svg("g");
    root.append(edgeLayer, nodeLayer, labelLayer);
    const curve = (x1, y1, x2, y2) => { const c = (x2 - x1) * 0.5; return `C${x1 + c} ${y1} ${x2 - c} ${y2} ${x2} ${y2}`; };

    m.edges.forEach((e, i) => {
      const a = at.get(e.caller), b = at.get(e.callee);
      const g = e.golden;
      const deniedOnly = g.denied > 0 && !(g.successes > 0);
      const k = grade(g);
      let d, lx, ly;
      if (e.caller === e.callee) {
        const x = a.x + NW * 0.7, y = a.y;
        d = `M${x - 20} ${y} C${x - 30} ${y - 40} ${x + 30} ${y - 40} ${x + 20} ${y}`;
        lx = x; ly = y - 32;
      } else if (b.layer > a.layer) {
        let x = a.x + NW, y = a.y + a.h / 2;
        d = `M${x} ${y}`;
        const chain = chains.get(i) || [];
        for (const v of chain) {
          const p = at.get(v), vy = p.y + p.h / 2;
          d += " " + curve(x, y, p.x, vy) + ` L${p.x + NW} ${vy}`;
          x = p.x + NW; y = vy;
        }
        const x2 = b.x - 2, y2 = b.y + b.h / 2;
        d += " " + curve(x, y, x2, y2);
        if (chain.length) {
          const p = at.get(chain[Math.floor((chain.length - 1) / 2)]);
          lx = p.x + NW / 2; ly = p.y + p.h / 2;
        } else {
          lx = (x + x2) / 2; ly = (y + y2) / 2;
        }
      } else {
        // A call back to an earlier layer (or within one): around below.
        const x1 = a.x + NW / 2, y1 = a.y + a.h, x2 = b.x + NW / 2 + 10, y2 = b.y + b.h + 2;
        const low = Math.min(H - 8, Math.max(y1, y2) + 44);
        d = `M${x1} ${y1} C${x1} ${low} ${x2} ${low} ${x2} ${y2}`;
        lx = (x1 + x2) / 2; ly = low - 10;
      }
      const width = g.requests ? Math.min(6, 1.5 + Math.log10(1 + (g.rps || 0)) * 2) : 1.5;
      const grp = svg("g", {
        class: "edge" + (deniedOnly ? " denied" : ""), "data-testid": "edge",
        "data-caller": e.caller, "data-callee": e.callee, "data-requests": g.requests || 0, "data-denied": g.denied || 0,
      });
      grp.append(svg("path", { d, stroke: COLOR[k], "stroke-width": width, "marker-end": `url(#arrow-${k})` }));
      grp.append(svg("title", { text: `${e.caller} → ${e.callee}: ${fmt.int(g.requests)} requests, ${g.requests ? fmt.pct(g.success_rate) : "-"} success, p99 ${fmt.ms(g.p99_ms)}, ${fmt.int(g.denied)} denied` }));
      edgeLayer.append(grp);
      const text = deniedOnly ? `denied ×${fmt.int(g.denied)}` : `${fmt.rps(g.rps || 0)} rps` + (g.denied ? ` · ${fmt.int(g.denied)} denied` : "");
      const tw = text.length * 6.4 + 14;
      labelLayer.append(svg("g", { class: "lbl" + (deniedOnly ? " denied" : "") },
        svg("rect", { x: lx - tw / 2, y: ly - 9, width: tw, height: 18, rx: 9, stroke: COLOR[k] }),
        svg("text", { x: lx, y: ly + 4, "text-anchor": "middle", text })));
    });

    for (const n of names) {
      const p = at.get(n), s = m.services.get(n);
      const g = s.golden;
      const k = g && g.requests ? grade(g) : (s.critical ? "bad" : "idle");
      const node = svg("g", { class: "node", "data-testid": "node", "data-service": n, transform: `translate(${p.x} ${p.y})` });
      node.append(svg("rect", { width: NW, height: NH, rx: 10, stroke: COLOR[k] }));
      const title = n.length > 22 ? n.slice(0, 21) + "…" : n;
      node.append(svg("text", { x: 12, y: 21, class: "name", text: title }));
      const inst = s.instances ? `${s.healthy}/${s.instances} up` : "not in the mesh";
      const sub = g && g.requests ? `${inst} · ${fmt.rps(g.rps)} rps · ${fmt.pct(g.success_rate)}` : inst;
      node.append(svg("text", { x: 12, y: 40, class: "sub", text: sub }));
      if (s.critical) node.append(svg("circle", { cx: NW - 12, cy: 14, r: 4, fill: COLOR.bad }, svg("title", { text: `${s.critical} critical` })));
      node.append(svg("title", { text: n }));
      nodeLayer.append(node);
    }
    host.append(root);
  }

  // --- panels
  function drawServices(m) {
    const rows = [];
    for (const s of [...m.services.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const g = s.golden || {};
      rows.push(el("tr", { "data-testid": "service", "data-service": s.name, "data-requests": g.requests || 0 },
        el("td", {}, el("strong", { text: s.name })),
        el("td", { text: s.instances ? `${s.healthy}/${s.instances} healthy` : "-" }),
        el("td", { class: "num", text: g.requests ? fmt.rps(g.rps) : "-" }),
        el("td", {}, ratePill(g)),
        el("td", { class: "num", text: fmt.ms(g.p50_ms) }),
        el("td", { class: "num", text: fmt.ms(g.p95_ms) }),
        el("td", { class: "num", text: fmt.ms(g.p99_ms) }),
        el("td", {}, spark(s.series, "rps", "#3b5bdb")),
        el("td", {}, spark(s.series, "success_rate", "#1f9d55", 1)),
        el("td", {}, spark(s.series, "p99_ms", "#d99a00"))));
    }
    fillTable("services", rows, "No services.", 10);
  }

  function drawFlows(m, stats) {
    const rows = [];
    const edges = [...m.edges].sort((a, b) => (b.golden.denied > 0) - (a.golden.denied > 0) || a.caller.localeCompare(b.caller) || a.callee.localeCompare(b.callee));
    for (const e of edges) {
      const g = e.golden;
      const denied = g.denied > 0;
      const verdict = denied && !(g.successes > 0) ? el("span", { class: "pill bad", text: "denied" })
        : denied ? el("span", { class: "pill warn", text: "partly denied" }) : el("span", { class: "pill ok", text: "allowed" });
      rows.push(el("tr", { "data-testid": denied ? "denied-flow" : "flow", "data-caller": e.caller, "data-callee": e.callee, "data-requests": g.requests || 0, "data-denied": g.denied || 0 },
        el("td", {}, el("strong", { text: e.caller })),
        el("td", { class: "muted", text: "→" }),
        el("td", {}, el("strong", { text: e.callee }), " ", verdict),
        el("td", { class: "num", "data-testid": "flow-requests", text: fmt.int(g.requests) }),
        el("td", { class: "num", text: fmt.rps(g.rps || 0) }),
        el("td", {}, ratePill(g)),
        el("td", { class: "num", text: fmt.ms(g.p99_ms) }),
        el("td", { class: "num", "data-testid": "flow-denied", text: fmt.int(g.denied) })));
    }
    fillTable("flows", rows, stats ? "No traffic in the window." : "No metrics from this controller.", 8);

    // Identical denials (same caller, callee, request and reason) are one
    // row, with how many and the newest time.
    const groups = new Map();
    for (const d of (stats && stats.recent_denials) || []) {
      const key = JSON.stringify([d.caller, d.callee, d.method, d.path, d.reason]);
      const g = groups.get(key);
      if (g) g.count++; else groups.set(key, { d, count: 1 });
    }
    const drows = [...groups.values()].map(({ d, count }) => el("tr", { "data-testid": "denial", "data-callee": d.callee, "data-count": count },
      el("td", { class: "mono nowrap", text: fmt.time(d.time) }),
      el("td", { title: d.caller || "" }, el("strong", { text: serviceOf(d.caller) })),
      el("td", {}, el("strong", { text: d.callee })),
      el("td", { class: "mono", text: [d.method, d.path].filter(Boolean).join(" ") || "(connection)" }),
      el("td", {}, count > 1 ? el("span", { class: "pill bad", text: "×" + count }) : null, count > 1 ? " " : null, d.reason)));
    fillTable("denials", drows, stats ? "No denials in the window." : "No metrics from this controller.", 5);
  }

  // The service a SPIFFE ID names (spiffe://td/ns/NS/svc/NAME), or the ID.
  function serviceOf(id) {
    if (!id) return "(no identity)";
    const m = /\/svc\/([^/]+)$/.exec(id);
    return m ? m[1] : id;
  }

  function drawInstances(status) {
    const rows = (status.instances || []).slice().sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id)).map((i) => {
      const labels = el("td");
      for (const [k, v] of Object.entries(i.labels || {}).sort()) {
        const full = `${k}=${v}`;
        labels.append(el("span", { class: "label", title: full, text: full.length > 40 ? full.slice(0, 39) + "…" : full }));
      }
      const hk = i.health === "critical" ? "bad" : i.health === "warning" ? "warn" : i.health === "passing" ? "ok" : "idle";
      const health = el("td", {}, el("span", { class: "pill " + hk, text: i.health || "unknown" }));
      if (i.health_reason) health.append(" ", el("span", { class: "muted", text: i.health_reason }));
      return el("tr", { "data-testid": "instance", "data-instance": i.id, "data-health": i.health || "" },
        el("td", { class: "mono", text: i.id }),
        el("td", {}, el("strong", { text: i.service })),
        el("td", { text: i.adapter }),
        el("td", { class: "mono", text: i.address }),
        health,
        el("td", { class: "muted", text: i.health_source === "sidecar_check" ? "sidecar check" : (i.health_source || "") }),
        el("td", { text: i.isolation || "unknown" }),
        labels);
    });
    fillTable("instances", rows, "No instances: no adapter reports any yet.", 8);
  }

  // The sidecar's version, when the controller reports it (a field a
  // newer controller adds to its sidecar status).
  function sidecarVersion(s) {
    return s.proxy_version || s.sidecar_version || s.version_string || "";
  }

  function drawSidecars(status) {
    const rows = (status.sidecars || []).map((s) => {
      let cfg;
      const sent = ver(s.version), acked = ver(s.acked_version), rejected = ver(s.rejected_version);
      const current = sent > 0n && acked === sent;
      if (rejected > 0n && rejected >= acked) {
        cfg = el("span", { class: "pill bad", title: `version ${s.rejected_version}: ${s.reject_error || ""}`, text: "NACK" });
      } else if (current) {
        cfg = el("span", { class: "pill ok", title: `version ${s.acked_version}`, text: "ACK" });
      } else {
        cfg = el("span", { class: "pill warn", title: `version ${s.version} sent, ${s.acked_version} acknowledged`, text: "pending" });
      }
      const cfgCell = el("td", {}, cfg);
      if (s.reject_error) cfgCell.append(el("div", { class: "muted", text: s.reject_error }));
      let cert = el("span", { class: "muted", text: "issued elsewhere" });
      if (s.leaf_expires) {
        const left = (new Date(s.leaf_expires) - Date.now()) / 1000;
        const k = left < 0 ? "bad" : left < 3600 ? "warn" : "ok";
        cert = el("span", { class: "pill " + k, title: s.leaf_expires, text: (left < 0 ? "expired " : "expires ") + fmt.rel(s.leaf_expires) });
      }
      const v = sidecarVersion(s);
      return el("tr", { "data-testid": "sidecar", "data-instance": s.instance, "data-acked": current ? "true" : "false" },
        el("td", { title: s.identity }, el("span", { class: "mono", text: s.instance })),
        el("td", { class: v ? "mono" : "muted", text: v || "-" }),
        cfgCell,
        el("td", {}, cert),
        el("td", { class: "muted", text: fmt.rel(s.connected_since) }));
    });
    fillTable("sidecars", rows, "No sidecar is connected.", 5);
  }

  function drawRoots(status) {
    const rows = (status.roots || []).map((r) => {
      const state = r.active ? el("span", { class: "pill ok", text: "active" }) : el("span", { class: "pill warn", text: "retiring " + fmt.rel(r.retire_at) });
      return el("tr", { "data-testid": "root", "data-root": r.id },
        el("td", {}, el("span", { class: "mono", text: r.id.length > 20 ? r.id.slice(0, 20) + "…" : r.id, title: r.id }), el("div", { class: "muted", text: r.subject })),
        el("td", {}, state),
        el("td", { title: r.not_after, text: fmt.rel(r.not_after) }),
        el("td", { class: "num", text: fmt.int(r.sidecars) }));
    });
    fillTable("roots", rows, "No root.", 4);
  }

  function render(status, stats) {
    $("trust-domain").textContent = status.trust_domain || "";
    const parts = [];
    parts.push(`${(status.instances || []).length} instances`, `${(status.sidecars || []).length} sidecars`);
    if (stats) {
      parts.push(`${stats.reporting_sidecars} reporting`, `window ${Math.round(stats.window_seconds)} s`, `updated ${fmt.time(stats.generated)}`);
    }
    $("meta").textContent = parts.join(" · ");
    const notice = $("notice");
    notice.hidden = !!stats;
    notice.textContent = stats ? "" : "This controller does not serve GET /v1/stats: traffic figures are missing, instances, sidecars and roots are shown.";
    const m = model(status, stats);
    drawGraph(m);
    drawServices(m);
    drawFlows(m, stats);
    drawInstances(status);
    drawSidecars(status);
    drawRoots(status);
  }

  document.addEventListener("DOMContentLoaded", () => {
    takeTokenFromFragment();
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("token-input").value.trim();
      $("token-input").value = "";
      if (v) { sessionStorage.setItem(TOKEN_KEY, v); refresh(); }
    });
    $("forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); clearTimeout(timer); showLogin(""); });
    window.addEventListener("hashchange", () => { takeTokenFromFragment(); refresh(); });
    refresh();
  });
})();
