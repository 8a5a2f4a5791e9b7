/* Tables that do not fit their column are stacked: each row becomes a block
 * and each cell shows its column's heading above its content.
 *
 * A table is stacked when it is wider than its column (Material would let
 * it scroll sideways) or when it squeezes a cell of running text below
 * SQUEEZED_PX (a column of sentences 70 px wide is unreadable too).  The
 * test is made again when the window is resized, so a table stacked on a
 * phone is a table again on a wide screen.  The headings are copied into
 * each cell once, hidden unless the table is stacked.
 * tests/site/test_browser_explorers.py (test_layout) checks every page at
 * 390 and 1280 px.
 */
(function () {
  "use strict";

  var SQUEEZED_PX = 120;
  var LONG_TEXT = 50; // characters: a cell of running text, not a value

  function wrapperOf(table) {
    return table.closest(".md-typeset__table") || table.parentElement;
  }

  function squeezed(table) {
    return Array.prototype.some.call(table.querySelectorAll("td"), function (td) {
      return td.textContent.trim().length > LONG_TEXT && td.getBoundingClientRect().width < SQUEEZED_PX;
    });
  }

  function label(table) {
    if (table.dataset.klgLabelled) return;
    var heads = table.querySelectorAll("thead th");
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      Array.prototype.forEach.call(tr.children, function (td, k) {
        var th = heads[k];
        if (!th || !th.textContent.trim()) return;
        var tag = document.createElement("span");
        tag.className = "klg-cell-label";
        tag.setAttribute("aria-hidden", "true"); // screen readers have the table's headers
        Array.prototype.forEach.call(th.childNodes, function (n) { tag.appendChild(n.cloneNode(true)); });
        td.insertBefore(tag, td.firstChild);
      });
    });
    table.dataset.klgLabelled = "1";
  }

  function layout() {
    document.querySelectorAll("article table").forEach(function (table) {
      var wrapper = wrapperOf(table);
      wrapper.classList.remove("klg-stacked");
      var scroller = table.closest(".md-typeset__scrollwrap") || wrapper;
      if (scroller.scrollWidth > scroller.clientWidth + 1 || squeezed(table)) {
        label(table);
        wrapper.classList.add("klg-stacked");
      }
    });
  }

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(layout, 100);
  });

  window.klgOnEveryPage(function () {
    layout();
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(layout);
  });
})();
