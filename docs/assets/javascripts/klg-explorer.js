/* Gate explorers: a small panel per <div class="klg-explorer"> with a slider
 * per quantity and the gate recomputed live, in the page's notation.
 *
 *   <div class="klg-explorer" data-part="forget"
 *        data-values="x_t=1 h_prev=1 c_prev=2 kernel_f=1.63 recurrent_kernel_f=2.70 bias_f=1.62"></div>
 *
 * data-part is forget, input, candidate or output; data-values sets the
 * sliders' starting values (the rest start at their defaults).  Every slider
 * is an <input type="range"> named after its quantity (x_t, h_prev, c_prev,
 * kernel_f, ...); every result is an <output> whose name says what it is
 * (z, f_t, kept, ...) and whose data-value holds the unrounded number.
 * One unit, one input feature: the gate of klg's sublayer with H = D = 1,
 *   z = x_t kernel + h_{t-1} recurrent_kernel + bias,  gate = sigma(z) or tanh(z).
 * tests/site/test_browser_explorers.py moves the sliders and compares the
 * shown numbers with klg.  Plain JavaScript; the math is typeset with the
 * site's own KaTeX.
 */
(function () {
  "use strict";

  function sigmoid(z) {
    return 1 / (1 + Math.exp(-z));
  }

  // name -> [TeX label, min, max, step, default]
  function quantities(s) {
    return {
      x_t: ["x_t", -10, 10, 0.01, 1],
      h_prev: ["h_{t-1}", -1, 1, 0.01, 1],
      c_prev: ["C_{t-1}", -3, 3, 0.01, 2],
      c_tilde: ["\\tilde C_t", -1, 1, 0.01, 0.5],
      c_t: ["C_t", -3, 3, 0.01, 1],
      kernel: ["\\mathtt{kernel}_" + s, -5, 5, 0.01, 1],
      recurrent_kernel: ["\\mathtt{recurrent\\_kernel}_" + s, -5, 5, 0.01, 1],
      bias: ["\\mathtt{bias}_" + s, -5, 5, 0.01, 0],
    };
  }

  var PARTS = {
    forget: {
      sub: "f",
      title: "Forget gate",
      extra: ["c_prev"],
      activation: sigmoid,
      gate: ["f_t", "f_t = \\sigma(z)"],
      results: [
        ["kept", "f_t\\,C_{t-1}", function (g, v) { return g * v.c_prev; }, "memory kept"],
        ["percent", "100\\,f_t", function (g) { return 100 * g; }, "percent of the memory kept"],
      ],
    },
    input: {
      sub: "i",
      title: "Input gate",
      extra: ["c_tilde"],
      activation: sigmoid,
      gate: ["i_t", "i_t = \\sigma(z)"],
      results: [
        ["written", "i_t\\,\\tilde C_t", function (g, v) { return g * v.c_tilde; }, "candidate written into the cell"],
      ],
    },
    candidate: {
      sub: "c",
      title: "Candidate memory",
      extra: [],
      activation: Math.tanh,
      gate: ["c_tilde", "\\tilde C_t = \\tanh(z)"],
      results: [],
    },
    output: {
      sub: "o",
      title: "Output gate",
      extra: ["c_t"],
      activation: sigmoid,
      gate: ["o_t", "o_t = \\sigma(z)"],
      results: [
        ["h_t", "h_t = o_t \\tanh(C_t)", function (g, v) { return g * Math.tanh(v.c_t); }, "new hidden state"],
      ],
    },
  };

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

  /* A number as the panel shows it: `decimals` places, or three significant
     digits in exponent form below 0.001 (sigma(-11.98) is 6.27e-6, not 0.0000). */
  function format(value, decimals) {
    if (value === 0 || !isFinite(value)) return String(value);
    if (Math.abs(value) < 0.001) return value.toExponential(2);
    return value.toFixed(decimals);
  }

  function parseValues(text) {
    var values = {};
    (text || "").split(/\s+/).forEach(function (pair) {
      var kv = pair.split("=");
      if (kv.length === 2 && kv[1] !== "" && !isNaN(Number(kv[1]))) values[kv[0]] = Number(kv[1]);
    });
    return values;
  }

  var counter = 0;

  function build(panel) {
    var part = PARTS[panel.dataset.part];
    if (!part) {
      console.error("klg-explorer: data-part must be one of " + Object.keys(PARTS).join(", ") +
        "; got " + JSON.stringify(panel.dataset.part));
      return;
    }
    var s = part.sub;
    var q = quantities(s);
    var start = parseValues(panel.dataset.values);
    // slider name -> quantity key
    var names = [["x_t", "x_t"], ["h_prev", "h_prev"]];
    part.extra.forEach(function (k) { names.push([k, k]); });
    ["kernel", "recurrent_kernel", "bias"].forEach(function (k) { names.push([k + "_" + s, k]); });
    for (var key in start) {
      if (!names.some(function (n) { return n[0] === key; })) {
        console.error("klg-explorer: no slider named " + key + " in the " + part.title.toLowerCase() +
          " panel; expected " + names.map(function (n) { return n[0]; }).join(", "));
      }
    }

    panel.textContent = "";
    panel.setAttribute("role", "group");
    var heading = make("p", "klg-explorer__title", panel);
    heading.textContent = part.title + ": move the sliders";
    var id = "klg-explorer-" + (++counter);
    heading.id = id + "-title";
    panel.setAttribute("aria-labelledby", heading.id);

    var grid = make("div", "klg-explorer__sliders", panel);
    var sliders = {};
    var shown = {};
    names.forEach(function (n) {
      var name = n[0];
      var spec = q[n[1]];
      var row = make("div", "klg-explorer__row", grid);
      var label = make("label", "klg-explorer__label", row);
      label.htmlFor = id + "-" + name;
      tex(label, spec[0]);
      var input = make("input", null, row);
      input.type = "range";
      input.id = id + "-" + name;
      input.name = name;
      input.min = spec[1];
      input.max = spec[2];
      input.step = spec[3];
      input.value = name in start ? start[name] : spec[4];
      input.defaultValue = input.value;
      var value = make("span", "klg-explorer__value", row);
      value.setAttribute("aria-hidden", "true");
      sliders[name] = input;
      shown[name] = value;
    });

    var results = make("div", "klg-explorer__results", panel);
    results.setAttribute("aria-live", "polite");

    function resultRow(name, label, what) {
      var row = make("div", "klg-explorer__result", results);
      var l = make("span", "klg-explorer__label", row);
      tex(l, label);
      var out = make("output", null, row);
      out.name = name;
      out.setAttribute("aria-label", what);
      return out;
    }

    var zLabel = "z = x_t\\,\\mathtt{kernel}_" + s + " + h_{t-1}\\,\\mathtt{recurrent\\_kernel}_" + s +
      " + \\mathtt{bias}_" + s;
    var zRow = make("div", "klg-explorer__formula", results);
    tex(make("span", "klg-explorer__label", zRow), zLabel);
    var sum = make("span", "klg-explorer__sum", zRow);
    var zOut = resultRow("z", "z", "pre-activation z");
    var gateOut = resultRow(part.gate[0], part.gate[1], part.title.toLowerCase());
    var bar = make("div", "klg-explorer__bar", results);
    var fill = make("div", "klg-explorer__fill", bar);
    bar.setAttribute("aria-hidden", "true");
    var extra = part.results.map(function (r) {
      return [resultRow(r[0], r[1], r[3]), r[2]];
    });

    var reset = make("button", "md-button klg-explorer__reset", panel);
    reset.type = "button";
    reset.textContent = "Back to the page's numbers";

    function update() {
      var v = {};
      names.forEach(function (n) {
        v[n[1]] = Number(sliders[n[0]].value);
        shown[n[0]].textContent = format(v[n[1]], 2);
      });
      var z = v.x_t * v.kernel + v.h_prev * v.recurrent_kernel + v.bias;
      var g = part.activation(z);
      sum.textContent = "= " + format(v.kernel, 2) + " \u00d7 " + format(v.x_t, 2) + " + " +
        format(v.recurrent_kernel, 2) + " \u00d7 " + format(v.h_prev, 2) + " + " + format(v.bias, 2);
      [[zOut, z, 2], [gateOut, g, 4]].concat(extra.map(function (e) {
        return [e[0], e[1](g, v), 4];
      })).forEach(function (o) {
        o[0].dataset.value = String(o[1]);
        o[0].textContent = format(o[1], o[2]);
      });
      // The bar shows the gate: 0..1 for a sigmoid, -1..1 for tanh.
      var fraction = part.activation === Math.tanh ? (g + 1) / 2 : g;
      fill.style.width = (100 * fraction).toFixed(2) + "%";
    }

    grid.addEventListener("input", update);
    reset.addEventListener("click", function () {
      names.forEach(function (n) { sliders[n[0]].value = sliders[n[0]].defaultValue; });
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

  window.klgExplorer = { format: format, init: init };

  window.klgOnEveryPage(init);
})();
