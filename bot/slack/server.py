"""Serving the Bolt app: HTTP mode (waitress) or Socket Mode (no public URL needed).

- :func:`make_wsgi_app`: the WSGI application: ``POST /slack/events`` (Bolt, every request's
  signature checked), ``GET /healthz`` (the process answers) and ``GET /readyz`` (it takes
  work: 503 while stopping).
- :func:`start_http_server`: waitress on a background thread, stoppable from another thread
  (tests, and the health endpoints in Socket Mode).
- :func:`serve`: what ``k8snet serve`` runs; blocks until SIGINT/SIGTERM, then stops
  accepting requests and lets running status checks, plans and executions finish. With a
  ``RunService`` it first marks runs left ``running`` by a dead process as ``interrupted``
  (announced in their plan messages) and then expires unapproved plans every
  ``expiry_interval`` seconds.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from waitress import wasyncore
from waitress.server import create_server

from bot.engine import metrics
from bot.engine.core import Engine
from bot.engine.service import RunService
from bot.sdk.errors import SettingsError
from bot.settings import Settings
from bot.slack.app import DEFAULT_UI_WORKERS, DEFAULT_WORKERS, build_app

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["EVENTS_PATH", "RunningServer", "make_wsgi_app", "serve", "start_http_server"]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
"""Where Slack sends slash commands and interactivity (the manifest's request URL)."""
HTTP_THREADS = 8
"""waitress worker threads; each request only waits for the (fast) ack."""


def make_wsgi_app(app: App, *, ready: Callable[[], bool] | None = None) -> WSGIApplication:
    """The WSGI application serving ``app`` at :data:`EVENTS_PATH` plus ``/healthz``,
    ``/readyz`` (``ready()`` false: 503) and Prometheus ``/metrics``. Anything else: 404."""
    bolt = SlackRequestHandler(app, path=EVENTS_PATH)

    def plain(start_response: StartResponse, status: str, body: str) -> Iterable[bytes]:
        data = body.encode()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(data)))])
        return [data]

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == EVENTS_PATH:
            if method != "POST":
                return plain(start_response, "405 Method Not Allowed", "POST only\n")
            return bolt(environ, start_response)
        if path == "/metrics" and method in ("GET", "HEAD"):
            data, ctype = metrics.exposition()
            start_response("200 OK", [("Content-Type", ctype),
                                      ("Content-Length", str(len(data)))])
            return [data]
        if path == "/healthz" and method in ("GET", "HEAD"):
            return plain(start_response, "200 OK", "ok\n")
        if path == "/readyz" and method in ("GET", "HEAD"):
            if ready is None or ready():
                return plain(start_response, "200 OK", "ready\n")
            return plain(start_response, "503 Service Unavailable", "not ready\n")
        return plain(start_response, "404 Not Found", "not found\n")

    return wsgi


class RunningServer:
    """A waitress server running on its own thread; ``port`` is the bound port (useful with
    port 0). :meth:`stop` closes every socket and joins the threads."""

    def __init__(self, wsgi: WSGIApplication, host: str, port: int,
                 threads: int = HTTP_THREADS) -> None:
        # A single host:port gives a TcpWSGIServer (typeshed only knows the base union).
        self._server: Any = cast(Any, create_server(wsgi, host=host, port=port, threads=threads,
                                                    clear_untrusted_proxy_headers=True))
        self.host = host
        self.port: int = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._server.run, name=f"http-{self.port}",
                                        daemon=True)
        self._stopped = False

    def start(self) -> RunningServer:
        """Start serving on the background thread (once; later calls do nothing); returns
        self."""
        if not self._thread.is_alive() and not self._stopped:
            self._thread.start()
        return self

    def wait(self) -> None:
        """Block until the server stops."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close connections, stop the worker threads. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        server = self._server
        # First let the worker threads finish the responses they are writing (they wake the
        # loop through the trigger, which must still be open), then close every channel from
        # inside the loop thread: the loop ends when its map is empty, without racing
        # select() on closed sockets.
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
        if self._thread.is_alive():
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            self._thread.join(timeout)
        else:
            wasyncore.close_all(server._map)

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_http_server(wsgi: WSGIApplication, host: str = "127.0.0.1", port: int = 0,
                      threads: int = HTTP_THREADS) -> RunningServer:
    """Serve ``wsgi`` with waitress on a background thread (port 0: any free port)."""
    return RunningServer(wsgi, host, port, threads).start()


def _check_settings(settings: Settings, socket_mode: bool) -> str | None:
    """The app token in Socket Mode; SettingsError naming what is missing."""
    if settings.slack_bot_token is None:
        raise SettingsError("k8snet serve needs the Slack bot token: set "
                            "K8SNET_SLACK_BOT_TOKEN (xoxb-...).", key="slack_bot_token")
    if socket_mode:
        if settings.slack_app_token is None:
            raise SettingsError("Socket Mode needs the Slack app-level token: set "
                                "K8SNET_SLACK_APP_TOKEN (xapp-..., scope connections:write).",
                                key="slack_app_token")
        token = settings.slack_app_token.get_secret_value()
        if not token.startswith("xapp-"):
            raise SettingsError("K8SNET_SLACK_APP_TOKEN must be an app-level token starting "
                                "with xapp- (not a bot or user token).", key="slack_app_token")
        return token
    if settings.slack_signing_secret is None:
        raise SettingsError("Slack HTTP mode needs the signing secret: set "
                            "K8SNET_SLACK_SIGNING_SECRET (Basic Information > App Credentials).",
                            key="slack_signing_secret")
    return None


def _expire_loop(runs: RunService, stopping: threading.Event, interval: float) -> None:
    """Expire plans past their approval window until ``stopping`` is set."""
    while not stopping.wait(interval):
        try:
            expired = runs.expire_due()
            if expired:
                log.info("expired %d unapproved plans", len(expired))
        except Exception:
            log.exception("expiring unapproved plans failed")


def serve(engine: Engine, settings: Settings, *, port: int, host: str = "0.0.0.0",
          socket_mode: bool = False, stop: threading.Event | None = None,
          runs: RunService | None = None, client: WebClient | None = None,
          attach_message: Callable[[str, str, str], None] | None = None,
          expiry_interval: float = 30.0) -> None:
    """Run the Slack bot until SIGINT/SIGTERM (or until ``stop`` is set, for tests and
    embedding; signal handlers are only installed on the main thread).

    HTTP mode: waitress on ``host:port`` serving :func:`make_wsgi_app` (Slack's request URL
    is ``https://<your host>/slack/events``). Socket Mode: a websocket to Slack (no public
    URL), with ``/healthz`` and ``/readyz`` still on ``host:port`` for Kubernetes probes.
    ``runs`` enables the runbook commands (see :func:`build_app`; ``attach_message`` stores
    where each plan was posted); ``client`` is the WebClient to use (default: one from the
    settings).

    Raises SettingsError (naming ``K8SNET_SLACK_BOT_TOKEN``, ``K8SNET_SLACK_SIGNING_SECRET`` or
    ``K8SNET_SLACK_APP_TOKEN``) before anything starts when a needed secret is missing.
    """
    app_token = _check_settings(settings, socket_mode)
    executor = ThreadPoolExecutor(max_workers=DEFAULT_WORKERS, thread_name_prefix="k8snet-status")
    ui_executor = ThreadPoolExecutor(max_workers=DEFAULT_UI_WORKERS,
                                     thread_name_prefix="k8snet-ui")
    stopping = stop if stop is not None else threading.Event()
    app = build_app(engine, settings, executor=executor, socket_mode=socket_mode, runs=runs,
                    client=client, ui_executor=ui_executor, attach_message=attach_message)
    expiry: threading.Thread | None = None
    if runs is not None:
        try:
            recovered = runs.recover_interrupted()
            if recovered:
                log.warning("%d runs were interrupted by a stopped process: %s",
                            len(recovered), ", ".join(v.run.id for v in recovered))
        except Exception:
            log.exception("looking for interrupted runs failed")
        expiry = threading.Thread(target=_expire_loop, args=(runs, stopping, expiry_interval),
                                  name="k8snet-expiry", daemon=True)
        expiry.start()
    wsgi = make_wsgi_app(app, ready=lambda: not stopping.is_set())
    http = RunningServer(wsgi, host, port)
    handler: Any = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stopping.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        http.start()
        if socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            handler = SocketModeHandler(app, app_token)
            handler.connect()
            log.info("k8snet connected to Slack in Socket Mode; health on %s:%s",
                     host, http.port)
        else:
            log.info("k8snet serving Slack on http://%s:%s%s", host, http.port, EVENTS_PATH)
        while not stopping.wait(0.5):
            pass
    finally:
        stopping.set()
        if handler is not None:
            handler.close()
        http.stop()
        executor.shutdown(wait=True)  # let running reports and plans finish and post
        ui_executor.shutdown(wait=True)
        if runs is not None:
            runs.shutdown(wait=True)  # let running executions finish
            notifier = getattr(runs, "notifier", None)
            if notifier is not None and hasattr(notifier, "close"):
                notifier.close()
        if expiry is not None:
            expiry.join(5)
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)
