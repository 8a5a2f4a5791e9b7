"""The explorer page's styles (one self-contained light scheme), kept in a
Python module for the reasons given in :mod:`.page_script`."""

STYLE = r"""html, body { margin: 0; background: #fff; color: #1d1d1f; }
.klgx { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; padding: 12px; max-width: 1400px; margin: 0 auto; box-sizing: border-box; }
.klgx *, .klgx *::before, .klgx *::after { box-sizing: border-box; }
.klgx h1 { font-size: 18px; margin: 0 0 4px; }
.klgx h2 { font-size: 15px; margin: 0 0 6px; }
.klgx-note, .klgx-help, .klgx-status { margin: 2px 0 8px; color: #444; font-size: 13px; }
.klgx-bar, .klgx-row { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center; margin: 8px 0; }
.klgx-control { display: inline-flex; gap: 6px; align-items: center; font-size: 13px; }
.klgx input[type="number"] { width: 5.5em; font: inherit; }
.klgx select, .klgx button { font: inherit; font-size: 13px; }
.klgx-tracks { display: inline-flex; border: 1px solid #999; border-radius: 4px; overflow: hidden; }
.klgx-track { border: 0; border-right: 1px solid #ccc; background: #f4f4f6; padding: 3px 10px; cursor: pointer; min-width: 2.4em; }
.klgx-track:last-child { border-right: 0; }
.klgx-track.klgx-on { background: #3949ab; color: #fff; }
.klgx-minimap { display: block; width: 100%; height: 34px; cursor: pointer; margin: 4px 0; }
.klgx-text { border: 1px solid #ddd; border-radius: 4px; padding: 8px; max-height: 420px; overflow: auto; overflow-wrap: anywhere; }
.klgx-chars { font: 13px/1.55 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: normal; }
.klgx-words { font-size: 14px; line-height: 1.9; }
.klgx-tok { cursor: pointer; border-bottom: 3px solid transparent; }
.klgx-chars .klgx-tok { white-space: pre; }
.klgx-tok.klgx-sel { outline: 2px solid #111; outline-offset: -1px; }
.klgx-tok.klgx-match { box-shadow: inset 0 -3px 0 #7b2cbf; }
.klgx-tok.klgx-out { outline: 2px solid #c62828; }
.klgx-break { border: 0; border-top: 1px dashed #bbb; margin: 6px 0; }
.klgx-pager { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: center; margin: 6px 0 12px; font-size: 13px; }
.klgx-legend { color: #555; }
.klgx-panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 12px; }
.klgx-panel { border: 1px solid #ddd; border-radius: 4px; padding: 10px; min-width: 0; }
.klgx-panel canvas { display: block; width: 100%; margin: 6px 0; }
.klgx-units, .klgx-matches, .klgx-corr { margin: 4px 0; padding-left: 2.2em; max-height: 260px; overflow: auto; }
.klgx-units li, .klgx-corr li, .klgx-matches li { margin: 2px 0; }
.klgx-units button, .klgx-corr button { border: 1px solid #bbb; background: #fafafa; border-radius: 3px; padding: 0 6px; cursor: pointer; }
.klgx-snippet { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; border: 1px solid #ddd; background: #fafafa; padding: 1px 4px; cursor: pointer; white-space: pre; max-width: 100%; overflow: hidden; text-overflow: ellipsis; vertical-align: middle; }
.klgx-hit { background: #e7d4f7; }
.klgx-score { color: #555; font-size: 12px; }
.klgx-table { border-collapse: collapse; font-size: 12px; margin-top: 6px; }
.klgx-table th, .klgx-table td { border-bottom: 1px solid #e3e3e3; padding: 2px 8px; text-align: right; }
.klgx-table th:first-child, .klgx-table td:first-child { text-align: left; }
@media (max-width: 600px) {
  .klgx { padding: 6px; }
  .klgx-panels { grid-template-columns: 1fr; }
  .klgx-text { max-height: 320px; }
}
"""
