/* Search: the page whose title is the query comes first.
 *
 * Material's search (lunr) ranks by term frequency, so for "forget gate" a
 * page titled "What the forget gate forgets" (the stem "forget" twice)
 * outranks the page titled "Forget gate".  When the result list changes,
 * this moves the result whose page title equals the query (case and spaces
 * ignored) to the top.  The previews themselves are plain text: the build
 * (tools/docs_ui_hooks.py) rewrites the math of the search index.
 */
(function () {
  "use strict";

  function normal(text) {
    return (text || "").toLowerCase().replace(/\s+/g, " ").trim();
  }

  function rerank(list) {
    var input = document.querySelector(".md-search__input");
    if (!input) return;
    var query = normal(input.value);
    if (!query) return;
    var items = Array.prototype.slice.call(list.children);
    for (var k = 1; k < items.length; k++) {
      var title = items[k].querySelector("a.md-search-result__link h1");
      if (title && normal(title.textContent) === query) {
        list.insertBefore(items[k], list.firstElementChild);
        return;
      }
    }
  }

  function watch() {
    var list = document.querySelector(".md-search-result__list");
    if (!list || list.dataset.klgRerank) return;
    list.dataset.klgRerank = "1";
    var busy = false;
    new MutationObserver(function () {
      if (busy) return;
      busy = true;
      rerank(list);
      busy = false;
    }).observe(list, { childList: true });
  }

  window.klgOnEveryPage(watch);
})();
