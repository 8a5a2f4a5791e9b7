/* Symbol popovers: what a symbol in an equation means, without leaving the page.
 *
 * Every symbol of an equation is a link to its row on the symbols page
 * (\sym{id}{...} in the Markdown, an <a class="klg-sym"> after KaTeX; see
 * katex-render.js).  This script shows the row's sentence in a popover
 * (window.KLG_SYMBOL_MEANINGS, generated from docs/symbols.md by
 * tools/docs_ui_hooks.py):
 *
 * - mouse: on hover, at once (no native title delay); the popover stays
 *   while the pointer is on it, so its link can be clicked;
 * - touch: the first tap on a symbol opens its popover, a second tap on the
 *   same symbol follows the link; a tap elsewhere closes it;
 * - keyboard and screen readers: KaTeX hides its visual markup from
 *   assistive technology (aria-hidden) and gives them MathML instead, so
 *   the links inside it must not take focus (tabindex=-1).  The formula
 *   itself takes focus instead (one tab stop per formula); the arrow keys
 *   walk its symbols, each one's popover is shown and its name and meaning
 *   announced through a live region; Enter opens the symbols page at that
 *   row; Escape closes.
 *
 * On the symbols page the row a link lands on is highlighted (klg-target),
 * also after an in-page jump (hashchange).
 */
(function () {
  "use strict";

  var popover = null;
  var live = null;
  var current = null; // the symbol link whose popover is open
  var hideTimer = null;
  var lastPointer = "mouse";

  function meanings() {
    return window.KLG_SYMBOL_MEANINGS || {};
  }

  function symbolId(link) {
    var href = link.getAttribute("href") || "";
    var k = href.indexOf("#sym-");
    return k < 0 ? null : href.slice(k + 5);
  }

  function renderMath(root) {
    if (typeof katex === "undefined") return;
    root.querySelectorAll(".arithmatex").forEach(function (el) {
      var tex = el.textContent.trim().replace(/^\\\(|\\\)$/g, "");
      katex.render(tex, el, { throwOnError: false, strict: "ignore", output: "htmlAndMathml" });
    });
  }

  function ensurePopover() {
    if (popover && document.body.contains(popover)) return;
    popover = document.createElement("div");
    popover.id = "klg-popover";
    popover.className = "klg-popover md-typeset";
    popover.setAttribute("role", "tooltip");
    popover.hidden = true;
    popover.addEventListener("mouseenter", function () { clearTimeout(hideTimer); });
    popover.addEventListener("mouseleave", function () { scheduleHide(); });
    document.body.appendChild(popover);
    live = document.createElement("div");
    live.className = "klg-sr-only";
    live.setAttribute("aria-live", "polite");
    live.id = "klg-popover-live";
    document.body.appendChild(live);
  }

  function fill(link) {
    var id = symbolId(link);
    var entry = meanings()[id] || {};
    var name = entry.name || link.dataset.klgTitle || id;
    popover.textContent = "";
    var title = document.createElement("div");
    title.className = "klg-popover__name";
    var symbol = link.closest(".katex") ? link.cloneNode(true) : null;
    if (symbol) {
      var wrap = document.createElement("span");
      wrap.className = "klg-popover__symbol katex";
      symbol.removeAttribute("href");
      symbol.removeAttribute("tabindex");
      symbol.className = "";
      wrap.setAttribute("aria-hidden", "true");
      wrap.appendChild(symbol);
      title.appendChild(wrap);
    }
    var strong = document.createElement("strong");
    strong.textContent = name;
    title.appendChild(strong);
    popover.appendChild(title);
    var text = document.createElement("div");
    text.className = "klg-popover__meaning";
    text.innerHTML = entry.meaning || "";
    // the meaning's links are relative to the symbols page
    var base = link.href;
    text.querySelectorAll("a[href]").forEach(function (a) {
      a.href = new URL(a.getAttribute("href"), base).href;
    });
    renderMath(text);
    popover.appendChild(text);
    var more = document.createElement("a");
    more.className = "klg-popover__more";
    more.href = link.href;
    more.textContent = "On the symbols page \u2192";
    popover.appendChild(more);
    // What a screen reader hears: the math as MathML text, not TeX source.
    var spoken = text.cloneNode(true);
    spoken.querySelectorAll("annotation, .katex-html").forEach(function (el) { el.remove(); });
    return name + ": " + spoken.textContent.replace(/\s+/g, " ").trim();
  }

  function place(link) {
    var r = link.getBoundingClientRect();
    var width = document.documentElement.clientWidth;
    popover.style.maxWidth = Math.min(352, width - 16) + "px";
    popover.style.left = "0px";
    popover.style.top = "0px";
    var pw = popover.offsetWidth;
    var ph = popover.offsetHeight;
    var left = Math.max(8, Math.min(r.left + r.width / 2 - pw / 2, width - pw - 8));
    var top = r.bottom + 8;
    if (top + ph > window.innerHeight - 8 && r.top - ph - 8 > 8) top = r.top - ph - 8;
    popover.style.left = left + window.scrollX + "px";
    popover.style.top = top + window.scrollY + "px";
  }

  function show(link, announce) {
    ensurePopover();
    clearTimeout(hideTimer);
    if (current && current !== link) current.classList.remove("klg-sym--active");
    current = link;
    link.classList.add("klg-sym--active");
    var said = fill(link);
    popover.hidden = false;
    place(link);
    popover.dataset.symbol = symbolId(link) || "";
    if (announce) live.textContent = said;
  }

  function hide() {
    clearTimeout(hideTimer);
    if (current) current.classList.remove("klg-sym--active");
    current = null;
    if (popover) popover.hidden = true;
  }

  function scheduleHide() {
    clearTimeout(hideTimer);
    hideTimer = setTimeout(hide, 250);
  }

  function formulaOf(link) {
    return link.closest(".arithmatex") || link.closest(".katex");
  }

  function symbolsIn(formula) {
    return Array.prototype.slice.call(formula.querySelectorAll("a.klg-sym"));
  }

  function prepare(root) {
    root.querySelectorAll('.katex a[href*="#sym-"]').forEach(function (a) {
      if (a.dataset.klgPopover) return;
      a.dataset.klgPopover = "1";
      a.classList.add("klg-sym");
      var title = a.getAttribute("title");
      if (title) a.dataset.klgTitle = title;
      a.removeAttribute("title"); // the popover replaces the browser's delayed tooltip
      a.removeAttribute("aria-label");
      if (a.closest('[aria-hidden="true"]')) a.setAttribute("tabindex", "-1");
      a.addEventListener("mouseenter", function () {
        if (lastPointer !== "touch") show(a, false);
      });
      a.addEventListener("mouseleave", function () {
        if (lastPointer !== "touch") scheduleHide();
      });
      a.addEventListener("click", function (event) {
        if (lastPointer === "touch" && current !== a) {
          event.preventDefault();
          show(a, true);
        }
      });
    });
    root.querySelectorAll(".arithmatex").forEach(function (formula) {
      if (formula.dataset.klgFormula || !formula.querySelector("a.klg-sym")) return;
      formula.dataset.klgFormula = "1";
      var count = symbolsIn(formula).length;
      formula.setAttribute("tabindex", "0");
      formula.setAttribute("role", "group");
      formula.setAttribute("aria-roledescription", "formula");
      formula.setAttribute(
        "aria-description",
        count + (count === 1 ? " symbol" : " symbols") +
          " explained: left and right arrow keys read them, Enter opens the symbols page"
      );
      formula.addEventListener("focus", function () {
        var links = symbolsIn(formula);
        if (links.length && (!current || formulaOf(current) !== formula)) show(links[0], true);
        formula.setAttribute("aria-describedby", "klg-popover");
      });
      formula.addEventListener("blur", function (event) {
        if (popover && popover.contains(event.relatedTarget)) return;
        formula.removeAttribute("aria-describedby");
        hide();
      });
      formula.addEventListener("keydown", function (event) {
        var links = symbolsIn(formula);
        var at = links.indexOf(current);
        var next = null;
        if (event.key === "ArrowRight" || event.key === "ArrowDown") next = links[Math.min(at + 1, links.length - 1)];
        else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = links[Math.max(at - 1, 0)];
        else if (event.key === "Home") next = links[0];
        else if (event.key === "End") next = links[links.length - 1];
        else if (event.key === "Enter" && current) {
          event.preventDefault();
          window.location.href = current.href;
          return;
        } else if (event.key === "Escape") {
          hide();
          return;
        } else return;
        event.preventDefault();
        if (next) show(next, true);
      });
    });
  }

  function highlightTarget() {
    document.querySelectorAll("tr.klg-target").forEach(function (row) { row.classList.remove("klg-target"); });
    var hash = decodeURIComponent(window.location.hash.slice(1));
    if (!hash) return;
    var anchor = document.getElementById(hash);
    var row = anchor && anchor.closest("tr");
    if (row) row.classList.add("klg-target");
  }

  document.addEventListener("pointerdown", function (event) {
    lastPointer = event.pointerType || "mouse";
    if (popover && !popover.hidden && !popover.contains(event.target) &&
        !(event.target.closest && event.target.closest("a.klg-sym"))) {
      hide();
    }
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") hide();
  });
  window.addEventListener("hashchange", highlightTarget);
  window.addEventListener("resize", function () { if (current) place(current); });

  function init() {
    prepare(document.body);
    highlightTarget();
  }

  window.klgPopovers = { show: show, hide: hide };

  window.klgOnEveryPage(init);
})();
