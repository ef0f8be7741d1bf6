"""``dlscratch serve``: a local web app to draw digits, watch training and browse runs.

>>> from dlscratch.serve import create_app           # doctest: +SKIP
>>> app = create_app(model="runs/my-run", runs_dir="runs")   # doctest: +SKIP

``app`` is an ASGI application (FastAPI); ``dlscratch serve`` runs it with uvicorn.
Needs the ``web`` extra: ``pip install 'dlscratch[web]'``. FastAPI is imported only
when ``create_app`` is first used, so the command line starts fast without it.
"""

__all__ = ["create_app"]


def __getattr__(name):
    if name == "create_app":
        from dlscratch.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'dlscratch.serve' has no attribute {name!r}")
