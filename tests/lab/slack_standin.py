"""A loopback stand-in for the Slack Web API and ``response_url`` endpoints (DESIGN.md §11).

Usage::

    with SlackStandIn() as slack:          # starts on 127.0.0.1:<free port>, own thread
        settings = Settings(slack_api_url=slack.api_url, ...)
        url = slack.response_url("cmd1")   # give it to a slash-command payload
        ...
        post = slack.wait_for("chat.postMessage")        # blocks until one arrives
        slack.calls_to("response_url")                   # what was sent to response URLs
        slack.fail_next("chat.postMessage", "not_in_channel")

Every request is recorded as a :class:`Call` (method, params decoded from form or JSON,
``thread_ts``, token, time). Answers are ``{"ok": true, ...}`` with increasing ``ts`` values for
``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``, ``views.open``, ``auth.test``,
``files.getUploadURLExternal`` / ``files.completeUploadExternal`` and
``apps.connections.open``; any other method answers ``unknown_method``.

What Slack would reject is rejected, so tests catch limit violations: more than 50 blocks, a
section text over 3,000 characters (or empty), a header over 150, more than 10 fields or
context elements, a block that is not an object with a ``type`` -> ``invalid_blocks``; a
message with neither ``text`` nor blocks, or blocks without the ``text`` fallback
(stricter than Slack, which only warns) -> ``no_text``. The same checks apply to
``response_url`` posts (answered HTTP 400 ``invalid_blocks`` / ``no_text``).

Socket Mode: ``apps.connections.open`` answers ``ws://<stand-in>/socket``; the stand-in
accepts the websocket there, says ``hello`` and then plays Slack's side:
:meth:`SlackStandIn.send_slash_command` sends a ``slash_commands`` envelope and the client's
acknowledgement is recorded as a ``socket_ack`` call (``response_id`` = the envelope id,
``params`` = the ack's JSON). Pings are answered with pongs.

The server is started and stopped through this object (its own thread), never by name.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10

_TS_BASE = 1_700_000_000


@dataclass
class Call:
    """One recorded request. ``method`` is the Web API method (``chat.postMessage``) or
    ``response_url`` (then ``response_id`` is the ``<id>`` of ``/response/<id>``).
    ``params`` holds decoded parameters (``blocks`` parsed from JSON when sent as a string).
    ``answer`` is what the stand-in replied."""

    method: str
    params: dict[str, Any]
    token: str | None = None
    response_id: str | None = None
    at: float = field(default_factory=time.monotonic)
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def thread_ts(self) -> str | None:
        """The ``thread_ts`` the call was made with, if any."""
        v = self.params.get("thread_ts")
        return str(v) if v else None

    @property
    def text(self) -> str:
        """The ``text`` parameter ("" when absent)."""
        return str(self.params.get("text") or "")

    @property
    def blocks(self) -> list[dict[str, Any]]:
        """The ``blocks`` parameter, decoded ([] when absent)."""
        b = self.params.get("blocks")
        return b if isinstance(b, list) else []

    def all_text(self) -> str:
        """``text`` plus every text inside the blocks, for simple "contains" assertions."""
        return self.text + "\n" + "\n".join(_block_texts(self.blocks))


def _block_texts(blocks: list[Any]) -> list[str]:
    out: list[str] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            if isinstance(o.get("text"), str):
                out.append(o["text"])
            for v in o.values():
                if isinstance(v, dict | list):
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(blocks)
    return out


def validate_message(params: dict[str, Any]) -> str | None:
    """The Slack error code this message would get, or None when Slack would accept it."""
    blocks = params.get("blocks")
    text = params.get("text")
    if blocks is None:
        return None if text else "no_text"
    if not isinstance(blocks, list):
        return "invalid_blocks_format"
    if not text:
        return "no_text"
    if len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for b in blocks:
        if not isinstance(b, dict) or "type" not in b:
            return "invalid_blocks"
        kind = b["type"]
        if kind == "header":
            t = b.get("text") or {}
            if t.get("type") != "plain_text" or not 0 < len(t.get("text") or "") <= MAX_HEADER_TEXT:
                return "invalid_blocks"
        elif kind == "section":
            t = b.get("text")
            fields = b.get("fields") or []
            if t is None and not fields:
                return "invalid_blocks"
            if t is not None and not 0 < len(t.get("text") or "") <= MAX_SECTION_TEXT:
                return "invalid_blocks"
            if len(fields) > MAX_FIELDS or any(len(f.get("text") or "") > 2000 for f in fields):
                return "invalid_blocks"
        elif kind == "context":
            els = b.get("elements") or []
            if not els or len(els) > MAX_CONTEXT_ELEMENTS:
                return "invalid_blocks"
            if any(e.get("type") in ("mrkdwn", "plain_text")
                   and not 0 < len(e.get("text") or "") <= MAX_SECTION_TEXT for e in els):
                return "invalid_blocks"
        if len(str(b.get("block_id", ""))) > 255:
            return "invalid_blocks"
    return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        head = (f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.wfile.write(head + body)  # head and body in one write (DESIGN.md §11 notes)
        self.wfile.flush()

    def do_GET(self) -> None:
        if (urlsplit(self.path).path == "/socket"
                and (self.headers.get("Upgrade") or "").lower() == "websocket"):
            self._websocket()
            return
        self._send(404, b'{"ok": false, "error": "unknown_method"}')

    # -- websocket (RFC 6455, just what Slack's Socket Mode needs) --

    def _websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key") or ""
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                          ).encode())
        self.wfile.flush()
        conn = _WebSocket(self)
        standin = self.server.standin
        standin._ws_opened(conn)
        conn.send_text(json.dumps({"type": "hello", "num_connections": 1,
                                   "connection_info": {"app_id": "A0K8SNET"},
                                   "debug_info": {"host": "standin"}}))
        try:
            while True:
                frame = conn.read_frame()
                if frame is None:
                    break
                opcode, data = frame
                if opcode == 0x8:  # close
                    conn.send_frame(0x8, data[:2])
                    break
                if opcode == 0x9:  # ping
                    conn.send_frame(0xA, data)
                elif opcode == 0x1:
                    standin._ws_message(data.decode("utf-8"))
        finally:
            standin._ws_closed(conn)
        self.close_connection = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""  # read the body before answering
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        params: dict[str, Any]
        if ctype == "application/json":
            try:
                params = json.loads(raw or b"{}")
            except ValueError:
                params = {"_unparsed": raw.decode("utf-8", "replace")}
        else:
            params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        for key in ("blocks", "attachments"):
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else params.get("token")
        path = urlsplit(self.path).path
        standin = self.server.standin
        if path.startswith("/response/"):
            call = Call("response_url", params, token=None, response_id=path[len("/response/"):])
            error = validate_message(params)
            call.answer = {"ok": error is None, **({"error": error} if error else {})}
            standin._record(call)
            if error:
                self._send(400, error.encode(), "text/plain")
            else:
                self._send(200, b"ok", "text/plain")
            return
        if path.startswith("/api/"):
            method = path[len("/api/"):]
            call = Call(method, params, token=token)
            call.answer = standin._answer(method, params)
            standin._record(call)
            self._send(200, json.dumps(call.answer).encode())
            return
        self._send(404, b'{"ok": false, "error": "not_found"}')


class _WebSocket:
    """The server side of one websocket connection (unmasked frames out, masked in)."""

    def __init__(self, handler: _Handler) -> None:
        self.rfile = handler.rfile
        self.wfile = handler.wfile
        self.sock: socket.socket = handler.connection
        self._lock = threading.Lock()

    def _read(self, n: int) -> bytes | None:
        data = self.rfile.read(n)
        return data if data is not None and len(data) == n else None

    def read_frame(self) -> tuple[int, bytes] | None:
        try:
            head = self._read(2)
            if head is None:
                return None
            opcode, masked, length = head[0] & 0x0F, head[1] & 0x80, head[1] & 0x7F
            if length == 126:
                ext = self._read(2)
                if ext is None:
                    return None
                length = struct.unpack("!H", ext)[0]
            elif length == 127:
                ext = self._read(8)
                if ext is None:
                    return None
                length = struct.unpack("!Q", ext)[0]
            mask = self._read(4) if masked else b"\0\0\0\0"
            payload = self._read(length) if length else b""
            if mask is None or payload is None:
                return None
            return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        except (OSError, ValueError):
            return None

    def send_frame(self, opcode: int, data: bytes) -> None:
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        with self._lock:
            self.wfile.write(head + data)
            self.wfile.flush()

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode("utf-8"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send_frame(0x8, struct.pack("!H", 1001))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: SlackStandIn

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class SlackStandIn:
    """The stand-in server. ``api_url`` is the Web API base URL
    (``http://127.0.0.1:<port>/api/``) for ``WebClient(base_url=...)`` / ``K8SNET_SLACK_API_URL``;
    :meth:`response_url` builds response URLs; ``calls`` is every request, in order."""

    BOT_USER_ID = "U0K8SNETBOT"
    BOT_ID = "B0K8SNETBOT"
    TEAM_ID = "T0K8SNET"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = _Server((host, 0), _Handler)
        self._server.standin = self
        self.host = host
        self.port: int = self._server.server_address[1]
        self.calls: list[Call] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._failures: dict[str, list[str]] = {}
        self._thread: threading.Thread | None = None
        self._sockets: list[_WebSocket] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL (ends with ``/``)."""
        return f"{self.base_url}/api/"

    def response_url(self, response_id: str) -> str:
        """A ``response_url`` whose posts are recorded with ``response_id``."""
        return f"{self.base_url}/response/{response_id}"

    def start(self) -> SlackStandIn:
        """Serve on a background thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"slack-standin-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close websockets and the listening socket (idempotent)."""
        with self._cond:
            sockets, self._sockets = list(self._sockets), []
        for ws in sockets:
            ws.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ behaviour

    def fail_next(self, method: str, error: str) -> None:
        """Make the next call of ``method`` answer ``{"ok": false, "error": error}``."""
        with self._cond:
            self._failures.setdefault(method, []).append(error)

    def reset(self) -> None:
        """Forget recorded calls and pending failures."""
        with self._cond:
            self.calls.clear()
            self._failures.clear()

    def _next_ts(self) -> str:
        with self._cond:
            self._seq += 1
            return f"{_TS_BASE + self._seq}.{self._seq:06d}"

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            queued = self._failures.get(method)
            if queued:
                return {"ok": False, "error": queued.pop(0)}
        channel = params.get("channel")
        if method == "auth.test":
            return {"ok": True, "url": "https://k8snet-lab.slack.com/", "team": "k8snet lab",
                    "user": "k8snet", "team_id": self.TEAM_ID, "user_id": self.BOT_USER_ID,
                    "bot_id": self.BOT_ID, "is_enterprise_install": False}
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            error = validate_message(params)
            if error:
                return {"ok": False, "error": error}
            if method == "chat.postEphemeral":
                return {"ok": True, "message_ts": self._next_ts()}
            ts = params.get("ts") if method == "chat.update" else self._next_ts()
            message = {"type": "message", "user": self.BOT_USER_ID, "bot_id": self.BOT_ID,
                       "text": params.get("text"), "ts": ts}
            if params.get("thread_ts"):
                message["thread_ts"] = params["thread_ts"]
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "views.open":
            return {"ok": True, "view": {"id": f"V{self._next_ts().replace('.', '')}",
                                         **(params.get("view") or {})}}
        if method == "files.getUploadURLExternal":
            fid = f"F{self._next_ts().replace('.', '')}"
            return {"ok": True, "upload_url": f"{self.base_url}/upload/{fid}", "file_id": fid}
        if method == "files.completeUploadExternal":
            return {"ok": True, "files": [{"id": f.get("id")} for f in
                                          json.loads(params.get("files") or "[]")]}
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://{self.host}:{self.port}/socket"}
        return {"ok": False, "error": "unknown_method"}

    # ------------------------------------------------------------------ Socket Mode

    def _ws_opened(self, ws: _WebSocket) -> None:
        with self._cond:
            self._sockets.append(ws)
            self._cond.notify_all()

    def _ws_closed(self, ws: _WebSocket) -> None:
        with self._cond:
            if ws in self._sockets:
                self._sockets.remove(ws)
            self._cond.notify_all()

    def _ws_message(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = {"_unparsed": text}
        call = Call("socket_ack", msg if isinstance(msg, dict) else {"_value": msg},
                    response_id=str(msg.get("envelope_id")) if isinstance(msg, dict) else None)
        payload = call.params.get("payload")
        if isinstance(payload, dict) and ("text" in payload or "blocks" in payload):
            error = validate_message(payload)
            call.answer = {"ok": error is None, **({"error": error} if error else {})}
        else:
            call.answer = {"ok": True}
        self._record(call)

    def wait_socket(self, timeout: float = 10.0) -> None:
        """Block until a Socket Mode client is connected (AssertionError after timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._sockets:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no Socket Mode connection within {timeout}s")
                self._cond.wait(left)

    def send_envelope(self, kind: str, payload: dict[str, Any],
                      retry_attempt: int = 0) -> str:
        """Send one Socket Mode envelope of type ``kind`` to the connected client; returns its
        ``envelope_id`` (the client's ack is recorded as ``socket_ack`` with that id)."""
        self.wait_socket()
        envelope_id = str(uuid.uuid4())
        with self._cond:
            ws = self._sockets[-1]
        ws.send_text(json.dumps({"envelope_id": envelope_id, "type": kind, "payload": payload,
                                 "accepts_response_payload": True,
                                 "retry_attempt": retry_attempt,
                                 "retry_reason": "timeout" if retry_attempt else ""}))
        return envelope_id

    def send_slash_command(self, payload: dict[str, Any]) -> str:
        """Send a ``slash_commands`` envelope (``payload`` as Slack's form fields)."""
        return self.send_envelope("slash_commands", payload)

    # ------------------------------------------------------------------ queries

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of ``method`` (``response_url`` for response URL posts), in order."""
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0,
                 where: Any = None) -> Call:
        """Block until ``count`` calls of ``method`` (matching ``where(call)`` when given)
        were recorded; returns the ``count``-th. AssertionError after ``timeout`` seconds,
        listing what was recorded."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.method == method
                         and (where is None or where(c))]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = ", ".join(c.method for c in self.calls) or "nothing"
                    raise AssertionError(f"expected {count} {method} call(s) within {timeout}s; "
                                         f"recorded: {seen}")
                self._cond.wait(left)


__all__ = ["Call", "SlackStandIn", "validate_message"]
