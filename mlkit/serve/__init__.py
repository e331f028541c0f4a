"""Serving: a frozen model behind HTTP, with dynamic batching, metrics, reload and a drift watch.

The last step of the course's inference half: the artifact that
``mlkit.save_predictor`` wrote, answering requests over HTTP the way a
production model server does, small enough to read in one sitting.

- :func:`run` (``python -m mlkit serve ARTIFACT``) serves in this process,
  :class:`Server` in a child process (for notebooks and tests);
- :mod:`~mlkit.serve.app`: the endpoints (``POST /predict``, ``/health``,
  ``/metadata``, ``/metrics``, ``/drift``, ``/admin/reload``, ``/docs``) and their errors;
- :mod:`~mlkit.serve.batcher`: dynamic batching, one asyncio task feeding the model on a thread;
- :mod:`~mlkit.serve.model`: loading, warming up and checking an artifact (at start and on reload);
- :mod:`~mlkit.serve.drift`: a crude running check of served inputs against the training statistics;
- :mod:`~mlkit.serve.metrics`: what is counted, in Prometheus's format;
- :mod:`~mlkit.serve.runner`: uvicorn, the listening socket, worker processes, graceful stop;
- :mod:`~mlkit.serve.load` (``python -m mlkit load URL``): an open- and closed-loop load generator.

Nothing here imports training code: a serving process needs the artifact, JAX and NumPy.
"""

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
