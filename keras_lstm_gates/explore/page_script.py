"""The explorer page's script, kept in a Python module so that it ships in
the package's wheel with no package-data setting (and so that the notebook
runner's cache key, which hashes the package's .py files, sees it change).

It reads the JSON payload written by :mod:`keras_lstm_gates.explore.page`
(quantised tracks, tokens, labels, correlations, saturation, connectivity)
and runs the selection and match rules of
:mod:`keras_lstm_gates.explore.analysis` on the quantised values.  Nothing
is fetched: the data is in the page, and ``DecompressionStream`` inflates
it.  ``window.klgExplorer`` is the handle the tests drive.
"""

SCRIPT = r"""(function () {
  "use strict";
  const root = document.getElementById("klg-explore");
  const data = JSON.parse(document.getElementById("klg-explore-data").textContent);
  const N = data.tokens.length;
  const TRACK_LABEL = {};
  data.tracks.forEach((t) => { TRACK_LABEL[t[0]] = t[1]; });
  const CHAR_MODE = data.tokens.every((t) => t.length <= 1);
  const PAGE = CHAR_MODE ? 1600 : 500;
  const api = { timings: {}, state: null };
  window.klgExplorer = api;

  // ---- decoding -----------------------------------------------------------
  function bytesOf(b64) {
    const raw = atob(b64);
    const out = new Uint8Array(raw.length);
    for (let k = 0; k < raw.length; k++) out[k] = raw.charCodeAt(k);
    return out;
  }
  async function inflate(blob) {
    const bytes = bytesOf(blob.b64);
    if (!blob.deflate) return bytes;
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  const cache = new Map();
  async function track(layerIndex, key) {
    const id = layerIndex + ":" + key;
    if (cache.has(id)) return cache.get(id);
    const spec = data.layers[layerIndex].tracks[key];
    if (!spec) return null;
    const codes = await inflate(data.blobs[spec.blob]);
    const U = data.layers[layerIndex].units;
    const levels = (1 << spec.bits) - 1;
    const scale = (spec.hi - spec.lo) / levels;
    const Nt = spec.tokens;
    // The value of unit u at token n: unit-major codes, 8 or 4 bits each.
    const code = spec.bits === 8
      ? (u, n) => codes[u * Nt + n]
      : (u, n) => { const p = u * Nt + n; return (codes[p >> 1] >> ((p & 1) ? 0 : 4)) & 15; };
    const t = {
      key, units: U, tokens: Nt, lo: spec.lo, hi: spec.hi, bits: spec.bits,
      value: (u, n) => (n < Nt ? spec.lo + code(u, n) * scale : NaN),
    };
    cache.set(id, t);
    return t;
  }

  // ---- the stream: samples and steps --------------------------------------
  const sampleOf = new Int32Array(N), stepOf = new Int32Array(N), segStart = new Int32Array(N),
    segEnd = new Int32Array(N);
  data.segments.forEach(([start, length, sample]) => {
    for (let k = 0; k < length; k++) {
      sampleOf[start + k] = sample; stepOf[start + k] = data.steps[start + k];
      segStart[start + k] = start; segEnd[start + k] = start + length;
    }
  });

  // ---- the rules (analysis.py) --------------------------------------------
  function signsOf(sign) { return sign === "both" ? [1, -1] : sign === "-" ? [-1] : [1]; }
  function select(t, start, end, threshold, context, sign) {
    const around = [];
    for (let n = Math.max(segStart[start], start - context); n < start; n++) around.push(n);
    for (let n = end + 1; n < Math.min(segEnd[start], end + 1 + context); n++) around.push(n);
    const found = [];
    for (const s of signsOf(sign)) {
      for (let u = 0; u < t.units; u++) {
        let min = Infinity, sum = 0;
        for (let n = start; n <= end; n++) { const v = s * t.value(u, n); if (v < min) min = v; sum += v; }
        let max = -Infinity, base = threshold;
        if (around.length) {
          let bsum = 0;
          for (const n of around) { const v = s * t.value(u, n); if (v > max) max = v; bsum += v; }
          base = bsum / around.length;
        }
        if (min >= threshold && max < threshold) {
          found.push({ unit: u, sign: s, score: sum / (end - start + 1) - base, inside_min: min, outside_max: max });
        }
      }
    }
    found.sort((a, b) => b.score - a.score || a.unit - b.unit || b.sign - a.sign);
    return found;
  }
  function match(t, units, threshold, minLength, limit) {
    const on = new Uint8Array(t.tokens).fill(1);
    // Each unit only re-checks the tokens still on: after a few units, few are.
    for (const [u, s] of units) {
      for (let n = 0; n < t.tokens; n++) if (on[n] && !(s * t.value(u, n) >= threshold)) on[n] = 0;
    }
    const signs = [...new Set(units.map((x) => x[1]))];
    const spans = [];
    let n = 0;
    while (n < t.tokens) {
      if (!on[n]) { n++; continue; }
      const start = n;
      while (n < t.tokens && on[n] && segStart[n] === segStart[start]) n++;
      const end = n - 1, length = end - start + 1;
      if (length < minLength) continue;
      let active = 0;
      for (const s of signs) {
        for (let u = 0; u < t.units; u++) {
          let all = true;
          for (let k = start; k <= end && all; k++) all = s * t.value(u, k) >= threshold;
          if (all) active++;
        }
      }
      spans.push({ start, end, length, jaccard: units.length / active, others: active - units.length });
    }
    spans.sort((a, b) => b.jaccard - a.jaccard || b.length - a.length || a.start - b.start);
    return { spans: spans.slice(0, limit), total: spans.length };
  }

  // ---- colours --------------------------------------------------------------
  function mix(a, b, x) { return a.map((v, k) => Math.round(v + (b[k] - v) * x)); }
  // Light enough at their ends for black text to stay readable on them.
  const WHITE = [255, 255, 255], RED = [240, 120, 90], BLUE = [110, 160, 225], GREEN = [90, 185, 120],
    ORANGE = [245, 160, 60];
  function colourOf(t, v) {
    if (!isFinite(v)) return "rgb(238,238,238)";
    let c;
    if (t.lo >= 0) c = mix(WHITE, GREEN, Math.min(1, Math.max(0, (v - t.lo) / (t.hi - t.lo))));
    else {
      const x = Math.max(-1, Math.min(1, v / Math.max(Math.abs(t.lo), t.hi)));
      c = x >= 0 ? mix(WHITE, RED, x) : mix(WHITE, BLUE, -x);
    }
    return "rgb(" + c.join(",") + ")";
  }
  const CATEGORY = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"];

  // ---- state and layout -----------------------------------------------------
  const S = {
    layer: 0, track: "h", unit: 0, page: 0, start: null, end: null, anchor: null,
    threshold: data.defaults.threshold, context: 1, sign: "+", mode: "unit", label: "",
    column: "", output: null, selected: [], ticked: new Set(), matches: null,
  };
  api.state = S;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  function control(labelText, input) {
    const l = el("label", "klgx-control");
    l.append(el("span", "", labelText), input);
    return l;
  }
  function number(min, max, step, value) {
    const i = el("input"); i.type = "number"; i.min = min; i.max = max; i.step = step; i.value = value;
    return i;
  }
  function options(selectEl, items) {
    selectEl.replaceChildren(...items.map(([v, text]) => { const o = el("option", "", text); o.value = v; return o; }));
  }

  root.replaceChildren();
  const head = el("div", "klgx-head");
  head.append(el("h1", "", data.title));
  const note = el("p", "klgx-note", data.note);
  head.append(note);
  root.append(head);

  const bar = el("div", "klgx-bar");
  const layerSel = el("select"); options(layerSel, data.layers.map((l, k) => [k, l.name + " (" + l.units + " units)"]));
  const trackBox = el("div", "klgx-tracks");
  const trackButtons = {};
  data.tracks.forEach(([key, label]) => {
    const b = el("button", "klgx-track", label); b.type = "button"; b.dataset.track = key;
    b.title = data.trackNames[key];
    trackButtons[key] = b; trackBox.append(b);
  });
  const unitIn = number(0, 0, 1, 0);
  const modeSel = el("select"); options(modeSel, [["unit", "unit value"], ["connectivity", "connectivity"]]);
  if (!data.connectivity) modeSel.disabled = true;
  const labelSel = el("select");
  options(labelSel, [["", "none"], ...data.labels.map((l) => [l.name, l.name])]);
  bar.append(control("layer", layerSel), trackBox, control("unit", unitIn), control("colour by", modeSel),
    control("annotation", labelSel));
  root.append(bar);

  const mini = el("canvas", "klgx-minimap"); mini.height = 34;
  root.append(mini);
  const textBox = el("div", "klgx-text" + (CHAR_MODE ? " klgx-chars" : " klgx-words"));
  textBox.setAttribute("aria-label", "tokens coloured by the chosen unit");
  root.append(textBox);
  const pager = el("div", "klgx-pager");
  const prev = el("button", "", "\u25C0 previous"), next = el("button", "", "next \u25B6");
  prev.type = next.type = "button";
  const pageInfo = el("span", "klgx-pageinfo");
  const legend = el("span", "klgx-legend");
  pager.append(prev, pageInfo, next, legend);
  root.append(pager);

  const panels = el("div", "klgx-panels");
  root.append(panels);
  function panel(title) {
    const p = el("section", "klgx-panel");
    p.append(el("h2", "", title));
    panels.append(p);
    return p;
  }
  // Selection
  const selPanel = panel("Selection: units on over a range, off around it");
  const startIn = number(0, N - 1, 1, ""), endIn = number(0, N - 1, 1, "");
  const thrIn = number(-10, 10, 0.05, S.threshold);
  const ctxIn = number(0, 20, 1, 1);
  const signSel = el("select"); options(signSel, [["+", "on = above"], ["both", "either sign"]]);
  startIn.dataset.role = "start"; endIn.dataset.role = "end"; thrIn.dataset.role = "threshold";
  ctxIn.dataset.role = "context"; signSel.dataset.role = "sign";
  const selControls = el("div", "klgx-row");
  selControls.append(control("from", startIn), control("to", endIn), control("threshold", thrIn),
    control("off around", ctxIn), control("", signSel));
  selPanel.append(el("p", "klgx-help",
    "Click a token, then another, to select the range between them (or type the positions). " +
    "Listed: the units whose value is at or above the threshold at every token of the range and " +
    "below it on the tokens around, ranked by how far they stand out."));
  selPanel.append(selControls);
  const selCanvas = el("canvas", "klgx-selview");
  const selList = el("ol", "klgx-units");
  const selStatus = el("p", "klgx-status");
  selPanel.append(selStatus, selCanvas, selList);
  // Match
  const matchPanel = panel("Match: where else the ticked units switch on");
  const minLenIn = number(1, 100, 1, 2);
  const matchControls = el("div", "klgx-row");
  matchControls.append(control("shortest span", minLenIn));
  const matchStatus = el("p", "klgx-status");
  const matchList = el("ol", "klgx-matches");
  matchPanel.append(el("p", "klgx-help",
    "Spans, inside one sequence, where every ticked unit is on together; ranked first by how few " +
    "other units are on with them (Jaccard index), then by length."), matchControls, matchStatus, matchList);
  // Annotations
  const annPanel = panel("Annotations: each unit's correlation with each track");
  const columnSel = el("select");
  const annStatus = el("p", "klgx-status");
  const annList = el("ol", "klgx-corr");
  annPanel.append(control("track", columnSel), annStatus, annList);
  // Saturation
  const satPanel = panel("Saturation of the gates");
  const satCanvas = el("canvas", "klgx-saturation");
  const satText = el("p", "klgx-status");
  const satTable = el("table", "klgx-table");
  satPanel.append(el("p", "klgx-help",
    "Each dot is a unit: the share of tokens where the gate is below " + data.saturation.left +
    " (left) and above " + data.saturation.right + " (right). The red ring is the chosen unit."),
  satCanvas, satText, satTable);
  // Connectivity
  const conPanel = panel("Connectivity: what an output reads");
  const conStatus = el("p", "klgx-status");
  const conCanvas = el("canvas", "klgx-connectivity");
  conPanel.append(el("p", "klgx-help",
    "Colour by connectivity, then click a token: the other tokens are coloured by the norm of the " +
    "gradient of the model's output at that token (its predicted component) with respect to their " +
    "input, relative to the largest."), conStatus, conCanvas);
  if (!data.connectivity) conStatus.textContent = "No connectivity in this page (connectivity=False).";

  // ---- rendering -------------------------------------------------------------
  let current = null; // the track shown
  let spans = [];
  function pageRange() { const a = S.page * PAGE; return [a, Math.min(N, a + PAGE)]; }
  function show(text) {
    if (text === "\n") return "\u21B5";
    if (text === "\t") return "\u2192   ";
    if (text === " ") return "\u00A0";
    return text;
  }
  function renderText() {
    const [a, b] = pageRange();
    const frag = document.createDocumentFragment();
    spans = [];
    for (let n = a; n < b; n++) {
      if (n > a && segStart[n] === n) frag.append(el("hr", "klgx-break"));
      const s = el("span", "klgx-tok", show(data.tokens[n]));
      s.dataset.i = n;
      spans.push(s);
      frag.append(s);
      if (data.tokens[n] === "\n") frag.append(document.createElement("br"));
      else if (!CHAR_MODE) frag.append(document.createTextNode(" "));
    }
    textBox.replaceChildren(frag);
    pageInfo.textContent = "tokens " + a + "\u2013" + (b - 1) + " of " + N;
    prev.disabled = S.page === 0; next.disabled = b >= N;
    paint();
  }
  function connectivityRow(position) {
    const c = data.connectivity;
    if (!c || !api.con) return null;
    const r = api.con.rowOf.get(position);
    return r === undefined ? null : r;
  }
  function paint() {
    const [a] = pageRange();
    const label = data.labels.find((l) => l.name === S.label);
    const row = S.mode === "connectivity" && S.output !== null ? connectivityRow(S.output) : null;
    const c = data.connectivity;
    for (let k = 0; k < spans.length; k++) {
      const n = a + k, s = spans[k];
      let bg;
      if (S.mode === "connectivity") {
        bg = "rgb(255,255,255)";
        if (row !== null && sampleOf[n] === sampleOf[S.output]) {
          const j = stepOf[n] - stepOf[S.output] + c.before;
          if (j >= 0 && j < c.width) {
            const code = api.con.codes[row * c.width + j];
            if (code !== 255) bg = "rgb(" + mix(WHITE, ORANGE, code / 254).join(",") + ")";
          }
        }
      } else {
        bg = colourOf(current, current.value(S.unit, n));
      }
      s.style.backgroundColor = bg;
      s.title = "token " + n + " (sample " + sampleOf[n] + ", step " + stepOf[n] + ")" +
        (S.mode === "unit" ? ": " + TRACK_LABEL[S.track] + "[" + S.unit + "] = " + fmt(current.value(S.unit, n)) : "");
      const inSel = S.start !== null && n >= S.start && n <= S.end;
      s.classList.toggle("klgx-sel", inSel);
      s.classList.toggle("klgx-out", S.mode === "connectivity" && n === S.output);
      if (label) {
        const v = label.values[n];
        s.style.borderBottomColor = label.kind === "numeric"
          ? "rgb(" + mix(WHITE, [60, 60, 60], (v - label.min) / ((label.max - label.min) || 1)).join(",") + ")"
          : CATEGORY[v % CATEGORY.length];
        s.classList.add("klgx-labelled");
      } else s.classList.remove("klgx-labelled");
    }
    markMatches();
    drawMinimap();
    legend.textContent = S.mode === "unit"
      ? TRACK_LABEL[S.track] + " of unit " + S.unit + " (" + data.layers[S.layer].name + "): " +
        (current.lo >= 0 ? "white 0 \u2192 green 1" : "blue \u2212 \u2192 white 0 \u2192 red +") +
        (current.tokens < N ? "; kept for tokens 0\u2013" + (current.tokens - 1) : "")
      : "orange: gradient norm relative to the largest; outlined: the output token";
  }
  function markMatches() {
    const [a, b] = pageRange();
    spans.forEach((s) => s.classList.remove("klgx-match"));
    if (!S.matches) return;
    for (const m of S.matches.spans) {
      for (let n = Math.max(a, m.start); n <= Math.min(b - 1, m.end); n++) spans[n - a].classList.add("klgx-match");
    }
  }
  function fmt(v) { return v !== null && isFinite(v) ? v.toFixed(3) : "\u2013"; }
  function fitCanvas(canvas, height) {
    canvas.style.width = "100%";
    const w = Math.max(120, Math.floor(canvas.clientWidth || 300));
    const ratio = window.devicePixelRatio || 1;
    canvas.width = w * ratio; canvas.height = height * ratio;
    canvas.style.width = w + "px"; canvas.style.height = height + "px";
    const g = canvas.getContext("2d"); g.setTransform(ratio, 0, 0, ratio, 0, 0);
    return [g, w];
  }
  function drawMinimap() {
    const [g, w] = fitCanvas(mini, 34);
    g.clearRect(0, 0, w, 34);
    for (let x = 0; x < w; x++) {
      const a = Math.floor((x * N) / w), b = Math.max(a + 1, Math.floor(((x + 1) * N) / w));
      let sum = 0, count = 0;
      for (let n = a; n < b && n < current.tokens; n++) { sum += current.value(S.unit, n); count++; }
      g.fillStyle = colourOf(current, count ? sum / count : NaN);
      g.fillRect(x, 6, 1, 22);
    }
    const [pa, pb] = pageRange();
    g.strokeStyle = "#222"; g.lineWidth = 1.5;
    g.strokeRect((pa / N) * w + 0.5, 4, Math.max(2, ((pb - pa) / N) * w), 26);
    if (S.matches) {
      g.fillStyle = "#7b2cbf";
      for (const m of S.matches.spans) g.fillRect((m.start / N) * w, 29, 2, 5);
    }
    if (S.start !== null) { g.fillStyle = "#000"; g.fillRect((S.start / N) * w, 0, 2, 5); }
  }

  // ---- selection view and lists -------------------------------------------
  function runSelection() {
    const t0 = performance.now();
    if (S.start === null) {
      selStatus.textContent = "No range selected yet.";
      selList.replaceChildren(); S.selected = []; drawSelection(); runMatch();
      return;
    }
    S.selected = select(current, S.start, S.end, S.threshold, S.context, S.sign);
    S.ticked = new Set(S.selected.map((r) => r.unit + ":" + r.sign));
    selStatus.textContent = S.selected.length + " unit" + (S.selected.length === 1 ? "" : "s") + " of " +
      current.units + " on over tokens " + S.start + "\u2013" + S.end + " (" + TRACK_LABEL[S.track] +
      " \u2265 " + S.threshold + ")";
    selList.replaceChildren(...S.selected.map((r) => {
      const li = el("li", "klgx-unit");
      const box = el("input"); box.type = "checkbox"; box.checked = true;
      box.addEventListener("change", () => {
        const id = r.unit + ":" + r.sign;
        if (box.checked) S.ticked.add(id); else S.ticked.delete(id);
        runMatch();
      });
      const b = el("button", "", (r.sign < 0 ? "\u2212" : "") + "unit " + r.unit);
      b.type = "button"; b.dataset.unit = r.unit; b.dataset.sign = r.sign;
      b.addEventListener("click", () => setUnit(r.unit));
      li.append(box, b, el("span", "klgx-score", " stands out by " + r.score.toFixed(3)));
      return li;
    }));
    drawSelection();
    runMatch();
    api.timings.selectionMs = performance.now() - t0;
  }
  function drawSelection() {
    const rows = S.selected.slice(0, 16);
    const h = rows.length ? 18 + rows.length * 12 : 0;
    selCanvas.style.display = rows.length ? "" : "none";
    if (!rows.length) return;
    const [g, w] = fitCanvas(selCanvas, h);
    const a = Math.max(segStart[S.start], S.start - 8), b = Math.min(segEnd[S.start] - 1, S.end + 8);
    const cw = Math.max(4, Math.min(18, (w - 44) / (b - a + 1)));
    g.font = "11px monospace"; g.textBaseline = "top"; g.fillStyle = "#222";
    for (let n = a; n <= b; n++) {
      const x = 44 + (n - a) * cw;
      if (cw >= 8) g.fillText(show(data.tokens[n]).slice(0, 2), x + 1, 2);
      if (n === S.start || n === S.end + 1) g.fillRect(x - 1, 0, 1, h);
    }
    rows.forEach((r, k) => {
      g.fillStyle = "#222"; g.fillText((r.sign < 0 ? "\u2212" : "") + r.unit, 2, 18 + k * 12);
      for (let n = a; n <= b; n++) {
        g.fillStyle = colourOf(current, current.value(r.unit, n));
        g.fillRect(44 + (n - a) * cw, 18 + k * 12, cw - 1, 11);
      }
    });
  }
  function runMatch() {
    const units = S.selected.filter((r) => S.ticked.has(r.unit + ":" + r.sign)).map((r) => [r.unit, r.sign]);
    if (!units.length) {
      S.matches = null;
      matchStatus.textContent = "Select a range with at least one unit on to look for matches.";
      matchList.replaceChildren(); markMatches(); drawMinimap();
      return;
    }
    S.matches = match(current, units, S.threshold, Math.max(1, parseInt(minLenIn.value, 10) || 1), 20);
    matchStatus.textContent = S.matches.total + " span" + (S.matches.total === 1 ? "" : "s") + " where the " +
      units.length + " ticked unit" + (units.length === 1 ? " is" : "s are") + " on together" +
      (S.matches.total > 20 ? "; the first 20:" : ":");
    matchList.replaceChildren(...S.matches.spans.map((m) => {
      const li = el("li", "klgx-matchrow");
      const a = Math.max(segStart[m.start], m.start - 6), b = Math.min(segEnd[m.start] - 1, m.end + 6);
      const snippet = el("button", "klgx-snippet"); snippet.type = "button";
      for (let n = a; n <= b; n++) {
        const s = el("span", n >= m.start && n <= m.end ? "klgx-hit" : "", show(data.tokens[n]));
        snippet.append(s);
        if (!CHAR_MODE && n < b) snippet.append(document.createTextNode(" "));
      }
      snippet.dataset.start = m.start;
      snippet.addEventListener("click", () => goTo(m.start));
      li.append(snippet, el("span", "klgx-score", " tokens " + m.start + "\u2013" + m.end + ", Jaccard " +
        m.jaccard.toFixed(2)));
      return li;
    }));
    markMatches(); drawMinimap();
  }
  function renderCorrelations() {
    const layer = data.layers[S.layer];
    const table = (layer.correlations || {})[S.track] || {};
    const columns = Object.keys(table);
    if (!columns.length) {
      annStatus.textContent = data.labels.length ? "" : "No annotation tracks in this page (labels=None).";
      columnSel.disabled = true; annList.replaceChildren(); return;
    }
    columnSel.disabled = false;
    if (!columns.includes(S.column)) S.column = columns[0];
    options(columnSel, columns.map((c) => [c, c]));
    columnSel.value = S.column;
    const r = table[S.column];
    const order = r.map((v, u) => u).sort((a, b) => Math.abs(r[b]) - Math.abs(r[a]) || a - b).slice(0, 10);
    annStatus.textContent = "Units of " + layer.name + " ranked by |r| between " + TRACK_LABEL[S.track] +
      " and \u201C" + S.column + "\u201D:";
    annList.replaceChildren(...order.map((u) => {
      const li = el("li");
      const b = el("button", "", "unit " + u); b.type = "button"; b.dataset.unit = u;
      b.addEventListener("click", () => setUnit(u));
      li.append(b, el("span", "klgx-score", " r = " + r[u].toFixed(3)));
      return li;
    }));
  }
  function renderSaturation() {
    const layer = data.layers[S.layer];
    const gates = Object.keys(layer.saturation);
    const [g, w] = fitCanvas(satCanvas, 150);
    const size = Math.min(130, (w - 10 * gates.length) / Math.max(1, gates.length));
    g.clearRect(0, 0, w, 150); g.font = "11px sans-serif"; g.textBaseline = "top";
    gates.forEach((gate, k) => {
      const x0 = k * (size + 10), sat = layer.saturation[gate];
      g.strokeStyle = "#999"; g.strokeRect(x0 + 0.5, 14.5, size, size);
      g.fillStyle = "#222"; g.fillText(data.trackNames[gate] + "  (x: left, y: right)", x0, 0);
      sat.left.forEach((l, u) => {
        g.fillStyle = "rgba(40,80,160,0.55)";
        g.fillRect(x0 + l * size - 1.5, 14 + (1 - sat.right[u]) * size - 1.5, 3, 3);
      });
      g.strokeStyle = "#d00"; g.lineWidth = 1.5; g.beginPath();
      g.arc(x0 + sat.left[S.unit] * size, 14 + (1 - sat.right[S.unit]) * size, 5, 0, 2 * Math.PI); g.stroke();
    });
    satText.textContent = "Unit " + S.unit + ": " + gates.map((gate) => data.trackNames[gate] + " left " +
      layer.saturation[gate].left[S.unit].toFixed(2) + ", right " + layer.saturation[gate].right[S.unit].toFixed(2)).join("; ");
    const head = el("tr");
    ["gate", "mean", "left", "right", "mostly left", "mostly right"].forEach((t) => head.append(el("th", "", t)));
    satTable.replaceChildren(head, ...gates.map((gate) => {
      const s = layer.summary[gate], tr = el("tr");
      [data.trackNames[gate], fmt(s.mean), fmt(s.left), fmt(s.right),
        s.units_left + " of " + s.units, s.units_right + " of " + s.units].forEach((t) => tr.append(el("td", "", t)));
      return tr;
    }));
  }
  function renderConnectivity() {
    const c = data.connectivity;
    if (!c) return;
    const row = S.output === null ? null : connectivityRow(S.output);
    conCanvas.style.display = row === null ? "none" : "";
    if (S.output === null) { conStatus.textContent = "Choose \u201Ccolour by: connectivity\u201D and click a token."; return; }
    if (row === null) {
      conStatus.textContent = "Token " + S.output + " has no connectivity row (" + c.rows + " of " + N +
        " tokens have one: " + c.which + ").";
      return;
    }
    conStatus.textContent = "Output at token " + S.output + " (\u201C" + show(data.tokens[S.output]) +
      "\u201D): gradient norm over the " + c.before + " tokens before" + (c.after ? " and " + c.after + " after" : "") +
      "; the largest is " + api.con.peak[row].toPrecision(3) + ".";
    const [g, w] = fitCanvas(conCanvas, 60);
    const bw = w / c.width;
    g.clearRect(0, 0, w, 60);
    for (let j = 0; j < c.width; j++) {
      const code = api.con.codes[row * c.width + j];
      if (code === 255) continue;
      g.fillStyle = j === c.before ? "#222" : "rgb(240,140,20)";
      const hgt = (code / 254) * 50;
      g.fillRect(j * bw, 55 - hgt, Math.max(1, bw - 1), hgt);
    }
    g.fillStyle = "#666"; g.fillRect(0, 55, w, 1);
  }

  // ---- actions ------------------------------------------------------------------
  async function setView() {
    current = await track(S.layer, S.track);
    const U = data.layers[S.layer].units;
    unitIn.max = U - 1;
    if (S.unit >= U) S.unit = 0;
    unitIn.value = S.unit;
    Object.entries(trackButtons).forEach(([k, b]) => {
      b.classList.toggle("klgx-on", k === S.track);
      b.setAttribute("aria-pressed", k === S.track ? "true" : "false");
    });
    renderText(); runSelection(); renderCorrelations(); renderSaturation(); renderConnectivity();
  }
  function setUnit(u) {
    const U = data.layers[S.layer].units;
    S.unit = Math.max(0, Math.min(U - 1, u | 0)); unitIn.value = S.unit;
    if (S.mode !== "unit") { S.mode = "unit"; modeSel.value = "unit"; }
    paint(); renderSaturation();
  }
  function goTo(n) { S.page = Math.floor(n / PAGE); renderText(); }
  function setRange(a, b) {
    if (sampleOf[a] !== sampleOf[b]) { selStatus.textContent = "A range stays inside one sequence: tokens " + a + " and " + b + " are in different ones."; return false; }
    S.start = Math.min(a, b); S.end = Math.max(a, b);
    startIn.value = S.start; endIn.value = S.end;
    paint(); runSelection();
    return true;
  }
  textBox.addEventListener("click", (event) => {
    const t = event.target.closest(".klgx-tok");
    if (!t) return;
    const n = parseInt(t.dataset.i, 10);
    if (S.mode === "connectivity") { S.output = n; paint(); renderConnectivity(); return; }
    if (event.shiftKey && S.start !== null) { setRange(S.start, n); S.anchor = null; return; }
    if (S.anchor === null || sampleOf[S.anchor] !== sampleOf[n]) { S.anchor = n; setRange(n, n); }
    else { setRange(S.anchor, n); S.anchor = null; }
  });
  mini.addEventListener("click", (event) => {
    const box = mini.getBoundingClientRect();
    goTo(Math.min(N - 1, Math.floor(((event.clientX - box.left) / box.width) * N)));
  });
  prev.addEventListener("click", () => { if (S.page > 0) { S.page--; renderText(); } });
  next.addEventListener("click", () => { if ((S.page + 1) * PAGE < N) { S.page++; renderText(); } });
  layerSel.addEventListener("change", () => { S.layer = parseInt(layerSel.value, 10); S.matches = null; setView(); });
  Object.values(trackButtons).forEach((b) => b.addEventListener("click", () => { S.track = b.dataset.track; setView(); }));
  unitIn.addEventListener("change", () => setUnit(parseInt(unitIn.value, 10) || 0));
  modeSel.addEventListener("change", () => { S.mode = modeSel.value; paint(); renderConnectivity(); });
  labelSel.addEventListener("change", () => { S.label = labelSel.value; paint(); });
  columnSel.addEventListener("change", () => { S.column = columnSel.value; renderCorrelations(); });
  const rangeInput = () => {
    const a = parseInt(startIn.value, 10), b = parseInt(endIn.value, 10);
    if (a >= 0 && b >= 0 && a < N && b < N) setRange(a, b);
  };
  startIn.addEventListener("change", rangeInput); endIn.addEventListener("change", rangeInput);
  thrIn.addEventListener("change", () => { S.threshold = parseFloat(thrIn.value) || 0; runSelection(); });
  ctxIn.addEventListener("change", () => { S.context = Math.max(0, parseInt(ctxIn.value, 10) || 0); runSelection(); });
  signSel.addEventListener("change", () => { S.sign = signSel.value; runSelection(); });
  minLenIn.addEventListener("change", runMatch);
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { drawMinimap(); drawSelection(); renderSaturation(); renderConnectivity(); }, 100);
  });

  // ---- the handle the tests and the benchmark use --------------------------------
  async function resolve(opts) {
    const layer = opts.layer === undefined ? S.layer : opts.layer;
    const t = await track(layer, opts.track || S.track);
    if (!t) throw new Error("no track " + opts.track + " for layer " + layer + " in this page");
    return t;
  }
  api.select = async (opts) => select(await resolve(opts), opts.start, opts.end,
    opts.threshold, opts.context === undefined ? 1 : opts.context, opts.sign || "+");
  api.match = async (opts) => match(await resolve(opts), opts.units, opts.threshold,
    opts.minLength === undefined ? 2 : opts.minLength, opts.limit === undefined ? 50 : opts.limit);
  api.value = async (opts) => (await resolve(opts)).value(opts.unit, opts.token);
  api.setRange = setRange;
  api.setUnit = setUnit;
  api.setTrack = (key) => { S.track = key; return setView(); };
  api.setLayer = (k) => { S.layer = k; return setView(); };
  api.ready = (async () => {
    const c = data.connectivity;
    if (c) {
      const peak = new Float32Array((await inflate(data.blobs[c.peak])).buffer);
      const positions = new Int32Array((await inflate(data.blobs[c.positions])).buffer);
      const rowOf = new Map();
      positions.forEach((p, r) => rowOf.set(p, r));
      api.con = { codes: await inflate(data.blobs[c.codes]), peak, rowOf };
    }
    data.labels.forEach((l) => {
      if (l.kind === "numeric") {
        l.min = Infinity; l.max = -Infinity;
        for (const v of l.values) { if (v < l.min) l.min = v; if (v > l.max) l.max = v; }
      }
    });
    options(labelSel, [["", "none"], ...data.labels.map((l) => [l.name, l.name])]);
    // A link can open the page on a view: #layer=0&track=i&unit=12&label=in_string
    const asked = new URLSearchParams(location.hash.slice(1));
    const layer = parseInt(asked.get("layer"), 10);
    if (layer >= 0 && layer < data.layers.length) { S.layer = layer; layerSel.value = layer; }
    if (TRACK_LABEL[asked.get("track")] !== undefined) S.track = asked.get("track");
    const unit = parseInt(asked.get("unit"), 10);
    if (unit >= 0 && unit < data.layers[S.layer].units) S.unit = unit;
    if (data.labels.some((l) => l.name === asked.get("label"))) { S.label = asked.get("label"); labelSel.value = S.label; }
    await setView();
    api.timings.readyMs = performance.now();
    root.dataset.ready = "true";
    return true;
  })();
})();
"""
