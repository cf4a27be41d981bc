"""The HTTP service (``nw.serve``, ``netwright serve``): FastAPI on uvicorn.

``POST /predict`` answers ``{"rows": [...]}`` (tables, and images or sounds as arrays),
``{"texts": [...]}`` (text runs) or uploaded files (form field ``files``: images, sounds, a
.txt of texts); ``GET /health``; ``GET /metadata`` (input schema, classes, versions, the run's
scores, batching figures); OpenAPI docs at ``/docs``. Requests are checked before the model
sees them (:mod:`.requests`); concurrent ones are batched (:mod:`.batching`).
"""


import inspect
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any

from ..errors import ConfigError
from .batching import Batcher
from .model import ServedModel
from .requests import (BadRequest, files_to_inputs, parse_json, rows_from_json, texts_from_files,
                       texts_from_json)

__all__ = ["serve", "app_from_environment", "run_server", "ENV_OPTIONS"]

ENV_OPTIONS = "NETWRIGHT_SERVE_OPTIONS"
log = logging.getLogger("netwright.serve")

_PARSE_INLINE = 256 * 1024  # bodies up to this size are parsed on the event loop (< 5 ms)


def _require_fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise ConfigError("serving needs FastAPI and uvicorn. Fix: pip install "
                          "'netwright[serve]'.") from None
    return fastapi


class _BodyLimit:
    """Refuses a body over ``limit`` bytes with 413: at once from Content-Length, or as soon as
    a streamed (chunked) body passes it; the rest is never read into memory."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        mb = self.limit / 2 ** 20
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = -1
            if size < 0:
                await _send_json(send, 400, BadRequest(
                    400, "body", f"Content-Length {length.decode('latin-1')[:40]!r} is not a "
                                 f"number of bytes.").body())
                return
            if size > self.limit:
                await _send_json(send, 413, BadRequest(
                    413, "body", f"the request body ({size / 2 ** 20:.1f} MB) is over this "
                                 f"service's limit of {mb:g} MB (--max-body-mb). Fix: send fewer "
                                 f"rows per request.").body())
                return
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # raised inside the endpoint: answered as a 413
                    raise BadRequest(413, "body", f"the request body is over this service's "
                                                  f"limit of {mb:g} MB (--max-body-mb). Fix: send "
                                                  f"fewer rows per request.")
            return message

        await self.app(scope, limited, send)


async def _send_json(send: Any, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})


_REQUEST_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"oneOf": [
                {"type": "object", "required": ["rows"], "properties": {"rows": {
                    "type": "array", "description": "One sample per item: a list of numbers (flat, "
                    "or nested in the model's input shape) or an object keyed by feature name.",
                    "items": {}}}},
                {"type": "object", "required": ["texts"], "properties": {"texts": {
                    "type": "array", "items": {"type": "string"}, "description": "Text runs."}}},
            ]}, "example": {"rows": [[0.1, 0.2, 0.3]]}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {"files": {
                "type": "array", "items": {"type": "string", "format": "binary"},
                "description": "Image or sound files (a .txt of texts for text runs)."}}}},
        },
    },
    "responses": {
        "200": {"description": "Classification: labels, probabilities (one per class, in "
                               "'classes' order); regression: values.",
                "content": {"application/json": {"example": {
                    "labels": ["7"], "probabilities": [[0.0, 0.01, 0.99]], "classes": ["1", "2", "7"]}}}},
        "400": {"description": "The body is not JSON."},
        "413": {"description": "Too many rows, or a body over the size limit."},
        "415": {"description": "An upload of a file kind this run does not read."},
        "422": {"description": "A field of the wrong shape, type or value (named in 'field')."},
    },
}


def serve(run_dir: str | os.PathLike, *, runtime: str = "onnx", max_batch: int = 64,
          max_wait_ms: float = 2.0, batching: bool = True, max_rows: int = 1024,
          max_body_mb: float = 8.0, max_text_chars: int = 100_000, max_files: int = 64,
          threads: int | None = None, trust_code: bool = False) -> Any:
    """The FastAPI app serving a run directory (run it with uvicorn, mount it in your own app,
    or test it with ``httpx.ASGITransport``). The model is loaded now, so a bad run directory
    fails here, not on the first request.

    ``runtime``: ``"onnx"`` (``RUN_DIR/exports/model.onnx``, exported and verified first when
    missing) or ``"torch"``. ``max_batch``/``max_wait_ms``: dynamic batching (``batching=False``
    answers one request per model call). ``max_rows``, ``max_body_mb``, ``max_text_chars`` and
    ``max_files`` bound one request. ``trust_code``: allow a model class from outside torch,
    torchvision and netwright to be imported.

    >>> serve("no/such/run")
    Traceback (most recent call last):
    ...
    netwright.errors.ConfigError: run directory 'no/such/run' does not exist. Fix: pass the folder `netwright train` printed.
    """
    fastapi = _require_fastapi()
    from starlette.responses import JSONResponse, Response

    for name, value, low in (("max_batch", max_batch, 1), ("max_rows", max_rows, 1),
                             ("max_files", max_files, 1), ("max_text_chars", max_text_chars, 1)):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}: expected a whole number ≥ {low}; received {value!r}.")
    if not max_body_mb > 0 or not max_wait_ms >= 0:
        raise ConfigError(f"max_body_mb must be > 0 and max_wait_ms ≥ 0; received {max_body_mb!r} "
                          f"and {max_wait_ms!r}.")
    model = ServedModel(run_dir, runtime=runtime, trust_code=trust_code, threads=threads)
    batcher = Batcher(model, max_batch=max_batch, max_wait_ms=max_wait_ms, enabled=batching,
                      collate=model.collate)
    schema = model.schema
    started = time.time()

    @asynccontextmanager
    async def lifespan(_: Any):
        yield
        batcher.close()

    name = str(model.config.get("name") or model.run_dir.name)
    app = fastapi.FastAPI(title=f"netwright: {name}", version=model.versions().get("netwright") or "",
                          description=f"Predictions of the netwright run {name!r} "
                                      f"({model.task}, {schema.kind} input, {runtime} runtime).",
                          lifespan=lifespan)
    app.add_middleware(_BodyLimit, limit=int(max_body_mb * 2 ** 20))
    app.state.model, app.state.batcher = model, batcher

    @app.exception_handler(BadRequest)
    async def bad_request(_: Any, exc: BadRequest) -> Any:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(Exception)
    async def failure(_: Any, exc: Exception) -> Any:  # the model failed on checked input
        log.error("predict failed: %s: %s", type(exc).__name__, exc)
        return JSONResponse({"detail": f"the model failed: {exc}"}, status_code=500)

    async def read_uploads(request: Any) -> tuple[list[str], Any, list]:
        from starlette.concurrency import run_in_threadpool

        try:
            form = await request.form(max_files=max_files, max_fields=8)
        except BadRequest:
            raise
        except Exception as exc:  # noqa: BLE001 - the multipart parser's own error kinds
            detail = str(getattr(exc, "detail", exc))
            if "Too many files" in detail:
                raise BadRequest(413, "files", f"more than {max_files} files in one request (its "
                                               f"max_files). Fix: send them in several requests.") from None
            raise BadRequest(400, "body", f"the multipart body cannot be read ({detail}). Fix: "
                                          f"send the files as the form field 'files'.") from None
        uploads = []
        try:
            for key, item in form.multi_items():
                if key != "files" or isinstance(item, str):
                    raise BadRequest(422, key, f"unknown form field {key!r}; upload the files as "
                                               f"the field 'files' (curl -F files=@digit.png).")
                uploads.append((item.filename or f"upload{len(uploads)}", await item.read()))
        finally:
            await form.close()
        if not uploads:
            raise BadRequest(422, "files", "the form holds no files; upload them as the field 'files'.")
        notes: list = []
        if schema.kind == "text":
            texts = texts_from_files(uploads, errors=model.config["data"].get("encoding_errors")
                                     or "strict")
            texts = texts_from_json({"texts": texts}, max_rows, max_text_chars)
            return texts, _encode(texts, notes), notes
        if schema.kind not in ("images", "audio"):
            raise BadRequest(415, "files", f"this run was trained on a table of {schema.size} "
                             f"features; send them as JSON {{\"rows\": [...]}}, not as files.")
        names, X = await run_in_threadpool(files_to_inputs, uploads, schema, model.meta, notes)
        return names, X, notes

    def _encode(texts: list[str], notes: list) -> Any:
        from ..data.tokenize import encode_texts

        limit = int(model.meta["text"].get("max_length") or 256)
        encoded = encode_texts(model.tokenizer, texts, limit)
        if encoded.truncated:
            notes.append(f"{encoded.truncated} text(s) longer than {limit} tokens were cut to it")
        return encoded.padded()

    def read_json(body: bytes, notes: list) -> Any:
        if schema.kind == "text":
            texts = texts_from_json(parse_json(body, '{"texts": ["a text", ...]}'), max_rows,
                                    max_text_chars)
            return _encode(texts, notes)  # the texts are the client's own: not echoed back
        return rows_from_json(parse_json(body, '{"rows": [[...], ...]}'), schema, max_rows,
                              booleans=b"true" in body or b"false" in body)

    @app.post("/predict", openapi_extra=_REQUEST_DOC, summary="Predict for rows, texts or files")
    async def predict(request: fastapi.Request) -> Any:
        from starlette.concurrency import run_in_threadpool

        notes: list = []
        given = None
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            given, X, notes = await read_uploads(request)
        else:
            body = await request.body()
            # A large body is parsed on a worker thread: the event loop keeps answering others.
            X = (read_json(body, notes) if len(body) < _PARSE_INLINE
                 else await run_in_threadpool(read_json, body, notes))
        out = await batcher.submit(X)
        answer = model.answer(out)
        if given is not None:
            answer = {"texts" if schema.kind == "text" else "files": given} | answer
        if notes:
            answer["notes"] = notes
        return Response(json.dumps(answer, allow_nan=False).encode(), media_type="application/json")

    @app.get("/health", summary="Is the service up")
    async def health() -> Any:
        return {"status": "ok", "uptime_s": round(time.time() - started, 1)}

    @app.get("/metadata", summary="What the model takes and gives, and how it was trained")
    async def metadata() -> Any:
        return {"run": name, "task": model.task, "export_stale": model.export_stale,
                "classes": model.classes, "input": schema.describe(), "runtime": runtime,
                "versions": model.versions(), "results": model.results(),
                "batching": {"enabled": batcher.enabled, "max_batch": batcher.max_batch,
                             "max_wait_ms": max_wait_ms, **batcher.stats.describe()},
                "limits": {"max_rows": max_rows, "max_body_mb": max_body_mb,
                           "max_text_chars": max_text_chars, "max_files": max_files}}

    return app


def app_from_environment() -> Any:
    """The app for one of uvicorn's worker processes (``--workers N``): ``serve``'s arguments
    come as JSON in the environment variable ``NETWRIGHT_SERVE_OPTIONS``."""
    raw = os.environ.get(ENV_OPTIONS)
    if not raw:
        raise ConfigError(f"{ENV_OPTIONS} is not set; `netwright serve` sets it for its workers.")
    options = json.loads(raw)
    return serve(options.pop("run_dir"), **options)


def run_server(run_dir: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8000,
               workers: int = 1, access_log: bool = False, log_level: str = "info",
               **options: Any) -> None:
    """Serve until stopped (Ctrl-C): one process, or ``workers`` processes that each load the
    model and share the port."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("serving needs uvicorn. Fix: pip install 'netwright[serve]'.") from None
    known = sorted(p for p in inspect.signature(serve).parameters if p != "run_dir")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"serve: unknown option(s) {unknown}; known: {known}.")
    if workers < 1:
        raise ConfigError(f"--workers: expected 1 or more; received {workers}.")
    if workers > 1 and not options.get("threads"):
        options["threads"] = max(1, (os.cpu_count() or 1) // workers)
    app = serve(run_dir, **options)  # checks the run (and exports it) before any worker starts
    settings = dict(host=host, port=port, access_log=access_log, log_level=log_level,
                    timeout_graceful_shutdown=5)
    if workers == 1:
        uvicorn.run(app, **settings)
        return
    app.state.batcher.close()
    os.environ[ENV_OPTIONS] = json.dumps({"run_dir": str(run_dir), **options})
    uvicorn.run("netwright.serving.app:app_from_environment", factory=True, workers=workers,
                **settings)
