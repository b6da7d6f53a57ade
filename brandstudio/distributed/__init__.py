"""Campaigns on a cluster. :mod:`brandstudio.distributed.ray_backend` holds the Ray backend.

Ray is an optional dependency (``pip install "brandstudio[ray]"``); nothing here imports it
until a campaign asks for ``backend="ray"``.
"""

__all__: list[str] = []
