"""The Bot API double (tests/botapi.py) served over real HTTP, for tests that run the bot as a process.

``python -m bot run`` with ``TELEGRAM_API_BASE_URL=<FakeTelegram.base_url>`` talks to this server through
PTB's own httpx request, exactly as it would talk to api.telegram.org. Each ``POST /bot<token>/<method>``
is decoded (JSON, form-encoded or multipart, as httpx sends them) into the parameters the double
expects and answered by :meth:`BotAPI.do_request`, so answers, errors and the stored chat are the
double's. The server runs uvicorn in a daemon thread on 127.0.0.1 and a free port::

    with FakeTelegram() as telegram:
        env["TELEGRAM_API_BASE_URL"] = telegram.base_url
        ...
        telegram.wait_for(lambda api: api.calls_of("setWebhook"))
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import InputFile
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from tests.botapi import BotAPI

T = TypeVar("T")

# Parameters that are strings in the Bot API. PTB sends every other value JSON-encoded in a form field.
STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "callback_query_id",
        "inline_message_id",
        "language_code",
        "ip_address",
        "file_id",
    }
)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (for a subprocess that binds it itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _value(name: str, raw: str) -> Any:
    if name in STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """Form fields and uploaded files of a multipart/form-data body (stdlib email parser)."""
    head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        if (filename := part.get_filename()) is not None:
            files[name] = (filename, content)
        else:
            fields[name] = _value(name, content.decode(part.get_content_charset() or "utf-8"))
    return fields, files


async def read_body(request: Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """(parameters, files) of a Bot API request as PTB's httpx request or any HTTP client sends it."""
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    params: dict[str, Any] = dict(request.query_params)
    if not body:
        return {k: _value(k, v) for k, v in params.items()}, {}
    if content_type.startswith("application/json"):
        return {**params, **json.loads(body)}, {}
    if content_type.startswith("multipart/form-data"):
        fields, files = _multipart(content_type, body)
        return {**params, **fields}, files
    form = parse_qsl(body.decode(), keep_blank_values=True)
    return {k: _value(k, v) for k, v in [*params.items(), *form]}, {}


def request_data(params: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> RequestData:
    """The RequestData PTB would have handed to its request object for these parameters and files."""
    parameters = [RequestParameter(name, value, None) for name, value in params.items()]
    parameters += [
        RequestParameter(name, None, [InputFile(content, filename=filename)])
        for name, (filename, content) in files.items()
    ]
    return RequestData(parameters)


class FakeTelegram:
    """A running HTTP server answering the Bot API with a :class:`BotAPI`; use it as a context manager."""

    def __init__(self, api: BotAPI | None = None) -> None:
        self.api = api or BotAPI()
        self.requests: list[str] = []  # Bot API method names (or file paths) in order of arrival
        self.delays: dict[str, float] = {}  # method name -> seconds to wait before answering it
        self._lock = asyncio.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._method, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="fake-telegram", daemon=True)

    @property
    def base_url(self) -> str:
        """For TELEGRAM_API_BASE_URL: ``http://127.0.0.1:<port>/bot`` (PTB appends ``<token>/<method>``)."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # -- running ----------------------------------------------------------------------------------------
    def _serve(self) -> None:
        self._server.run(sockets=[self._sock])

    def start(self) -> FakeTelegram:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Telegram server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_for(self, check: Callable[[BotAPI], T], *, timeout: float = 10.0) -> T:
        """Poll ``check(api)`` until it returns something truthy (returned), or fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not (result := check(self.api)):
            if time.monotonic() > deadline:
                methods = [c.method for c in self.api.calls]
                raise AssertionError(f"timed out waiting on the fake Telegram; calls so far: {methods}")
            time.sleep(0.02)
        return result

    # -- endpoints --------------------------------------------------------------------------------------
    async def _method(self, request: Request) -> Response:
        name = request.path_params["method"]
        self.requests.append(name)
        params, files = await read_body(request)
        if delay := self.delays.get(name):  # e.g. to have an update in flight at a chosen moment
            await asyncio.sleep(delay)
        async with self._lock:  # the double is not made for concurrent calls
            status, body = await self.api.do_request(
                str(request.url), "POST", request_data=request_data(params, files)
            )
        return Response(body, status_code=status, media_type="application/json")

    async def _file(self, request: Request) -> Response:
        self.requests.append(request.url.path)
        status, body = await self.api.do_request(str(request.url), "GET")
        return Response(body, status_code=status)
