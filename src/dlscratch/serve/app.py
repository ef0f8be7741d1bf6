"""The web app of ``dlscratch serve``: pages, JSON API and the live training stream.

Built on FastAPI (an ASGI app on Starlette, served by uvicorn): a well-kept,
widely used stack that gives the JSON API OpenAPI documentation for free
(``/docs``), turns malformed request bodies into 422 answers by declaration,
and streams server-sent events without extra parts. The pages are plain HTML,
CSS and JavaScript files in ``static/``, served by the app itself: no CDN, no
build step, and they work offline.

Routes (see the README for the API's request and answer formats):

========================================  ================================================
``GET /``, ``/train``, ``/runs``          the draw, train and runs pages
``GET /docs``, ``/openapi.json``          the API's documentation (OpenAPI)
``GET /api/model``                        the model being served
``POST /api/model``                       serve another run's model (``{"run": NAME}``)
``POST /api/predict``                     classify a PNG/JPEG body or ``{"pixels": [...]}``
``GET /api/train/options``                choices and defaults of the train form
``GET /api/train``                        state of the current (or last) training run
``POST /api/train``                       start a run (202; 409 while one runs)
``POST /api/train/stop``                  interrupt it like Ctrl-C (checkpoint saved)
``GET /api/train/events``                 server-sent events of the run
``GET /api/runs``                         the run folders, newest first
``GET /api/runs/{name}``                  one run folder's summary
``GET /api/runs/{name}/history``          its ``history.csv`` as JSON
``GET /runs/{name}/files/{file}``         one of its figures (PNG/JPEG)
``GET /report/``                          the experiment report, when there is one
========================================  ================================================

The app has no authentication: ``dlscratch serve`` binds to 127.0.0.1 unless told
otherwise, and then only answers requests whose ``Host`` is a loopback name
(so a web page elsewhere cannot reach it through DNS rebinding); state-changing
requests from another origin are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from dlscratch.serve.model import (
    MAX_PIXELS,
    MAX_UPLOAD_BYTES,
    ServedModel,
    load_served_model,
    pixels_from_json,
    prepare_upload,
)
from dlscratch.serve.runs import (
    DEFAULT_RUNS,
    FIGURE_SUFFIXES,
    REPORT_INDEX,
    UnsafePathError,
    is_run_folder,
    list_runs,
    read_history,
    run_summary,
    safe_child,
    safe_relative,
)
from dlscratch.serve.training import TrainingBusyError, TrainingJob

STATIC = Path(__file__).parent / "static"
IMAGE_TYPES = ("image/png", "image/jpeg")
JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
#: Host names a server bound to a loopback address answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Content-Security-Policy of the pages: everything from this server, nothing inline.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
#: Seconds between keep-alive comments on the event stream.
KEEPALIVE_S = 15.0


class TrainOptions(BaseModel):
    """The train form: each field is a ``dlscratch train`` option (None: its default)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = None
    hidden: str | list[int] | None = None
    activation: str | None = None
    init: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    batchnorm: bool = False
    dropout: float | None = None
    weight_decay: float | None = None
    limit: int | None = None
    seed: int | None = None
    schedule: str | None = None


class ModelChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str


def create_app(
    model: ServedModel | str | Path | None = None,
    runs_dir: str | Path = DEFAULT_RUNS,
    *,
    allowed_hosts=None,
    report_dir: str | Path | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> FastAPI:
    """The web app.

    Parameters
    ----------
    model : ServedModel, path or None
        What ``/api/predict`` classifies with: a loaded :class:`ServedModel`, a
        run folder / model file / book ``.pkl`` to load, or None for the newest
        run under ``runs_dir`` (else the book's weights).
    runs_dir : path
        The folder of run folders: listed on ``/runs``; trainings started from
        ``/train`` write into it.
    allowed_hosts : list of str, optional
        Host names the app answers to (others get 400); None: any.
    report_dir : path, optional
        Folder of the experiment report (``index.html``); default: ``runs_dir``
        when it holds one, else ``experiment-results``.
    max_upload_bytes, max_pixels
        Caps on uploaded images, checked before they are decoded.
    """
    runs_dir = Path(runs_dir)
    served = model if isinstance(model, ServedModel) else load_served_model(model, runs_dir)
    job = TrainingJob(runs_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(job.shutdown)

    app = FastAPI(
        title="dlscratch",
        summary="Draw a digit, watch a network learn, browse training runs.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's documentation pages load their scripts from a CDN;
        redoc_url=None,  # /docs is our own page, built from /openapi.json, and works offline
    )
    app.state.model = served
    app.state.job = job
    app.state.runs_dir = runs_dir
    # set when the server begins to shut down: open event streams then end at once
    app.state.closing = closing = threading.Event()

    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host"):
                return JSONResponse(
                    {"detail": "cross-origin request refused: use the page this server serves"},
                    status_code=403,
                )
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if not request.url.path.startswith("/report"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # no tracebacks to the client
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the server's output"},
            status_code=500,
        )

    # -- pages --------------------------------------------------------------------------------
    def page(name: str):
        return FileResponse(STATIC / name, media_type="text/html")

    @app.get("/", include_in_schema=False)
    def draw_page():
        return page("index.html")

    @app.get("/train", include_in_schema=False)
    def train_page():
        return page("train.html")

    @app.get("/runs", include_in_schema=False)
    def runs_page():
        return page("runs.html")

    @app.get("/docs", include_in_schema=False)
    def api_page():
        return page("api.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- the model ----------------------------------------------------------------------------
    @app.get("/api/model")
    def model_info() -> dict:
        """The model ``/api/predict`` classifies with."""
        return app.state.model.describe()

    @app.post("/api/model")
    def choose_model(choice: ModelChoice) -> dict:
        """Serve the model of run folder ``run`` (under the runs folder) from now on."""
        folder = _run_folder(runs_dir, choice.run)
        if not (folder / "model.npz").is_file():
            raise HTTPException(409, f"run {choice.run!r} has no model.npz yet (not finished)")
        try:
            app.state.model = load_served_model(folder, runs_dir)
        except (ValueError, OSError) as exc:
            raise HTTPException(
                422, f"cannot load the model of run {choice.run!r}: {exc}"
            ) from None
        return app.state.model.describe()

    @app.post(
        "/api/predict",
        openapi_extra={
            "requestBody": {
                "content": {
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["pixels"],
                            "properties": {
                                "pixels": {
                                    "type": "array",
                                    "items": {"type": "number", "minimum": 0, "maximum": 1},
                                    "minItems": 784,
                                    "maxItems": 784,
                                }
                            },
                        }
                    },
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                },
                "required": True,
            }
        },
    )
    async def predict(request: Request):
        """Classify one image: a PNG or JPEG body (or form field ``file``), or JSON pixels.

        Images go through the preprocessing of ``dlscratch predict``; JSON
        ``{"pixels": [784 numbers in 0..1]}`` is the network's input as it is.
        Answers ``{"label", "class_name", "probabilities", "input", "hidden",
        "blank"}``; a blank image answers ``blank: true`` and no label.
        """
        started = time.perf_counter()
        kind = _media_type(request)
        if kind not in (*IMAGE_TYPES, JSON_TYPE, MULTIPART_TYPE):
            raise HTTPException(
                415,
                f"unsupported content type {kind or '(none)'!r}: send a PNG or JPEG image "
                "(Content-Type image/png or image/jpeg), a form with a 'file' field, or JSON "
                '{"pixels": [784 numbers]} with Content-Type application/json',
            )
        body = await _read_capped(request, max_upload_bytes)
        if kind == MULTIPART_TYPE:
            body = await _form_file(request, body)
        current: ServedModel = app.state.model
        if kind == JSON_TYPE:
            try:
                obj = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise HTTPException(400, f"malformed JSON: {exc}") from None
            try:
                pixels = pixels_from_json(obj)
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from None
            answer = await run_in_threadpool(_classify_pixels, current, pixels)
        else:
            if not body:
                raise HTTPException(400, "empty body: send the bytes of a PNG or JPEG image")
            answer = await run_in_threadpool(
                _classify_image, current, body, max_upload_bytes, max_pixels
            )
        server_ms = (time.perf_counter() - started) * 1000
        answer["server_ms"] = server_ms
        return JSONResponse(answer, headers={"Server-Timing": f"predict;dur={server_ms:.2f}"})

    # -- training -----------------------------------------------------------------------------
    @app.get("/api/train/options")
    def train_options() -> dict:
        """Choices and defaults of the train form, from the registries."""
        return _train_form()

    @app.get("/api/train")
    def train_state() -> dict:
        """The current (or last) training run: state, run name, options, exit code."""
        return job.snapshot()

    @app.post("/api/train", status_code=202)
    def train_start(options: TrainOptions) -> dict:
        """Start ``dlscratch train`` with these options in a new folder under the runs folder."""
        try:
            job.start(options.model_dump())
        except TrainingBusyError as exc:
            raise HTTPException(409, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, f"dlscratch train: {exc}") from None
        return job.snapshot()

    @app.post("/api/train/stop", status_code=202)
    def train_stop() -> dict:
        """Interrupt the running training as Ctrl-C does: it saves a checkpoint and stops."""
        if not job.stop():
            raise HTTPException(409, "no training is running")
        return job.snapshot()

    @app.get("/api/train/events")
    async def train_events(request: Request, since: int = 0, once: bool = False):
        """Server-sent events of the training: ``status``, ``progress``, ``epoch``, ``log``.

        ``since``: the number of the first event wanted (``GET /api/train``'s
        ``since`` is the current run's first); a reconnecting ``EventSource``
        sends ``Last-Event-ID`` instead. ``once``: send what there is and close.
        """
        last = request.headers.get("last-event-id", "")
        if last.isdigit():
            since = int(last) + 1
        return StreamingResponse(
            _event_stream(request, job, max(since, 0), once or closing.is_set(), closing),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- runs ---------------------------------------------------------------------------------
    def report_folder() -> Path | None:
        candidates = [Path(report_dir)] if report_dir is not None else [runs_dir]
        if report_dir is None:
            from dlscratch.experiments.base import DEFAULT_OUT

            candidates.append(Path(DEFAULT_OUT))
        for folder in candidates:
            if (folder / REPORT_INDEX).is_file():
                return folder
        return None

    @app.get("/api/runs")
    def runs() -> dict:
        """The run folders under the runs folder, newest first, and the report's address."""
        running = job.run_name if job.running else None
        return {
            "runs_dir": str(runs_dir),
            "runs": list_runs(runs_dir, running=running),
            "report": "/report/" if report_folder() is not None else None,
            "model": app.state.model.source,
        }

    @app.get("/api/runs/{name}")
    def run_detail(name: str) -> dict:
        """One run folder: configuration, final metrics, figures, status."""
        folder = _run_folder(runs_dir, name)
        return run_summary(folder, running=job.running and job.run_name == name)

    @app.get("/api/runs/{name}/history")
    def run_history(name: str) -> dict:
        """A run's ``history.csv`` as ``{"columns": [...], "rows": [[...], ...]}``."""
        folder = _run_folder(runs_dir, name)
        try:
            return read_history(folder)
        except FileNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/runs/{name}/files/{file}", include_in_schema=False)
    def run_file(name: str, file: str):
        folder = _run_folder(runs_dir, name)
        media = FIGURE_SUFFIXES.get(Path(file).suffix.lower())
        if media is None:
            raise HTTPException(404, f"only figures (PNG, JPEG) of a run are served, not {file!r}")
        path = _safe(folder, file)
        if not path.is_file():
            raise HTTPException(404, f"{file!r} is not a file of run {name!r}")
        return FileResponse(path, media_type=media)

    @app.get("/report", include_in_schema=False)
    def report_root():
        return RedirectResponse("/report/")

    @app.get("/report/{path:path}", include_in_schema=False)
    def report(path: str):
        folder = report_folder()
        if folder is None:
            raise HTTPException(
                404,
                "no experiment report: run 'dlscratch experiment all --out DIR' and serve with "
                "--runs DIR",
            )
        try:
            file = safe_relative(folder, path or REPORT_INDEX)
        except UnsafePathError as exc:
            raise HTTPException(400, str(exc)) from None
        except FileNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return FileResponse(file)

    return app


# -- helpers -------------------------------------------------------------------------------------


def _classify_pixels(model: ServedModel, pixels) -> dict:
    if not pixels.any():
        return model.no_digit_answer()
    return model.predict(pixels)


def _classify_image(model: ServedModel, body: bytes, max_bytes: int, max_pixels: int) -> dict:
    try:
        digit = prepare_upload(body, max_bytes=max_bytes, max_pixels=max_pixels)
    except (ValueError, OSError) as exc:
        raise HTTPException(422, f"cannot use the image: {exc}") from None
    if digit.blank or digit.components > 1:
        return model.no_digit_answer(digit.pixels, digit.components)
    return model.predict(digit.pixels)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    too_large = HTTPException(
        413, f"the upload is larger than {limit} bytes: send a smaller image (a few kB suffice)"
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _form_file(request: Request, body: bytes) -> bytes:
    """The bytes of the uploaded file in a multipart form already read into ``body``."""

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
    except Exception as exc:  # the multipart parser's errors vary by version
        raise HTTPException(400, f"malformed form upload: {exc}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "the form has no file field 'file': attach the image as 'file'")
    kind = (upload.content_type or "").split(";")[0].strip().lower()
    if kind not in IMAGE_TYPES:
        raise HTTPException(415, f"the file is {kind or 'of no type'}; upload a PNG or JPEG image")
    return await upload.read()


def _safe(folder: Path, name: str) -> Path:
    try:
        return safe_child(folder, name)
    except UnsafePathError as exc:
        raise HTTPException(400, str(exc)) from None
    except FileNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None


def _run_folder(runs_dir: Path, name: str) -> Path:
    folder = _safe(runs_dir, name)
    if not is_run_folder(folder):
        raise HTTPException(404, f"{name!r} is not a run folder in {runs_dir}")
    return folder


async def _event_stream(request: Request, job: TrainingJob, since: int, once: bool, closing):
    yield "retry: 2000\n\n"
    number = since
    quiet = 0.0
    while True:
        events, number = job.events_since(number)
        for n, kind, data in events:
            yield f"id: {n}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"
        if once or closing.is_set():
            return
        if events:
            quiet = 0.0
        elif quiet >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet = 0.0
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.25)
        quiet += 0.25


def _train_form() -> dict:
    """Activations, optimizers (with their default learning rates), datasets, defaults."""
    from dlscratch.data import DATASETS
    from dlscratch.layers import ACTIVATIONS
    from dlscratch.optim import OPTIMIZERS
    from dlscratch.training.schedules import SCHEDULES

    def first_line(cls) -> str:
        return ((cls.__doc__ or "").strip().splitlines() or [""])[0]

    from dlscratch.config import RunConfig

    defaults = RunConfig().to_dict()
    return {
        "activations": [{"name": n, "help": first_line(c)} for n, c in ACTIVATIONS.items()],
        "optimizers": [
            {"name": n, "default_lr": getattr(c, "default_lr", None), "help": first_line(c)}
            for n, c in OPTIMIZERS.items()
        ],
        "datasets": list(DATASETS),
        "schedules": ["none", *SCHEDULES],
        "defaults": {k: v for k, v in defaults.items() if _jsonable(v)},
    }


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
