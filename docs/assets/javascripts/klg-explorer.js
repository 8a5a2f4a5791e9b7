/* Explorers: one LSTM cell with one unit and one input feature, computed
 * live from sliders, in the page's notation.
 *
 *   <div class="klg-explorer" data-part="cell"></div>
 *   <div class="klg-explorer" data-part="forget" data-values="x_t=-10"></div>
 *
 * data-part is "cell" (the whole step: f_t, i_t, C~_t, C_t, o_t, h_t) or one
 * part, "forget", "input", "candidate" or "output" (that part's z, its value
 * and what it does to the cell).  Every panel computes the same whole cell,
 * so a part's panel agrees with the cell's: the output gate's h_t is the
 * cell's h_t.  The sliders start on the worked example's numbers (the source
 * series' weights, x_t = 1, h_{t-1} = 1, C_{t-1} = 2); data-values
 * overrides some.  x_t, h_{t-1} and C_{t-1} are always shown; a part's panel
 * shows its own three weights and folds the others away, the cell's panel
 * folds all twelve.  A small plot draws the sigmoid (tanh for the
 * candidate) with the current z on it.
 *
 * Every slider is an <input type="range"> named after its quantity (x_t,
 * h_prev, c_prev, kernel_f, recurrent_kernel_f, bias_f, ..._i, ..._c,
 * ..._o); every result is an <output> whose name says what it is (z, f_t,
 * c_t, h_t, kept, ...) and whose data-value holds the unrounded number.
 * Numbers are written as the pages write them: a minus sign, parentheses
 * around a negative factor or term, n x 10^-k below 0.001, a % sign.
 * tests/site/test_browser_explorers.py moves the sliders and compares every
 * shown number with klg.LSTMCell.
 */
(function () {
  "use strict";

  var MINUS = "\u2212";
  var TIMES = "\u00d7";
  var SUPERSCRIPT = { "-": "\u207b", "0": "\u2070", "1": "\u00b9", "2": "\u00b2", "3": "\u00b3",
    "4": "\u2074", "5": "\u2075", "6": "\u2076", "7": "\u2077", "8": "\u2078", "9": "\u2079" };

  function sigmoid(z) {
    return 1 / (1 + Math.exp(-z));
  }

  /* The parts: letter, title, activation, the worked example's weights
     (kernel, recurrent_kernel, bias). */
  var PARTS = {
    forget: { sub: "f", title: "Forget gate", gate: "f_t", tex: "f_t", activation: sigmoid, weights: [1.63, 2.70, 1.62] },
    input: { sub: "i", title: "Input gate", gate: "i_t", tex: "i_t", activation: sigmoid, weights: [1.65, 2.00, 0.62] },
    candidate: { sub: "c", title: "Candidate memory", gate: "c_tilde", tex: "\\tilde C_t", activation: Math.tanh, weights: [0.94, 1.41, -0.32] },
    output: { sub: "o", title: "Output gate", gate: "o_t", tex: "o_t", activation: sigmoid, weights: [-0.19, 4.38, 0.59] },
  };
  var ORDER = ["forget", "input", "candidate", "output"];
  // The states: name -> [TeX label, min, max, default]
  var STATES = {
    x_t: ["x_t", -10, 10, 1],
    h_prev: ["h_{t-1}", -1, 1, 1],
    c_prev: ["C_{t-1}", -3, 3, 2],
  };

  /* A number as the page writes it. */
  function format(value, decimals) {
    if (!isFinite(value)) return String(value);
    if (value === 0) return "0";
    var sign = value < 0 ? MINUS : "";
    var size = Math.abs(value);
    if (size < 0.001) {
      var parts = size.toExponential(2).split("e");
      var exponent = String(Number(parts[1])).split("").map(function (c) { return SUPERSCRIPT[c]; }).join("");
      return sign + parts[0] + " " + TIMES + " 10" + exponent;
    }
    return sign + size.toFixed(decimals);
  }

  /* A factor or a term: a negative one in parentheses. */
  function factor(value, decimals) {
    var text = format(value, decimals);
    return value < 0 ? "(" + text + ")" : text;
  }

  /* A percentage: two decimals, or three significant digits when smaller. */
  function percent(fraction) {
    var p = 100 * fraction;
    if (p !== 0 && Math.abs(p) < 0.01) {
      var digits = Math.min(20, 2 - Math.floor(Math.log10(Math.abs(p))));
      return (p < 0 ? MINUS : "") + Math.abs(p).toFixed(digits) + "%";
    }
    return format(p, 2) + "%";
  }

  /* One step of the cell, from the slider values. */
  function step(v) {
    var out = {};
    ORDER.forEach(function (name) {
      var s = PARTS[name].sub;
      var z = v.x_t * v["kernel_" + s] + v.h_prev * v["recurrent_kernel_" + s] + v["bias_" + s];
      out["z_" + s] = z;
      out[PARTS[name].gate] = PARTS[name].activation(z);
    });
    out.kept = out.f_t * v.c_prev;
    out.written = out.i_t * out.c_tilde;
    out.c_t = out.kept + out.written;
    out.h_t = out.o_t * Math.tanh(out.c_t);
    out.percent = out.f_t;
    return out;
  }

  function tex(el, source) {
    if (typeof katex !== "undefined") {
      katex.render(source, el, { throwOnError: false, strict: "ignore", output: "htmlAndMathml" });
    } else {
      el.textContent = source;
    }
    return el;
  }

  function make(tag, className, parent) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (parent) parent.appendChild(el);
    return el;
  }

  function parseValues(text) {
    var values = {};
    (text || "").split(/\s+/).forEach(function (pair) {
      var kv = pair.split("=");
      if (kv.length === 2 && kv[1] !== "" && !isNaN(Number(kv[1]))) values[kv[0]] = Number(kv[1]);
    });
    return values;
  }

  /* What a panel shows below its sliders: [output name, TeX label, what it
     is (for screen readers), kind of number]. */
  function resultsOf(part) {
    if (part === "cell") {
      return [
        ["z_f", "z_f", "forget gate pre-activation", 2], ["f_t", "f_t = \\sigma(z_f)", "forget gate", 4],
        ["z_i", "z_i", "input gate pre-activation", 2], ["i_t", "i_t = \\sigma(z_i)", "input gate", 4],
        ["z_c", "z_c", "candidate pre-activation", 2], ["c_tilde", "\\tilde C_t = \\tanh(z_c)", "candidate memory", 4],
        ["c_t", "C_t = f_t C_{t-1} + i_t \\tilde C_t", "new cell state", 4],
        ["z_o", "z_o", "output gate pre-activation", 2], ["o_t", "o_t = \\sigma(z_o)", "output gate", 4],
        ["h_t", "h_t = o_t \\tanh(C_t)", "new hidden state", 4],
      ];
    }
    var p = PARTS[part];
    var own = [["z", "z", "pre-activation z", 2], [p.gate, p.tex + (p.activation === Math.tanh ? " = \\tanh(z)" : " = \\sigma(z)"), p.title.toLowerCase(), 4]];
    var more = {
      forget: [["kept", "f_t\\,C_{t-1}", "memory kept", 4], ["percent", "\\text{kept}", "percent of the memory kept", "%"]],
      input: [["c_tilde", "\\tilde C_t", "candidate memory", 4], ["written", "i_t\\,\\tilde C_t", "candidate written into the cell", 4]],
      candidate: [],
      output: [["c_t", "C_t", "new cell state", 4], ["h_t", "h_t = o_t \\tanh(C_t)", "new hidden state", 4]],
    };
    return own.concat(more[part]);
  }

  /* The small plot: the activation's curve and the current point(s). */
  var PLOT_W = 240, PLOT_H = 96, Z_MAX = 12;
  function plot(parent, tanh) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "klg-explorer__plot");
    svg.setAttribute("width", PLOT_W);
    svg.setAttribute("height", PLOT_H);
    svg.setAttribute("role", "img");
    var low = tanh ? -1 : 0;
    function x(z) { return 8 + (PLOT_W - 16) * (Math.max(-Z_MAX, Math.min(Z_MAX, z)) + Z_MAX) / (2 * Z_MAX); }
    function y(g) { return PLOT_H - 18 - (PLOT_H - 30) * (g - low) / (1 - low); }
    var d = "";
    for (var k = 0; k <= 96; k++) {
      var z = -Z_MAX + (2 * Z_MAX * k) / 96;
      d += (k ? " L" : "M") + x(z).toFixed(1) + "," + y(tanh ? Math.tanh(z) : sigmoid(z)).toFixed(1);
    }
    function add(tag, attrs, text) {
      var el = document.createElementNS(ns, tag);
      Object.keys(attrs).forEach(function (a) { el.setAttribute(a, attrs[a]); });
      if (text) el.textContent = text;
      svg.appendChild(el);
      return el;
    }
    add("line", { x1: 8, x2: PLOT_W - 8, y1: y(low), y2: y(low), class: "klg-explorer__axis" });
    add("line", { x1: x(0), x2: x(0), y1: y(1) - 4, y2: y(low) + 4, class: "klg-explorer__axis" });
    add("path", { d: d, class: "klg-explorer__curve" });
    add("text", { x: PLOT_W - 8, y: PLOT_H - 4, "text-anchor": "end" }, "z");
    add("text", { x: x(0) + 4, y: 12 }, tanh ? "tanh(z)" : "\u03c3(z)");
    parent.appendChild(svg);
    return {
      svg: svg,
      point: function (label, z, g) {
        var group = add("g", { class: "klg-explorer__point" });
        var dot = document.createElementNS(ns, "circle");
        dot.setAttribute("r", 4.5);
        group.appendChild(dot);
        var name = document.createElementNS(ns, "text");
        name.textContent = label;
        group.appendChild(name);
        return function (z2, g2) {
          var px = x(z2), py = y(g2);
          dot.setAttribute("cx", px.toFixed(1));
          dot.setAttribute("cy", py.toFixed(1));
          name.setAttribute("x", (px + (px > PLOT_W - 40 ? -8 : 8)).toFixed(1));
          name.setAttribute("text-anchor", px > PLOT_W - 40 ? "end" : "start");
          name.setAttribute("y", (py + (g2 > 0.5 ? 14 : -6)).toFixed(1));
        };
      },
    };
  }

  var counter = 0;

  function build(panel) {
    var kind = panel.dataset.part;
    if (kind !== "cell" && !PARTS[kind]) {
      console.error("klg-explorer: data-part must be cell, " + ORDER.join(", ") +
        "; got " + JSON.stringify(kind));
      return;
    }
    var start = parseValues(panel.dataset.values);
    var specs = {}; // slider name -> [TeX label, min, max, default, own?]
    Object.keys(STATES).forEach(function (k) { specs[k] = STATES[k].concat([true]); });
    ORDER.forEach(function (name) {
      var p = PARTS[name], s = p.sub;
      var own = kind === name;
      specs["kernel_" + s] = ["W_{x" + s + "}", -5, 5, p.weights[0], own];
      specs["recurrent_kernel_" + s] = ["W_{h" + s + "}", -5, 5, p.weights[1], own];
      specs["bias_" + s] = ["b_" + s, -5, 5, p.weights[2], own];
    });
    Object.keys(start).forEach(function (key) {
      if (!(key in specs)) {
        console.error("klg-explorer: no slider named " + key + "; expected one of " +
          Object.keys(specs).join(", "));
      }
    });

    panel.textContent = "";
    panel.setAttribute("role", "group");
    var id = "klg-explorer-" + (++counter);
    var heading = make("p", "klg-explorer__title", panel);
    heading.id = id + "-title";
    heading.textContent = (kind === "cell" ? "One step of the cell" : PARTS[kind].title) + ": move the sliders";
    panel.setAttribute("aria-labelledby", heading.id);

    var grid = make("div", "klg-explorer__sliders", panel);
    var folded = make("details", "klg-explorer__more", panel);
    var summary = make("summary", null, folded);
    summary.textContent = kind === "cell" ? "The weights of the four parts" : "The other parts' weights";
    var foldedGrid = make("div", "klg-explorer__sliders", folded);
    var sliders = {};
    var shown = {};
    Object.keys(specs).forEach(function (name) {
      var spec = specs[name];
      var row = make("div", "klg-explorer__row", spec[4] ? grid : foldedGrid);
      var label = make("label", "klg-explorer__label", row);
      label.htmlFor = id + "-" + name;
      tex(label, spec[0]);
      var input = make("input", null, row);
      input.type = "range";
      input.id = id + "-" + name;
      input.name = name;
      input.min = spec[1];
      input.max = spec[2];
      input.step = 0.01;
      input.value = name in start ? start[name] : spec[3];
      input.defaultValue = input.value;
      var value = make("span", "klg-explorer__value", row);
      value.setAttribute("aria-hidden", "true");
      sliders[name] = input;
      shown[name] = value;
    });

    var results = make("div", "klg-explorer__results", panel);
    results.setAttribute("aria-live", "polite");
    var sum = null;
    if (kind !== "cell") {
      var s = PARTS[kind].sub;
      var zRow = make("div", "klg-explorer__formula", results);
      tex(make("span", "klg-explorer__label", zRow),
        "z = x_t\\,W_{x" + s + "} + h_{t-1}\\,W_{h" + s + "} + b_" + s);
      sum = make("span", "klg-explorer__sum", zRow);
    }
    var outputs = resultsOf(kind).map(function (r) {
      var row = make("div", "klg-explorer__result", results);
      tex(make("span", "klg-explorer__label", row), r[1]);
      var out = make("output", null, row);
      out.name = r[0];
      out.setAttribute("aria-label", r[2]);
      return [out, r[3]];
    });

    var figure = plot(results, kind === "candidate");
    var points = (kind === "cell" ? ["forget", "input", "output"] : [kind]).map(function (name) {
      var p = PARTS[name];
      return [p, figure.point(p.tex.replace("\\tilde C_t", "C\u0303").replace("_t", ""))];
    });

    var reset = make("button", "klg-explorer__reset", panel);
    reset.type = "button";
    reset.textContent = "Back to the page's numbers";

    function update() {
      var v = {};
      Object.keys(sliders).forEach(function (name) {
        v[name] = Number(sliders[name].value);
        shown[name].textContent = format(v[name], 2);
      });
      var r = step(v);
      if (kind !== "cell") {
        var s = PARTS[kind].sub;
        r.z = r["z_" + s];
        sum.textContent = "= " + factor(v["kernel_" + s], 2) + " " + TIMES + " " + factor(v.x_t, 2) +
          " + " + factor(v["recurrent_kernel_" + s], 2) + " " + TIMES + " " + factor(v.h_prev, 2) +
          " + " + factor(v["bias_" + s], 2);
      }
      outputs.forEach(function (o) {
        var value = r[o[0].name];
        o[0].dataset.value = String(o[1] === "%" ? 100 * value : value);
        o[0].textContent = o[1] === "%" ? percent(value) : format(value, o[1]);
      });
      var described = [];
      points.forEach(function (pt) {
        var z = r["z_" + pt[0].sub], g = r[pt[0].gate];
        pt[1](z, g);
        described.push(pt[0].gate.replace("c_tilde", "candidate") + " at z = " + format(z, 2));
      });
      figure.svg.setAttribute("aria-label", (kind === "candidate" ? "tanh" : "sigmoid") +
        " curve with " + described.join(", "));
    }

    panel.addEventListener("input", update);
    reset.addEventListener("click", function () {
      Object.keys(sliders).forEach(function (name) { sliders[name].value = sliders[name].defaultValue; });
      update();
    });
    update();
    panel.dataset.klgReady = "1";
  }

  function init() {
    document.querySelectorAll("div.klg-explorer").forEach(function (panel) {
      if (!panel.dataset.klgReady) build(panel);
    });
  }

  window.klgExplorer = { format: format, percent: percent, step: step, init: init };

  window.klgOnEveryPage(init);
})();
