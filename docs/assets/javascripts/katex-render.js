/* Render the site's math with the KaTeX served from assets/katex/.
 *
 * pymdownx.arithmatex (generic mode) leaves every formula as
 * <span class="arithmatex">\(...\)</span> or <div class="arithmatex">\[...\]</div>.
 * Symbols are links to the symbols page (\href, written by the build hook
 * from \sym{id}{...}); KaTeX's trust option lets \href (relative URLs only),
 * \htmlId, \htmlClass and \htmlData through.  Each symbol link gets its
 * hover text from window.KLG_SYMBOLS (generated from docs/symbols.md).
 * Rendered notebooks (mkdocs-jupyter) keep $...$ in their markdown cells;
 * KaTeX's auto-render handles those.
 * When done, <body data-klg-math="N"> holds the number of formulas rendered.
 */
(function () {
  "use strict";

  var HTML_COMMANDS = { "\\htmlId": true, "\\htmlClass": true, "\\htmlData": true };

  function trust(context) {
    if (context.command === "\\href" || context.command === "\\url") {
      return context.protocol === "_relative";
    }
    return HTML_COMMANDS[context.command] === true;
  }

  var OPTIONS = { trust: trust, strict: "ignore", throwOnError: false, output: "htmlAndMathml" };

  function stripDelimiters(tex) {
    var text = tex.trim();
    var pairs = [["\\(", "\\)"], ["\\[", "\\]"], ["$$", "$$"], ["$", "$"]];
    for (var k = 0; k < pairs.length; k++) {
      var open = pairs[k][0];
      var close = pairs[k][1];
      if (text.startsWith(open) && text.endsWith(close) && text.length >= open.length + close.length) {
        return text.slice(open.length, text.length - close.length);
      }
    }
    return text;
  }

  function renderArithmatex(root) {
    var count = 0;
    root.querySelectorAll(".arithmatex").forEach(function (el) {
      if (el.dataset.klgRendered) {
        return;
      }
      var display = el.tagName === "DIV";
      var tex = stripDelimiters(el.textContent);
      var options = Object.assign({ displayMode: display }, OPTIONS);
      katex.render(tex, el, options);
      el.dataset.klgRendered = "1";
      count += 1;
    });
    return count;
  }

  function renderNotebooks(root) {
    root.querySelectorAll(".jupyter-wrapper .jp-RenderedMarkdown, .jupyter-wrapper .jp-RenderedHTMLCommon").forEach(
      function (el) {
        if (el.dataset.klgRendered || typeof renderMathInElement !== "function") {
          return;
        }
        renderMathInElement(
          el,
          Object.assign(
            {
              delimiters: [
                { left: "$$", right: "$$", display: true },
                { left: "\\[", right: "\\]", display: true },
                { left: "\\(", right: "\\)", display: false },
                { left: "$", right: "$", display: false },
              ],
              ignoredTags: ["script", "noscript", "style", "textarea", "pre", "code"],
            },
            OPTIONS
          )
        );
        el.dataset.klgRendered = "1";
      }
    );
  }

  function labelSymbols(root) {
    var titles = window.KLG_SYMBOLS || {};
    root.querySelectorAll('.katex a[href*="#sym-"]').forEach(function (a) {
      var id = a.getAttribute("href").split("#sym-")[1];
      a.classList.add("klg-sym");
      if (titles[id]) {
        a.setAttribute("title", titles[id]);
        a.setAttribute("aria-label", titles[id]);
      }
    });
  }

  function render(root) {
    var count = renderArithmatex(root);
    renderNotebooks(root);
    labelSymbols(root);
    root.querySelectorAll(".katex-error").forEach(function (el) {
      console.error("KaTeX could not render: " + el.getAttribute("title"));
    });
    document.body.dataset.klgMath = String(count);
  }

  // Runs fn on every page: at each of mkdocs-material's instant-navigation
  // page loads (document$), else once the DOM is ready.  The site's other
  // scripts, loaded after this one, start the same way.
  function onEveryPage(fn) {
    if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
      window.document$.subscribe(function () {
        fn();
      });
    } else if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", function () {
        fn();
      });
    } else {
      fn();
    }
  }

  window.klgOnEveryPage = onEveryPage;
  onEveryPage(function () {
    render(document.body);
  });
})();
