"""Write the LSTM cell diagram of the documentation site.

    python tools/make_cell_diagram.py          # writes docs/assets/images/lstm-cell.svg
    python tools/make_cell_diagram.py --check  # exit 1 if the committed file is stale

One step of the cell in the site's notation (Olah's): the inputs x_t, h_{t-1}
and C_{t-1}; the four parts (forget gate, input gate, candidate memory,
output gate), each a layer; the products and the sum of the cell state
update; the outputs C_t and h_t.  Every part is a link to its equation page
(written relative to the SVG's own place in the site, assets/images/; the
build hook tools/docs_hooks.py inlines the SVG into pages and rewrites the
links relative to each page).  Each group's class names the pages that
highlight it (``klg-part-forget-gate`` ...); a page sets ``data-highlight``.
The colours follow the site's light and dark schemes when the SVG is inlined
(mkdocs-material's CSS variables and ``[data-md-color-scheme=slate]``) and
the reader's system setting when the file is opened on its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "assets" / "images" / "lstm-cell.svg"
PAGES = "../../equations/"  # from assets/images/ to the equation pages

# Sized for a phone: at 390 px the figure is about 358 px wide (0.78 of the
# viewBox), so every label is at least 14.5 units (11 px there) and every
# round operation 34 units across (26 px, above the 24 px of a tap target).
WIDTH, HEIGHT = 460, 300
TOP, BOTTOM = 48, 244  # the cell-state line and the line that carries [h_{t-1}, x_t]
BOX_Y, BOX_H, BOX_W = 138, 50, 76
FORGET_X, INPUT_X, CAND_X, OUT_X = 88, 168, 248, 328
TANH_X = 412  # the column of tanh(C_t) and the output product
R = 17  # radius of the point-wise operations
MID = 90  # height of the input product and of tanh(C_t)

STYLE = """
.klg-cell { font-family: "KaTeX_Main", "Times New Roman", serif; }
.klg-cell .klg-frame { fill: #f5f6fb; stroke: #b8bdd6; stroke-width: 1.5; }
.klg-cell .klg-line { fill: none; stroke: #3f4350; stroke-width: 2; }
.klg-cell .klg-arrow { fill: #3f4350; }
.klg-cell .klg-layer .klg-shape { fill: #fff1c1; stroke: #b58a00; stroke-width: 1.8; }
.klg-cell .klg-op .klg-shape { fill: #fde2e1; stroke: #c0392b; stroke-width: 1.8; }
.klg-cell text { fill: #1d2030; font-size: 20px; }
.klg-cell .klg-math { font-family: "KaTeX_Math", "Times New Roman", serif; font-style: italic; }
.klg-cell .klg-name { font-size: 14.5px; font-family: system-ui, sans-serif; }
.klg-cell .klg-io { font-size: 20px; }
.klg-cell a:hover .klg-shape, .klg-cell a:focus .klg-shape { stroke-width: 3.2; }
.klg-cell a:focus { outline: none; }
.klg-cell a:focus-visible { outline: 2px solid #526cfe; outline-offset: 2px; }
.klg-cell a:focus-visible .klg-shape { stroke: #526cfe; stroke-width: 3.5; }
.klg-cell .klg-hl .klg-shape { stroke: #3f51b5; stroke-width: 4; }
.klg-cell .klg-hl.klg-layer .klg-shape { fill: #ffd54f; }
.klg-cell .klg-hl.klg-op .klg-shape { fill: #ffab91; }
.klg-cell .klg-hl text { font-weight: bold; }
@media (prefers-color-scheme: dark) {
  svg.klg-cell:not(.klg-inline) { background: #1e2129; }
  svg.klg-cell:not(.klg-inline) .klg-frame { fill: #262a36; stroke: #59607a; }
  svg.klg-cell:not(.klg-inline) .klg-line { stroke: #c9cdd9; }
  svg.klg-cell:not(.klg-inline) .klg-arrow { fill: #c9cdd9; }
  svg.klg-cell:not(.klg-inline) text { fill: #e8eaf2; }
  svg.klg-cell:not(.klg-inline) .klg-layer .klg-shape { fill: #4a3d10; stroke: #e0b43a; }
  svg.klg-cell:not(.klg-inline) .klg-op .klg-shape { fill: #4d2220; stroke: #ff8a80; }
}
[data-md-color-scheme="slate"] .klg-cell .klg-frame { fill: #262a36; stroke: #59607a; }
[data-md-color-scheme="slate"] .klg-cell .klg-line { stroke: #c9cdd9; }
[data-md-color-scheme="slate"] .klg-cell .klg-arrow { fill: #c9cdd9; }
[data-md-color-scheme="slate"] .klg-cell text { fill: #e8eaf2; }
[data-md-color-scheme="slate"] .klg-cell .klg-layer .klg-shape { fill: #4a3d10; stroke: #e0b43a; }
[data-md-color-scheme="slate"] .klg-cell .klg-op .klg-shape { fill: #4d2220; stroke: #ff8a80; }
[data-md-color-scheme="slate"] .klg-cell .klg-hl .klg-shape { stroke: #9fa8ff; }
[data-md-color-scheme="slate"] .klg-cell .klg-hl.klg-layer .klg-shape { fill: #8a6d00; }
[data-md-color-scheme="slate"] .klg-cell .klg-hl.klg-op .klg-shape { fill: #8c3a2e; }
"""


def math(x, y, base, sub=None, tilde=False, cls="klg-math", anchor="middle"):
    """An italic symbol with an optional subscript, as SVG text."""
    base = escape(base) + ("\u0303" if tilde else "")
    sub_part = f'<tspan dy="5" font-size="14.5">{escape(sub)}</tspan>' if sub else ""
    return f'<text class="{cls}" x="{x}" y="{y}" text-anchor="{anchor}">{base}{sub_part}</text>'


def line(*points, arrow=True):
    d = "M" + " L".join(f"{x},{y}" for x, y in points)
    end = ' marker-end="url(#klg-arrowhead)"' if arrow else ""
    return f'<path class="klg-line" d="{d}"{end}/>'


def layer(cx, symbol, name, page, classes, sub):
    """A layer box; it shows the first word of its name (the box is a phone's
    thumb wide), the whole name is its title and label."""
    x, y = cx - BOX_W / 2, BOX_Y
    word = name.split()[0]
    return (
        f'<a href="{PAGES}{page}/" aria-label="{escape(name)}: equation page">'
        f'<g class="klg-part klg-layer {classes}">'
        f"<title>{escape(name)}</title>"
        f'<rect class="klg-shape" x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
        f'<text x="{cx}" y="{y + 21}" text-anchor="middle">{escape(symbol)}</text>'
        f'<text class="klg-name" x="{cx}" y="{y + 41}" text-anchor="middle">{escape(word)}</text>'
        f"{sub}</g></a>"
    )


def op(cx, cy, symbol, name, page, classes):
    return (
        f'<a href="{PAGES}{page}/" aria-label="{escape(name)}: equation page">'
        f'<g class="klg-part klg-op {classes}">'
        f"<title>{escape(name)}</title>"
        f'<circle class="klg-shape" cx="{cx}" cy="{cy}" r="{R}"/>'
        f'<text x="{cx}" y="{cy + 7}" text-anchor="middle">{escape(symbol)}</text></g></a>'
    )


def svg() -> str:
    gate_top = BOX_Y
    mid = MID
    out_y = BOX_Y + BOX_H / 2  # the output product, level with the output gate
    parts = [
        f'<rect class="klg-frame" x="36" y="20" width="{TANH_X + 26 - 36}" height="{BOTTOM + 16 - 20}" rx="14"/>',
        # the cell state: C_{t-1} -> x -> + -> C_t
        line((0, TOP), (FORGET_X - R, TOP), arrow=False),
        line((FORGET_X + R, TOP), (CAND_X - R, TOP), arrow=False),
        line((CAND_X + R, TOP), (WIDTH - 6, TOP)),
        # [h_{t-1}, x_t] feeds the four layers
        line((0, BOTTOM), (OUT_X, BOTTOM), arrow=False),
        line((44, HEIGHT), (44, BOTTOM), arrow=False),
        *(line((cx, BOTTOM), (cx, BOX_Y + BOX_H)) for cx in (FORGET_X, INPUT_X, CAND_X, OUT_X)),
        # f_t to the forget product; i_t and C~_t to the input product; to the sum
        line((FORGET_X, gate_top), (FORGET_X, TOP + R)),
        line((INPUT_X, gate_top), (INPUT_X, mid), (CAND_X - R, mid)),
        line((CAND_X, gate_top), (CAND_X, mid + R)),
        line((CAND_X, mid - R), (CAND_X, TOP + R)),
        # C_t -> tanh -> output product <- o_t; h_t out to the right
        line((TANH_X, TOP), (TANH_X, mid - 17)),
        line((TANH_X, mid + 17), (TANH_X, out_y - R)),
        line((OUT_X + BOX_W / 2, out_y), (TANH_X - R, out_y)),
        line((TANH_X, out_y + R), (TANH_X, BOTTOM), (WIDTH - 6, BOTTOM)),
        layer(
            FORGET_X,
            "\u03c3",
            "forget gate",
            "forget-gate",
            "klg-part-forget-gate klg-part-sigmoid klg-part-activation-of-a-layer",
            math(FORGET_X + 8, 108, "f", "t", anchor="start"),
        ),
        layer(
            INPUT_X,
            "\u03c3",
            "input gate",
            "input-gate",
            "klg-part-input-gate klg-part-sigmoid klg-part-activation-of-a-layer",
            math(INPUT_X + 8, 124, "i", "t", anchor="start"),
        ),
        layer(
            CAND_X,
            "tanh",
            "candidate",
            "candidate-memory",
            "klg-part-candidate-memory klg-part-activation-of-a-layer",
            math(CAND_X + 8, 130, "C", "t", tilde=True, anchor="start"),
        ),
        layer(
            OUT_X,
            "\u03c3",
            "output gate",
            "output-gate",
            "klg-part-output-gate klg-part-sigmoid klg-part-activation-of-a-layer",
            math(OUT_X + BOX_W / 2 + 4, out_y - 8, "o", "t", anchor="start"),
        ),
        op(
            FORGET_X,
            TOP,
            "\u00d7",
            "forget product f_t \u2299 C_{t-1}",
            "cell-state-update",
            "klg-part-cell-state-update",
        ),
        op(
            CAND_X,
            mid,
            "\u00d7",
            "input product i_t \u2299 C\u0303_t",
            "cell-state-update",
            "klg-part-cell-state-update",
        ),
        op(
            CAND_X,
            TOP,
            "+",
            "sum: the new cell state C_t",
            "cell-state-update",
            "klg-part-cell-state-update",
        ),
        (
            f'<a href="{PAGES}hidden-state/" aria-label="tanh of the cell state: equation page">'
            '<g class="klg-part klg-op klg-part-hidden-state"><title>tanh(C_t)</title>'
            f'<ellipse class="klg-shape" cx="{TANH_X}" cy="{mid}" rx="28" ry="17"/>'
            f'<text x="{TANH_X}" y="{mid + 5}" text-anchor="middle" font-size="15">tanh</text>'
            "</g></a>"
        ),
        op(
            TANH_X,
            out_y,
            "\u00d7",
            "output product h_t = o_t \u2299 tanh(C_t)",
            "hidden-state",
            "klg-part-hidden-state",
        ),
        # the inputs and outputs
        math(4, TOP - 10, "C", "t\u22121", cls="klg-math klg-io", anchor="start"),
        math(WIDTH - 4, TOP - 10, "C", "t", cls="klg-math klg-io", anchor="end"),
        math(4, BOTTOM - 10, "h", "t\u22121", cls="klg-math klg-io", anchor="start"),
        math(WIDTH - 4, BOTTOM - 10, "h", "t", cls="klg-math klg-io", anchor="end"),
        math(52, HEIGHT - 10, "x", "t", cls="klg-math klg-io", anchor="start"),
    ]
    body = "\n".join(parts)
    return f"""<svg xmlns="http://www.w3.org/2000/svg" class="klg-cell" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="klg-cell-title klg-cell-desc">
<title id="klg-cell-title">One step of an LSTM cell</title>
<desc id="klg-cell-desc">The previous hidden state h_(t-1) and the input x_t feed four layers: the forget gate f_t, the input gate i_t and the output gate o_t (sigmoids) and the candidate memory C~_t (tanh). The old cell state C_(t-1) is multiplied by f_t, and i_t times C~_t is added, giving the new cell state C_t. The new hidden state h_t is o_t times tanh(C_t).</desc>
<style>{STYLE}</style>
<defs><marker id="klg-arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path class="klg-arrow" d="M0,0 L10,5 L0,10 z"/></marker></defs>
{body}
</svg>
"""  # noqa: E501


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed SVG is stale")
    args = parser.parse_args(argv)
    text = svg()
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale: run python tools/make_cell_diagram.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
