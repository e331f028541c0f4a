"""Serving: a frozen model behind HTTP, with dynamic batching, metrics, reload and a drift watch.

The artifact that ``mlkit.save_predictor`` wrote, answering requests over HTTP the
way a production model server does, small enough to read in one sitting:
:func:`run` (``python -m mlkit serve ARTIFACT``) serves in this process and
:class:`Server` in a child process (for notebooks and tests); :mod:`~mlkit.serve.app`
holds the endpoints, :mod:`~mlkit.serve.batcher` the dynamic batching,
:mod:`~mlkit.serve.model` the loading and checks, :mod:`~mlkit.serve.drift`,
:mod:`~mlkit.serve.metrics`, :mod:`~mlkit.serve.runner` (uvicorn and its workers) and
:mod:`~mlkit.serve.load` (``python -m mlkit load URL``, a load generator).

It needs the ``serve`` extra (FastAPI, uvicorn, prometheus_client, ...), which
``import mlkit`` never loads; nothing here imports training code.
"""

try:
    import aiohttp  # noqa: F401
    import fastapi  # noqa: F401
    import httpx  # noqa: F401
    import orjson  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as e:
    raise ImportError(
        f"mlkit.serve needs the serve extra ({e.name} is not installed): pip install -e '.[serve]' in the kit's folder."
    ) from None

from mlkit.serve import app, batcher, drift, load, metrics, model, runner
from mlkit.serve.background import Server
from mlkit.serve.batcher import Batcher
from mlkit.serve.drift import DriftWatch
from mlkit.serve.load import LoadResult
from mlkit.serve.runner import run
from mlkit.serve.settings import Settings

__all__ = [
    "Batcher",
    "DriftWatch",
    "LoadResult",
    "Server",
    "Settings",
    "app",
    "batcher",
    "drift",
    "load",
    "metrics",
    "model",
    "run",
    "runner",
]
