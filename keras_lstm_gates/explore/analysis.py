"""Selection, match and correlation over the token stream, in numpy.

These are the rules the page's script follows too (on quantised values);
the Python side works on the traced float values.

* **Selection** (LSTMVis's hypothesis range): a unit is selected for the
  range ``[start, end]`` (both included) and threshold ``theta`` when its
  value is ``>= theta`` at every step of the range and ``< theta`` at each of
  the ``context`` steps on either side (steps of the same sample only).
  With ``sign="both"`` a unit can also be selected with its sign flipped
  (``-value >= theta`` inside, ``-value < theta`` around), as a unit that
  switches *off* over the range.  Selected units are ranked by how clearly
  they stand out: the mean inside the range minus the mean of the context
  steps (minus ``theta`` when the range has no context), highest first.
* **Match** (LSTMVis's match view): the spans where every selected unit is
  on together: maximal runs of steps, inside one sample, where each
  selected unit (with its sign) is ``>= theta``, at least ``min_length``
  long.  Each span is ranked as LSTMVis ranks its results: first by the
  Jaccard index between the selected units and all the units (with the same
  signs) that are on over the whole span (1 when no other unit joins in),
  then the longest, then the earliest.
* **Correlation**: Pearson's r between a unit's values and an annotation
  track over every token; a categorical track counts as one 0/1 track per
  category (``"name=category"``).  A constant series gives r = 0.
"""

import numpy as np

SIGNS = {"+": (1,), "-": (-1,), "both": (1, -1)}


def check_sign(sign):
    if sign not in SIGNS:
        raise ValueError(f"Expected `sign` among {list(SIGNS)}, received {sign!r}.")
    return SIGNS[sign]


def check_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        raise ValueError(f"Expected `threshold` to be a number, received {threshold!r}.")
    if not np.isfinite(threshold):
        raise ValueError(f"Expected a finite `threshold`, received {threshold!r}.")
    return float(threshold)


def _check_int(name, value, low=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"Expected `{name}` to be an integer >= {low}, received {value!r}.")
    return int(value)


def context_steps(segment, start, end, context):
    """The positions around ``[start, end]`` inside ``segment`` (start, end)."""
    first, stop = segment
    left = range(max(first, start - context), start)
    right = range(end + 1, min(stop, end + 1 + context))
    return np.array([*left, *right], dtype=np.int64)


def select(values, segment, start, end, threshold, context=1, sign="+"):
    """Ranked units on over ``[start, end]`` and off around it.

    ``values``: (tokens, units); ``segment``: the (start, end) of the sample
    that holds the range.  Returns a list of ``{"unit", "sign", "score",
    "inside_min", "outside_max"}`` dicts, best first.
    """
    threshold = check_threshold(threshold)
    context = _check_int("context", context)
    signs = check_sign(sign)
    inside = np.arange(start, end + 1)
    around = context_steps(segment, start, end, context)
    found = []
    for s in signs:
        v_in = s * values[inside]
        inside_min = v_in.min(axis=0)
        inside_mean = v_in.mean(axis=0)
        if len(around):
            v_out = s * values[around]
            outside_max, baseline = v_out.max(axis=0), v_out.mean(axis=0)
        else:
            outside_max = np.full(values.shape[1], -np.inf)
            baseline = np.full(values.shape[1], threshold)
        chosen = np.flatnonzero((inside_min >= threshold) & (outside_max < threshold))
        for unit in chosen:
            found.append(
                {
                    "unit": int(unit),
                    "sign": s,
                    "score": float(inside_mean[unit] - baseline[unit]),
                    "inside_min": float(inside_min[unit]),
                    "outside_max": float(outside_max[unit]),
                }
            )
    found.sort(key=lambda r: (-r["score"], r["unit"], -r["sign"]))
    return found


def _runs(flags, segments):
    """(start, end) of the maximal True runs of ``flags``, split at samples."""
    runs = []
    for first, length, _ in segments:
        piece = np.r_[False, flags[first : first + length], False].astype(np.int8)
        edges = np.flatnonzero(np.diff(piece))
        for a, b in zip(edges[::2], edges[1::2]):
            runs.append((first + int(a), first + int(b) - 1))
    return runs


def match(values, segments, units, threshold, min_length=2, limit=50):
    """Spans where all ``units`` are on together, ranked.

    ``units``: ``[(unit, sign), ...]``.  Returns ``(spans, total)``: the first
    ``limit`` spans as ``{"start", "end", "length", "jaccard", "others"}``
    dicts (``others``: how many other units were on over the whole span) and
    how many spans there were in all.
    """
    threshold = check_threshold(threshold)
    min_length = _check_int("min_length", min_length, low=1)
    if not units:
        raise ValueError("match needs at least one unit; received none.")
    on = np.ones(len(values), bool)
    for unit, s in units:
        on &= s * values[:, unit] >= threshold
    signs = sorted({s for _, s in units}, reverse=True)
    spans = []
    for start, end in _runs(on, segments):
        length = end - start + 1
        if length < min_length:
            continue
        block = values[start : end + 1]
        active = sum(int(((s * block).min(axis=0) >= threshold).sum()) for s in signs)
        spans.append(
            {
                "start": start,
                "end": end,
                "length": length,
                "jaccard": len(units) / active,
                "others": active - len(units),
            }
        )
    spans.sort(key=lambda r: (-r["jaccard"], -r["length"], r["start"]))
    return spans[:limit], len(spans)


def label_columns(labels):
    """``{column name: float array}``: a numeric track as it is, a
    categorical one as a 0/1 column per category (sorted)."""
    columns = {}
    for name, (kind, values) in labels.items():
        if kind == "numeric":
            columns[name] = values.astype(np.float64)
        else:
            for category in sorted(set(values)):
                columns[f"{name}={category}"] = (values == category).astype(np.float64)
    return columns


def correlations(values, column):
    """Pearson's r of each unit's values (tokens, units) with ``column``."""
    x = values.astype(np.float64)
    x = x - x.mean(axis=0)
    y = column - column.mean()
    denominator = np.sqrt((x * x).sum(axis=0) * (y * y).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y[:, None]).sum(axis=0) / denominator
    return np.where(denominator > 0, r, 0.0)
