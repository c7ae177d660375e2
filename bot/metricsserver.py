"""The local HTTP endpoint of ``[metrics]``: ``/metrics`` (``bot.metrics`` in Prometheus text
format) and ``/healthz`` (JSON: whether the bot is connected and its database answers; 200 when
all is well, 503 when not, for a supervisor's or a load balancer's health check).

One daemon thread runs a standard-library HTTP server bound to ``[metrics] host`` (the
loopback by default). Nothing here knows Discord: the bot hands in what ``/healthz`` reports.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.errors import StalkError
from bot.metrics import PROCESS, Registry

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name -> (ok, what was found); run at each /healthz request, from the server's threads.
HealthCheck = Callable[[], tuple[bool, str]]


class MetricsServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: Registry = PROCESS,
        health: dict[str, HealthCheck] | None = None,
    ) -> None:
        self.registry = registry
        self.health = dict(health or {})
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    owner._send(self, 200, CONTENT_TYPE, owner.registry.render().encode())
                elif path in ("/healthz", "/health"):
                    status, body = owner.check()
                    owner._send(self, status, "application/json", json.dumps(body).encode())
                else:
                    owner._send(self, 404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics: " + format, *args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise StalkError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror or exc})",
                "choose a free [metrics] port (STALK_METRICS_PORT), or set [metrics] enabled = false",
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="s-talk-metrics", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> MetricsServer:
        self._thread.start()
        host, port = self.address
        log.info("metrics on http://%s:%d/metrics, health on /healthz", host, port)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()

    def check(self) -> tuple[int, dict[str, Any]]:
        checks: dict[str, dict[str, Any]] = {}
        for name, check in self.health.items():
            try:
                ok, detail = check()
            except Exception as exc:  # a failing check is an answer, not a broken endpoint
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            checks[name] = {"ok": ok, "detail": detail}
        healthy = all(c["ok"] for c in checks.values())
        return (200 if healthy else 503), {"status": "ok" if healthy else "failing", "checks": checks}

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
