"""Rendering batches on a cluster: :class:`RayExecutor` renders jobs on Ray actors, one per GPU.

Ray is an optional dependency (``pip install "brandstudio[ray]"``); nothing here imports it
until an executor is entered. The executor is handed to :func:`brandstudio.batch.run_jobs`;
a campaign with ``backend = "ray"`` does that (:mod:`brandstudio.campaign`).
"""

from __future__ import annotations

from .ray_backend import RayExecutor, RenderWorker

__all__ = ["RayExecutor", "RenderWorker"]
