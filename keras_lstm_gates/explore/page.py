"""The explorer as one self-contained HTML page: styles, script and data
inline, nothing fetched.

The six tracks of each layer are quantised to 8 bits (4 when the page would
pass ``max_bytes``), stored unit by unit (a unit's values over the tokens
are contiguous: that is what colouring a unit and matching read), deflated
with zlib and base64-encoded; the page inflates them with the browser's
``DecompressionStream``.  When even 4 bits do not fit, ``h`` keeps every
token and the other five tracks keep the first tokens that fit; past that,
every track keeps the first tokens that fit.  The page says what it kept.
"""

import base64
import html
import json
import zlib

import numpy as np

from .page_script import SCRIPT
from .page_style import STYLE
from .stream import BOUNDS, TRACKS

_NAMES = {
    "h": "h, the hidden state (the layer's output)",
    "c": "C, the cell state",
    "f": "f, the forget gate",
    "i": "i, the input gate",
    "g": "C\u0303, the candidate memory",
    "o": "o, the output gate",
    "forget_gate": "f",
    "input_gate": "i",
    "output_gate": "o",
}
# Categories of one categorical annotation track that get a correlation
# column each (the most frequent ones); more would swamp the page.
MAX_CATEGORIES = 30


def _blob(raw_bytes):
    packed = zlib.compress(raw_bytes, 6)
    return {"b64": base64.b64encode(packed).decode("ascii"), "deflate": True}


def bounds(key, values):
    """The (lo, hi) range a track is quantised over: the activation's range
    for the gates and the candidate, symmetric around 0 for h and C."""
    if key in BOUNDS:
        return BOUNDS[key]
    peak = float(np.max(np.abs(values))) if values.size else 1.0
    peak = peak if peak > 0 else 1.0
    return -peak, peak


def quantise(values, lo, hi, bits):
    """Codes 0 .. 2**bits - 1 of ``values`` (tokens, units), unit-major,
    two 4-bit codes a byte (high nibble first) when ``bits`` is 4."""
    levels = (1 << bits) - 1
    codes = np.rint((np.asarray(values, np.float64) - lo) / (hi - lo) * levels)
    codes = np.clip(codes, 0, levels).astype(np.uint8).T.ravel()
    if bits == 4:
        if len(codes) % 2:
            codes = np.r_[codes, np.uint8(0)]
        codes = (codes[0::2] << 4) | codes[1::2]
    return codes.tobytes()


def dequantise(codes, lo, hi, bits, tokens, units):
    """The inverse of :func:`quantise`: (tokens, units) float values."""
    codes = np.frombuffer(codes, np.uint8)
    if bits == 4:
        codes = np.stack([codes >> 4, codes & 15], axis=1).ravel()
    codes = codes[: tokens * units].reshape(units, tokens).T
    return lo + codes.astype(np.float64) * (hi - lo) / ((1 << bits) - 1)


def _encode_tracks(explorer, bits, keep):
    """``{layer: {key: spec}}`` and blobs for the given bits and kept
    token counts ``keep[key]``."""
    blobs, layers = {}, []
    for name in explorer.layers:
        tracks = {}
        for key, _attr, _label in TRACKS:
            values = explorer.values(key, name)
            n = keep[key]
            lo, hi = bounds(key, values)
            blob_id = f"{len(layers)}:{key}"
            blobs[blob_id] = _blob(quantise(values[:n], lo, hi, bits))
            tracks[key] = {"lo": lo, "hi": hi, "bits": bits, "tokens": n, "blob": blob_id}
        layers.append(tracks)
    return layers, blobs


def _size(blobs):
    return sum(len(b["b64"]) for b in blobs.values())


def _estimate(explorer, bits, keep, sample_units=24):
    """The encoded size, from every k-th unit only: deflating tens of
    millions of values takes seconds, so a clear miss is skipped."""
    total = 0
    for name in explorer.layers:
        for key, _attr, _label in TRACKS:
            values = explorer.values(key, name)
            step = max(1, values.shape[1] // sample_units)
            sample = values[: keep[key], ::step]
            lo, hi = bounds(key, values)
            total += (
                len(_blob(quantise(sample, lo, hi, bits))["b64"])
                * values.shape[1]
                / sample.shape[1]
            )
    return total


def plan(explorer, max_bytes):
    """The encoded tracks that fit ``max_bytes`` (see the module's text), and
    a sentence saying what was kept."""
    n = len(explorer.tokens)
    full = {key: n for key in explorer.TRACK_KEYS}
    budget = max_bytes - explorer._fixed_bytes()
    for bits in (8, 4):
        if bits == 8 and _estimate(explorer, bits, full) > 1.1 * budget:
            continue
        layers, blobs = _encode_tracks(explorer, bits, full)
        if _size(blobs) <= budget:
            return layers, blobs, f"{bits}-bit values for all {n:,} tokens"
    # 4 bits do not fit: h keeps every token, the rest the first ones.
    keep = dict(full)
    for _ in range(8):
        h_only = {key: (n if key == "h" else 0) for key in full}
        _, h_blobs = _encode_tracks(explorer, 4, h_only)
        room = budget - _size(h_blobs)
        if room <= 0:
            break
        share = room / max(_size(blobs) - _size(h_blobs), 1)
        m = int(min(keep["c"], n * share * 0.97))
        keep = {key: (n if key == "h" else m) for key in full}
        layers, blobs = _encode_tracks(explorer, 4, keep)
        if _size(blobs) <= budget:
            return (
                layers,
                blobs,
                (f"4-bit values; h for all {n:,} tokens, C and the gates for the first {m:,}"),
            )
    m = n
    for _ in range(12):
        m = int(m * min(0.9, budget / max(_size(blobs), 1)))
        keep = {key: m for key in full}
        layers, blobs = _encode_tracks(explorer, 4, keep)
        if _size(blobs) <= budget:
            return layers, blobs, f"4-bit values for the first {m:,} of {n:,} tokens"
    raise ValueError(
        f"explore: the page cannot fit max_bytes={max_bytes:,} even with 4-bit values for a "
        "handful of tokens; raise max_bytes or explore fewer tokens."
    )


def _round(values, digits=4):
    return [None if not np.isfinite(v) else round(float(v), digits) for v in np.ravel(values)]


def payload(explorer, max_bytes):
    """The page's JSON payload (a dict)."""
    layers_spec, blobs, kept = plan(explorer, max_bytes)
    layers = []
    for (name, spec), tracks in zip(explorer.layers.items(), layers_spec):
        trace = spec["trace"]
        saturation = trace.saturation(*explorer.saturation_thresholds)
        summary = {
            gate: {
                k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in s.items()
            }
            for gate, s in trace.summary(*explorer.saturation_thresholds).items()
        }
        correlations = {}
        for key in explorer.TRACK_KEYS:
            table = explorer._correlation_table(key, name)
            if table:
                correlations[key] = {c: _round(r, 3) for c, r in table.items()}
        layers.append(
            {
                "name": name,
                "units": int(trace.units),
                "variant": trace.variant,
                "go_backwards": trace.go_backwards,
                "tracks": tracks,
                "saturation": {
                    g: {"left": _round(s["left"], 3), "right": _round(s["right"], 3)}
                    for g, s in saturation.items()
                },
                "summary": summary,
                "correlations": correlations,
            }
        )
    labels = []
    for name, (kind, values) in explorer.labels.items():
        if kind == "numeric":
            labels.append({"name": name, "kind": kind, "values": _round(values)})
        else:
            categories = sorted(set(values))
            index = {c: k for k, c in enumerate(categories)}
            labels.append(
                {
                    "name": name,
                    "kind": kind,
                    "categories": categories,
                    "values": [index[v] for v in values],
                }
            )
    connectivity = None
    con = explorer.connectivity_rows
    if con is not None:
        norms = con["norms"]
        peak = np.nanmax(np.where(np.isfinite(norms), norms, 0.0), axis=1)
        safe = np.where(peak > 0, peak, 1.0)[:, None]
        codes = np.where(np.isfinite(norms), np.rint(norms / safe * 254), 255).astype(np.uint8)
        blobs["con:codes"] = _blob(codes.tobytes())
        blobs["con:peak"] = _blob(peak.astype("<f4").tobytes())
        blobs["con:positions"] = _blob(con["positions"].astype("<i4").tobytes())
        connectivity = {
            "before": con["before"],
            "after": con["after"],
            "width": int(norms.shape[1]),
            "rows": len(con["positions"]),
            "which": con["which"],
            "codes": "con:codes",
            "peak": "con:peak",
            "positions": "con:positions",
        }
    shown = ", ".join(explorer.layers)
    note = (
        f"{len(explorer.tokens):,} tokens from {len(explorer.stream.segments)} sequence"
        f"{'s' if len(explorer.stream.segments) != 1 else ''}; layers: {shown}. "
        f"The page holds {kept}."
    )
    return {
        "title": explorer.title,
        "note": note,
        "tokens": explorer.tokens,
        "steps": [int(s) for s in explorer.stream.step],
        "segments": explorer.stream.segments,
        "tracks": [[key, label] for key, _attr, label in TRACKS],
        "trackNames": _NAMES,
        "defaults": {"threshold": explorer.default_threshold},
        "saturation": dict(zip(("left", "right"), explorer.saturation_thresholds)),
        "layers": layers,
        "labels": labels,
        "connectivity": connectivity,
        "blobs": blobs,
    }


def _script_json(value):
    # Inside <script>, "</" would end the element and "<!--" open a comment.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render(explorer, max_bytes):
    """The whole page as a string."""
    data = _script_json(payload(explorer, max_bytes))
    title = html.escape(explorer.title)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        # No favicon request: the page loads nothing.
        "<link rel='icon' href='data:,'>\n"
        f"<title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n"
        "<body>\n<div id='klg-explore' class='klgx'><noscript>The explorer needs JavaScript."
        "</noscript></div>\n"
        f"<script type='application/json' id='klg-explore-data'>{data}</script>\n"
        f"<script>\n{SCRIPT}</script>\n</body>\n</html>\n"
    )


def iframe(page, height=900):
    """``page`` inside an ``<iframe srcdoc>``: how notebooks show it (its
    styles and script stay apart from the notebook's)."""
    return (
        f'<iframe srcdoc="{html.escape(page, quote=True)}" '
        f'style="width:100%;height:{int(height)}px;border:1px solid #ddd" '
        'sandbox="allow-scripts" title="klg.explore"></iframe>'
    )
