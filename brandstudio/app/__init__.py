"""The review app (``brandstudio serve``): its data and its job queue.

Renders asked for in a browser become rows of a database (SQLite under a data directory, or
PostgreSQL by URL); worker processes claim them one at a time and render each through the same
path as a campaign (:func:`brandstudio.batch.execute_job`); people review the clips. This
package holds the parts below the web pages:

- :mod:`~.db`: the tables (users, brands, memberships, jobs, reviews, audit events), the engine
  and sessions;
- :mod:`~.migrate`: the schema, created and changed only by the Alembic migrations it ships;
- :mod:`~.passwords`: argon2id password hashes;
- :mod:`~.access`: who may view, render, review, approve or administer which brand;
- :mod:`~.queue`: submitting, claiming under a lease, heartbeats, finishing, and the jobs of
  workers that died going back to the queue;
- :mod:`~.worker`: the worker that renders queued jobs in its process, one at a time, and
  :mod:`~.ray_worker`: the same on a Ray cluster's actors, a batch of one brand's jobs at a time.

It needs the ``app`` extra: ``pip install "brandstudio[app]"``. ``import brandstudio`` does not
import it.

Example:
    >>> from brandstudio.app import make_engine, sessions, upgrade, submit, claim
    >>> engine = make_engine(data_dir=Path("studio-data"))                      # doctest: +SKIP
    >>> upgrade(engine.url)                                                      # doctest: +SKIP
    >>> Session = sessions(engine)                                               # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util

from ..errors import missing_extra

for _module, _package in (("sqlalchemy", "sqlalchemy"), ("alembic", "alembic"), ("argon2", "argon2-cffi")):
    if importlib.util.find_spec(_module) is None:
        raise missing_extra(_package, "app")

from .access import ACTIONS, Principal, allowed, can, require  # noqa: E402 - after the extra's check
from .db import (  # noqa: E402
    AuditEvent,
    Brand,
    Job,
    Membership,
    Review,
    User,
    make_engine,
    sessions,
    utcnow,
)
from .migrate import check_schema, upgrade  # noqa: E402
from .passwords import PasswordCheck, hash_password, verify_password  # noqa: E402
from .queue import (  # noqa: E402
    Requeued,
    claim,
    fail,
    finish,
    heartbeat,
    release,
    requeue_expired,
    submit,
    worker_name,
)

__all__ = [
    "ACTIONS",
    "AuditEvent",
    "Brand",
    "Job",
    "Membership",
    "PasswordCheck",
    "Principal",
    "Requeued",
    "Review",
    "User",
    "allowed",
    "can",
    "check_schema",
    "claim",
    "fail",
    "finish",
    "hash_password",
    "heartbeat",
    "make_engine",
    "release",
    "require",
    "requeue_expired",
    "sessions",
    "submit",
    "upgrade",
    "utcnow",
    "verify_password",
    "worker_name",
]
