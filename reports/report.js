// fleetcompat report: renders the embedded JSON. Data only ever goes into
// textContent or attribute values set through the DOM, never into markup.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const WORDS = { C: "compatible", I: "incompatible", E: "error", N: "not evaluated" };
  const M = D.images.length;
  const NONE = "N".repeat(M);
  const PAGE_ROWS = 50, PAGE_COLS = 40, PAGE_LIST = 100;

  // Host groups: hosts with identical verdict rows share one matrix row.
  const unitHosts = D.units.map(() => []);
  const unevaluated = [];
  D.hosts.forEach((h, i) => (h[1] >= 0 ? unitHosts[h[1]].push(i) : unevaluated.push(i)));
  const byRow = new Map();
  function addGroup(row, unit, hosts) {
    if (!hosts.length) return;
    let g = byRow.get(row);
    if (!g) { g = { row: row, units: [], hosts: [] }; byRow.set(row, g); }
    if (unit !== null) g.units.push(unit);
    for (const h of hosts) g.hosts.push(h);
  }
  D.units.forEach((u, i) => addGroup(u.row, i, unitHosts[i]));
  addGroup(NONE, null, unevaluated);
  const groups = Array.from(byRow.values());
  for (const g of groups) {
    g.hosts.sort((a, b) => (D.hosts[a][0] < D.hosts[b][0] ? -1 : 1));
    g.first = D.hosts[g.hosts[0]][0];
    g.share = count(g.row, "C") / Math.max(M, 1);
  }

  // Per image counts over hosts.
  const imageCounts = D.images.map(() => ({ C: 0, I: 0, E: 0, N: 0 }));
  D.units.forEach((u, i) => {
    const w = unitHosts[i].length;
    for (let c = 0; c < M; c++) imageCounts[c][u.row[c]] += w;
  });
  imageCounts.forEach((k) => (k.N += unevaluated.length));

  function plural(n, noun) { return n + " " + noun + (n === 1 ? "" : "s"); }
  function count(text, letter) {
    let n = 0;
    for (let i = 0; i < text.length; i++) if (text[i] === letter) n++;
    return n;
  }
  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === "text") node.textContent = v;
        else if (k === "cls") node.className = v;
        else if (k === "on") node.addEventListener("click", v);
        else node.setAttribute(k, v);
      }
    }
    for (const child of children || []) node.append(child);
    return node;
  }
  function badge(letter) { return el("span", { cls: "badge " + letter, text: WORDS[letter] }); }
  function link(text, action) { return el("button", { cls: "link", text: text, on: action }); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function pager(node, total, size, page, go) {
    clear(node);
    const pages = Math.max(1, Math.ceil(total / size));
    node.append(
      el("button", { text: "‹ prev", on: () => go(Math.max(0, page - 1)) }),
      el("span", { text: "page " + (page + 1) + " of " + pages + " (" + total + ")" }),
      el("button", { text: "next ›", on: () => go(Math.min(pages - 1, page + 1)) })
    );
  }

  // Matrix.
  const mState = { rowPage: 0, colPage: 0 };
  function matrixColumns() {
    const q = document.getElementById("m-image").value.toLowerCase();
    const sort = document.getElementById("m-colsort").value;
    const cols = [];
    for (let c = 0; c < M; c++) if (!q || D.images[c].name.toLowerCase().includes(q)) cols.push(c);
    const share = (c) => imageCounts[c].C;
    if (sort === "worst") cols.sort((a, b) => share(a) - share(b) || a - b);
    if (sort === "best") cols.sort((a, b) => share(b) - share(a) || a - b);
    return cols;
  }
  function matrixRows(cols) {
    const q = document.getElementById("m-host").value.toLowerCase();
    const filter = document.getElementById("m-filter").value;
    const sort = document.getElementById("m-sort").value;
    let rows = groups.filter((g) => {
      if (q && !g.hosts.some((h) => D.hosts[h][0].toLowerCase().includes(q))) return false;
      if (filter === "all") return true;
      if (filter === "C") return cols.every((c) => g.row[c] === "C");
      return cols.some((c) => g.row[c] === filter);
    });
    const cmp = {
      hosts: (a, b) => b.hosts.length - a.hosts.length,
      worst: (a, b) => a.share - b.share,
      best: (a, b) => b.share - a.share,
      name: (a, b) => (a.first < b.first ? -1 : 1),
    }[sort];
    return rows.slice().sort(cmp);
  }
  function renderMatrix() {
    const cols = matrixColumns();
    const rows = matrixRows(cols);
    const table = document.getElementById("m-table");
    clear(table);
    const rowStart = mState.rowPage * PAGE_ROWS;
    const colStart = mState.colPage * PAGE_COLS;
    const shownCols = cols.slice(colStart, colStart + PAGE_COLS);
    const head = el("tr", null, [el("th", { text: "hosts" })]);
    for (const c of shownCols) {
      head.append(el("th", { cls: "img", title: D.images[c].name, text: D.images[c].name }));
    }
    table.append(head);
    for (const g of rows.slice(rowStart, rowStart + PAGE_ROWS)) {
      const label = g.first + (g.hosts.length > 1 ? " and " + (g.hosts.length - 1) + " more" : "");
      const tr = el("tr", null, [
        el("td", { cls: "group", title: label }, [link(plural(g.hosts.length, "host"), () => showGroup(g)), " " + label]),
      ]);
      for (const c of shownCols) {
        const letter = g.row[c];
        tr.append(el("td", {
          cls: "cell " + letter, title: D.images[c].name + ": " + WORDS[letter],
          text: letter, "data-col": String(c),
          on: () => showCell(g, c),
        }));
      }
      table.append(tr);
    }
    const p = document.getElementById("m-pager");
    clear(p);
    const rp = el("span"), cp = el("span");
    pager(rp, rows.length, PAGE_ROWS, mState.rowPage, (n) => { mState.rowPage = n; renderMatrix(); });
    pager(cp, cols.length, PAGE_COLS, mState.colPage, (n) => { mState.colPage = n; renderMatrix(); });
    p.append("Host groups: ", rp, " Images: ", cp);
  }
  for (const id of ["m-host", "m-image", "m-filter", "m-sort", "m-colsort"]) {
    document.getElementById(id).addEventListener("input", () => {
      mState.rowPage = 0; mState.colPage = 0; renderMatrix();
    });
  }

  // Detail panel.
  function detail(title) {
    const section = document.getElementById("detail");
    section.hidden = false;
    document.getElementById("detail-title").textContent = title;
    const body = document.getElementById("detail-body");
    clear(body);
    // Scroll once the caller has filled the panel: scrolling an empty panel at
    // the foot of the page leaves it below the fold.
    setTimeout(() => section.scrollIntoView({ block: "start" }), 0);
    return body;
  }
  function hostList(hostIdx, limit) {
    const ul = el("ul", { cls: "hosts" });
    for (const h of hostIdx.slice(0, limit || 200)) {
      ul.append(el("li", null, [link(D.hosts[h][0], () => showHost(h))]));
    }
    if (hostIdx.length > (limit || 200)) ul.append(el("li", { text: "and " + (hostIdx.length - (limit || 200)) + " more" }));
    return ul;
  }
  function expressionText(e) {
    if (e.value === undefined || e.value.length === 0) return "{op: " + JSON.stringify(e.op) + "}";
    return "{op: " + JSON.stringify(e.op) + ", value: [" + e.value.map((v) => JSON.stringify(v)).join(" ") + "]}" +
      (e.type ? " type: " + e.type : "");
  }
  function itemsTable(rows) {
    const head = ["rule", "feature", "expression", "matcher type", "host has", "why"];
    const table = el("table", { cls: "counts" }, [el("tr", null, head.map((t) => el("th", { text: t })))]);
    for (const r of rows) table.append(r);
    return table;
  }
  function setHeading(target, si, letter) {
    const meta = target && target.sets[si] ? target.sets[si] : {};
    const parts = ["Set #" + (si + 1)];
    if (meta.tag) parts.push("tag " + meta.tag);
    if (meta.weight) parts.push("weight " + meta.weight);
    const head = el("h4", null, [parts.join(", ") + " ", badge(letter)]);
    return meta.description ? [head, el("p", { cls: "hint", text: meta.description })] : [head];
  }
  function resultBody(cell, container) {
    if (cell < 0) {
      container.append(el("p", null, [badge("N"), " " + D.reasons[-cell - 1]]));
      return;
    }
    const r = D.results[cell];
    const target = findTarget(r.target);
    const p = el("p", null, [badge(r.v)]);
    if (target) p.append(" platform " + target.platform + ", artifact ", el("code", { text: target.artifact }));
    container.append(p);
    if (r.v === "E") { container.append(el("p", { cls: "why", text: r.error })); return; }
    if (r.blocker) container.append(el("p", null, ["One change away: ", el("strong", { text: r.blocker })]));
    const sets = (r.detail && r.detail.sets) || [];
    if (r.v === "C" && sets.some((s) => !s.ok)) {
      container.append(el("p", { cls: "hint", text: "Compatible: the sets below are preferences that do not hold here." }));
    }
    sets.forEach((s, si) => {
      if (s.ok) return;
      const rows = [];
      for (const rule of s.rules) {
        const items = rule.items.map((it) => [it, ""]);
        rule.any.forEach((alt, ai) => alt.forEach((it) => items.push([it, "matchAny #" + (ai + 1) + ": "])));
        if (!items.length) rows.push(el("tr", null, [el("td", { text: rule.name }), el("td"), el("td"), el("td"), el("td"), el("td", { text: "rule failed" })]));
        for (const [it, prefix] of items) {
          const exprs = it.expressions.map((e) => (e.name ? e.name + ": " : "") + expressionText(e)).join("\n");
          const matchers = Array.from(new Set(it.expressions.map((e) => e.matcher))).join(", ");
          rows.push(el("tr", null, [
            el("td", { text: rule.name }),
            el("td", { cls: "nfd", text: it.feature }), el("td", { cls: "nfd pre", text: prefix + exprs }),
            el("td", { text: matchers }), el("td", { cls: "nfd", text: it.actual }),
            el("td", { cls: "why", text: it.why }),
          ]));
        }
      }
      for (const node of setHeading(target, si, "I")) container.append(node);
      container.append(itemsTable(rows));
    });
  }
  const targetsByIdx = new Map();
  D.images.forEach((img) => img.targets.forEach((t) => targetsByIdx.set(t.idx, t)));
  function findTarget(idx) { return targetsByIdx.get(idx); }

  function showCell(g, c) {
    const body = detail(D.images[c].name + " on " + plural(g.hosts.length, "host"));
    body.append(el("p", null, [link("image page", () => showImage(c))]));
    const byCell = new Map();
    for (const u of g.units) {
      const cell = D.units[u].cells[c];
      if (!byCell.has(cell)) byCell.set(cell, []);
      for (const h of unitHosts[u]) byCell.get(cell).push(h);
    }
    if (g.units.length === 0) {
      body.append(el("p", { text: "These hosts have no good snapshot: " }));
      for (const h of g.hosts.slice(0, 50)) body.append(el("p", { text: D.hosts[h][0] + ": " + D.hosts[h][4] }));
    }
    for (const [cell, hosts] of byCell) {
      const box = el("div", { cls: "result" });
      box.append(el("h3", { text: plural(hosts.length, "host") }));
      resultBody(cell, box);
      box.append(hostList(hosts, 40));
      body.append(box);
    }
  }
  function showGroup(g) {
    const body = detail(plural(g.hosts.length, "host") + " with the same verdicts");
    body.append(el("p", { text: count(g.row, "C") + " of " + M + " images compatible." }));
    body.append(hostList(g.hosts, 1000));
  }
  function showImage(c) {
    const img = D.images[c];
    remember("image", img.name);
    const body = detail("Image " + img.name);
    const k = imageCounts[c];
    body.append(el("p", null, ["C", "I", "E", "N"].flatMap((l) => [badge(l), " " + k[l] + "  "])));
    const t = el("table", { cls: "counts" }, [el("tr", null, ["platform", "artifact", "status", "sets"].map((x) => el("th", { text: x })))]);
    for (const target of img.targets) {
      const sets = target.sets.map((s, i) => "#" + (i + 1) + (s.tag ? " [" + s.tag + "]" : "") + (s.weight ? " weight " + s.weight : "") + (s.description ? ": " + s.description : "")).join("\n");
      t.append(el("tr", null, [el("td", { text: target.platform }), el("td", { cls: "nfd", text: target.artifact }), el("td", { text: target.status + (target.reason ? ": " + target.reason : "") }), el("td", { text: sets })]));
    }
    body.append(t);

    const byCell = new Map();
    D.units.forEach((u, i) => {
      if (!unitHosts[i].length) return;
      const cell = u.cells[c];
      if (!byCell.has(cell)) byCell.set(cell, []);
      for (const h of unitHosts[i]) byCell.get(cell).push(h);
    });
    const blockers = new Map();
    for (const [cell, hosts] of byCell) {
      if (cell >= 0 && D.results[cell].blocker) {
        const b = D.results[cell].blocker;
        blockers.set(b, (blockers.get(b) || []).concat(hosts));
      }
    }
    body.append(el("h3", { text: "Hosts that could run it if one thing changed" }));
    if (!blockers.size) body.append(el("p", { text: "None: every incompatible host lacks more than one thing." }));
    for (const [b, hosts] of blockers) {
      body.append(el("p", null, [el("strong", { text: b }), " — " + plural(hosts.length, "host")]), hostList(hosts, 40));
    }
    body.append(el("h3", { text: "Why, per distinct result" }));
    const order = Array.from(byCell.entries()).sort((a, b) => b[1].length - a[1].length);
    for (const [cell, hosts] of order) {
      const box = el("div", { cls: "result" });
      box.append(el("h3", { text: plural(hosts.length, "host") }));
      resultBody(cell, box);
      box.append(hostList(hosts, 40));
      body.append(box);
    }
  }
  function showHost(h) {
    const host = D.hosts[h];
    remember("host", host[0]);
    const body = detail("Host " + host[0]);
    const facts = el("table", { cls: "counts" });
    const unit = host[1] >= 0 ? D.units[host[1]] : null;
    const rows = [["groups", host[2]], ["snapshot", host[3] || "none"]];
    if (unit) rows.push(["architecture", unit.arch || "unknown"], ["OS", unit.os || ""], ["kernel", unit.kernel || ""], ["CPU", unit.cpu || ""]);
    else rows.push(["not evaluated", host[4]]);
    for (const [k, v] of rows) facts.append(el("tr", null, [el("th", { text: k }), el("td", { text: v })]));
    body.append(facts);
    if (!unit) return;
    const filter = el("select", null, ["not compatible", "all"].map((v) => el("option", { value: v, text: v })));
    const list = el("div");
    function render() {
      clear(list);
      for (let c = 0; c < M; c++) {
        const letter = unit.row[c];
        if (filter.value !== "all" && letter === "C") continue;
        const box = el("div", { cls: "result" });
        box.append(el("h3", null, [link(D.images[c].name, () => showImage(c)), " "]));
        resultBody(unit.cells[c], box);
        list.append(box);
      }
      if (!list.firstChild) list.append(el("p", { text: "Compatible with every image." }));
    }
    filter.addEventListener("input", render);
    body.append(el("p", null, ["Show ", filter]), list);
    render();
  }

  // Images and hosts lists.
  const iState = { page: 0 };
  function renderImages() {
    const q = document.getElementById("i-search").value.toLowerCase();
    const sort = document.getElementById("i-sort").value;
    let idx = [];
    for (let c = 0; c < M; c++) if (!q || D.images[c].name.toLowerCase().includes(q)) idx.push(c);
    const share = (c) => imageCounts[c].C / Math.max(D.hosts.length, 1);
    if (sort === "worst") idx.sort((a, b) => share(a) - share(b));
    if (sort === "best") idx.sort((a, b) => share(b) - share(a));
    const table = document.getElementById("i-table");
    clear(table);
    table.append(el("tr", null, ["image", "compatible", "incompatible", "error", "not evaluated", "share"].map((t) => el("th", { text: t }))));
    for (const c of idx.slice(iState.page * PAGE_LIST, (iState.page + 1) * PAGE_LIST)) {
      const k = imageCounts[c];
      table.append(el("tr", null, [el("td", null, [link(D.images[c].name, () => showImage(c))]),
        el("td", { text: String(k.C) }), el("td", { text: String(k.I) }), el("td", { text: String(k.E) }),
        el("td", { text: String(k.N) }), el("td", { text: (share(c) * 100).toFixed(1) + "%" })]));
    }
    pager(document.getElementById("i-pager"), idx.length, PAGE_LIST, iState.page, (n) => { iState.page = n; renderImages(); });
  }
  const hState = { page: 0 };
  function renderHosts() {
    const q = document.getElementById("h-search").value.toLowerCase();
    const idx = [];
    D.hosts.forEach((h, i) => { if (!q || h[0].toLowerCase().includes(q)) idx.push(i); });
    const table = document.getElementById("h-table");
    clear(table);
    table.append(el("tr", null, ["host", "groups", "arch", "OS", "compatible", "incompatible", "error", "not evaluated"].map((t) => el("th", { text: t }))));
    for (const i of idx.slice(hState.page * PAGE_LIST, (hState.page + 1) * PAGE_LIST)) {
      const h = D.hosts[i];
      const unit = h[1] >= 0 ? D.units[h[1]] : null;
      const row = unit ? unit.row : NONE;
      table.append(el("tr", null, [el("td", null, [link(h[0], () => showHost(i))]), el("td", { text: h[2] }),
        el("td", { text: unit ? unit.arch : "" }), el("td", { text: unit ? unit.os || "" : h[4] }),
        el("td", { text: String(count(row, "C")) }), el("td", { text: String(count(row, "I")) }),
        el("td", { text: String(count(row, "E")) }), el("td", { text: String(count(row, "N")) })]));
    }
    pager(document.getElementById("h-pager"), idx.length, PAGE_LIST, hState.page, (n) => { hState.page = n; renderHosts(); });
  }
  document.getElementById("i-search").addEventListener("input", () => { iState.page = 0; renderImages(); });
  document.getElementById("i-sort").addEventListener("input", () => { iState.page = 0; renderImages(); });
  document.getElementById("h-search").addEventListener("input", () => { hState.page = 0; renderHosts(); });

  // Links to a host's or an image's page: report.html#host=NAME, #image=NAME.
  let current = "";
  function remember(kind, name) {
    current = "#" + kind + "=" + encodeURIComponent(name);
    if (location.hash !== current) history.replaceState(null, "", current);
  }
  function route() {
    if (location.hash === current) return;
    const match = /^#(host|image)=(.*)$/.exec(location.hash);
    if (!match) return;
    let name;
    try { name = decodeURIComponent(match[2]); } catch (e) { return; }
    if (match[1] === "host") {
      const i = D.hosts.findIndex((h) => h[0] === name);
      if (i >= 0) showHost(i);
    } else {
      const c = D.images.findIndex((img) => img.name === name);
      if (c >= 0) showImage(c);
    }
  }
  window.addEventListener("hashchange", route);

  renderMatrix();
  renderImages();
  renderHosts();
  route();  // last, so the page it opens is not pushed down by lists drawn after it
  document.body.setAttribute("data-ready", "true");
})();
