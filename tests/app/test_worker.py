"""The worker's endings other than success: bad input fails at once, a crash goes back to the
queue, a stop mid-render releases the job; none leaves files behind."""

from __future__ import annotations

import threading

import pytest

from brandstudio.app.db import Brand, Job
from brandstudio.app.queue import submit
from brandstudio.app.worker import Worker, job_dir
from brandstudio.studio import BrandStudio


class Crashing:
    model_id = "crash"

    def generate(self, spec):
        raise RuntimeError("CUDA out of memory (pretend)")


class Stopping:
    """Asks the worker to stop while it generates, then hands back flat footage."""

    model_id = "stop"

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def generate(self, spec):
        from fixed_generators import FlatGenerator

        self.stop.set()
        return FlatGenerator().generate(spec)


@pytest.fixture
def setup(Session, make_profile, tmp_path):  # noqa: N803
    prof = make_profile("aurora-coffee", edit=lambda t: t.replace('nsfw = "block"', 'nsfw = "off"'))
    with Session() as session:
        session.add(Brand(id="aurora-coffee", name="Aurora Coffee", profile_path=str(prof)))
        session.commit()

    def job(product: str) -> int:
        with Session() as session:
            jid = submit(session, brand="aurora-coffee", template="product-hero", variables={"product": product},
                         aspect="16:9", duration=1.0, resolution=64).id  # fmt: skip
            session.commit()
        return jid

    return job, tmp_path / "data"


def worker(Session, data, generator, stop=None) -> Worker:  # noqa: N803
    return Worker(Session, data, stop_event=stop,
                  studio_factory=lambda b, o: BrandStudio(b.profile_path, output_dir=o, generator=generator, cache=False))  # fmt: skip


def test_bad_input_fails_at_once_and_a_crash_goes_back_to_the_queue(Session, setup):  # noqa: N803
    job, data = setup
    bad = job("夜烘")  # the brand's caption font has no CJK glyphs: a PostError before generation
    assert worker(Session, data, Crashing()).run_once()
    with Session() as session:
        j = session.get(Job, bad)
        assert (j.status, j.error["type"], j.error["expected"]) == ("failed", "PostError", True)
        assert "no glyph" in j.error["message"]
    crash = job("Night Roast")
    assert worker(Session, data, Crashing()).run_once()
    with Session() as session:
        j = session.get(Job, crash)
        assert (j.status, j.attempts, j.error["expected"]) == ("queued", 1, False)
        assert "out of memory" in j.error["message"]
    assert not job_dir(data, "aurora-coffee", bad).exists() and not job_dir(data, "aurora-coffee", crash).exists()


def test_a_stop_mid_render_releases_the_job(Session, setup):  # noqa: N803
    job, data = setup
    jid = job("Night Roast")
    stop = threading.Event()
    assert worker(Session, data, Stopping(stop), stop).run_once()
    with Session() as session:
        j = session.get(Job, jid)
        assert (j.status, j.attempts, j.worker) == ("queued", 0, None)
    assert stop.is_set() and not job_dir(data, "aurora-coffee", jid).exists()
