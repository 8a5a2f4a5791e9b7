"""Serve the built site the way GitHub Pages serves it: under the project
path of ``site_url`` (``/keras-lstm-gates/``), with ``404.html`` answering
every missing path with status 404.

    with serve(site_dir) as base:   # "http://127.0.0.1:<port>/keras-lstm-gates/"
        ...
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlsplit

import sitebuild
import yaml


@functools.lru_cache(maxsize=1)
def mkdocs_config() -> dict:
    return yaml.safe_load((sitebuild.ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def project_path() -> str:
    """The path part of ``site_url``: ``/keras-lstm-gates/``."""
    return urlsplit(mkdocs_config()["site_url"]).path


class ProjectPathHandler(http.server.SimpleHTTPRequestHandler):
    """Files of ``directory`` under ``prefix``; anything else is a 404 that
    shows the site's 404.html, as on GitHub Pages."""

    prefix = "/"

    def log_message(self, *args):
        pass

    def translate_path(self, path):
        route = urlsplit(path).path
        if route + "/" == self.prefix:
            route = self.prefix
        if not route.startswith(self.prefix):
            return str(Path(self.directory) / "\0outside-the-project-path")
        return super().translate_path("/" + route[len(self.prefix) :])

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file() or self.command != "GET":
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serve(site_dir: Path, prefix: str | None = None):
    """Serve ``site_dir`` on 127.0.0.1 under ``prefix`` (default: the project
    path of site_url); yields the base URL, ending in ``/``."""
    prefix = project_path() if prefix is None else prefix
    handler = type("Handler", (ProjectPathHandler,), {"prefix": prefix})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(site_dir))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}{prefix}"
    finally:
        httpd.shutdown()
        httpd.server_close()
