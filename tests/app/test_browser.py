"""The review app in a real browser: Chromium (``/usr/bin/chromium``, Debian's package) driven by
Playwright, against the app served by uvicorn on 127.0.0.1 with a worker thread.

- an editor queues a render from the generated form (a Chinese value), watches the job list's
  live progress reach done, a client reviewer plays the clip and approves it with a comment,
  and the approval is in the brand's history; the clip is rendered by the real ``tiny`` model;
- an editor uploads a CSV of briefs, sees the plan (each bad row with its problem: a bad aspect, a
  competitor's name the brand's rules block), confirms it, and the good rows are queued once;
- a client reviewer of one brand sees nothing of another: every page and API route with the other
  brand's id or job is 404 and shows none of its data;
- no page loads anything from anywhere but 127.0.0.1 (every request the browser makes is
  recorded);
- screenshots of the main pages go to ``docs/screenshots/`` on every run.

Skipped (with the reason) where Chromium or the ``playwright`` package is missing; CI installs both.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi", reason='the review app needs its extra: pip install "brandstudio[app]"')
pytest.importorskip("uvicorn", reason='the review app needs its extra: pip install "brandstudio[app]"')
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("no /usr/bin/chromium (apt-get install chromium): the browser tests need it", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests drive Chromium with playwright (pip install playwright)")

import uvicorn  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))  # tests/app is not on pytest's pythonpath
from test_web import app_routes  # noqa: E402

from brandstudio.app import queue  # noqa: E402
from brandstudio.app.admin import create_api_token, create_user  # noqa: E402
from brandstudio.app.db import Job, make_engine, sessions  # noqa: E402
from brandstudio.app.web import create_app  # noqa: E402
from brandstudio.app.worker import Worker, job_dir  # noqa: E402

PASSWORD = "correct horse battery"
A, B = "qinglan-tea", "aurora-coffee"  # the client reviewer of A may see nothing of B
EMAILS = {"editor": "li@agency.example", "reviewer": "mei@qinglan.example", "other": "bob@aurora.example",
          "admin": "admin@agency.example"}
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-default-apps", "--disable-sync"]  # fmt: skip
RENDER_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@contextlib.contextmanager
def serving(app):
    """The app on 127.0.0.1, a free port, in a thread; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextlib.contextmanager
def working(url: str, data: Path, studio_factory=None):
    """A render worker on the app's database, in a thread (the real studio unless told)."""
    stop = threading.Event()
    engine = make_engine(url)
    worker = Worker(sessions(engine), data, stop_event=stop, lease_seconds=60, studio_factory=studio_factory)
    thread = threading.Thread(target=worker.run, kwargs={"poll_seconds": 0.2}, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(timeout=60)
        engine.dispose()


@pytest.fixture
def site(tmp_path, make_profile, db_url):
    for name in (A, B):
        make_profile(name)
    data = tmp_path / "data"
    app = create_app(db_url, data, tmp_path / "profiles", secret_key="browser-test-key", secure_cookies=False)
    Session = app.state.Session  # noqa: N806
    users = {
        "admin": create_user(Session, "admin@agency.example", PASSWORD, is_admin=True),
        "editor": create_user(Session, EMAILS["editor"], PASSWORD, display_name="李编辑", roles={A: "editor"}),
        "reviewer": create_user(Session, EMAILS["reviewer"], PASSWORD, display_name="王美", roles={A: "reviewer"}),
        "other": create_user(Session, EMAILS["other"], PASSWORD, display_name="Bob Aurora", roles={B: "reviewer"}),
    }
    with serving(app) as base:
        yield {"app": app, "Session": Session, "users": users, "data": data, "url": db_url, "base": base}
    app.state.engine.dispose()


class Visit:
    """A browser context signed in as one user, recording every URL the browser asks for."""

    def __init__(self, browser, base: str) -> None:
        self.requests: list[str] = []
        self.context = browser.new_context(base_url=base, viewport={"width": 1100, "height": 760}, locale="zh-CN")
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)

    def sign_in(self, who: str, shot: str | None = None) -> Visit:
        page = self.page
        page.goto("/login")
        if shot:
            screenshot(page, shot)
        page.fill('input[name="email"]', EMAILS[who])
        page.fill('input[name="password"]', PASSWORD)
        with page.expect_navigation():
            page.click('form[action="/login"] button[type="submit"]')
        assert urlsplit(page.url).path == "/", page.content()[:500]
        return self

    def external(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1" and not u.startswith(("data:", "blob:"))]

    def close(self) -> None:
        self.context.close()


def screenshot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.mark.slow
def test_render_watch_play_approve_in_chromium(site, browser):
    """Editor: sign in, brand, template form (Chinese product name), submit; the job list shows
    the live progress until done. Client reviewer: the clip plays; approve with a comment; the
    approval is on the clip page and in the history."""
    editor = Visit(browser, site["base"]).sign_in("editor", shot="login")
    page = editor.page
    assert "青岚茶 Qinglan Tea" in page.inner_text("main") and "Aurora" not in page.inner_text("main")
    screenshot(page, "brands")
    page.click(f'a[href="/brands/{A}"]')
    page.click(f'a[href="/brands/{A}/templates/product-hero"]')
    page.fill('input[name="var.product"]', "青岚 春茶")
    page.fill('input[name="duration"]', "1")
    page.fill('input[name="resolution"]', "128")
    page.fill('input[name="seed"]', "7")
    screenshot(page, "template-form")
    with page.expect_navigation():
        page.click('form[action$="/templates/product-hero"] button[type="submit"]')
    match = re.fullmatch(r"/jobs/(\d+)", urlsplit(page.url).path)
    assert match, page.url
    job_id = int(match.group(1))

    # the job list, left open while the worker renders: statuses and progress arrive by SSE
    page.goto(f"/brands/{A}/jobs")
    page.evaluate("window.__stayed = true")  # gone if the page reloaded
    status = page.locator(f'td[data-status-of="{job_id}"]')
    assert status.inner_text() == "queued"
    seen: list[tuple[str, str]] = []
    shot = False
    with working(site["url"], site["data"]):
        deadline = time.monotonic() + RENDER_TIMEOUT_S
        while True:
            state = status.inner_text()
            detail = page.locator(f'[data-detail-of="{job_id}"]').inner_text()
            if not seen or seen[-1] != (state, detail):
                seen.append((state, detail))
            if state == "running" and detail.strip() and not shot:
                screenshot(page, "job-list")
                shot = True
            if state in ("done", "failed"):
                break
            assert time.monotonic() < deadline, f"the job did not finish in {RENDER_TIMEOUT_S} s: {seen}"
            time.sleep(0.2)
    assert state == "done", (seen, _error(site, job_id))
    assert page.evaluate("window.__stayed === true")  # live updates, no reload
    assert any(s == "running" and d.strip() for s, d in seen), seen  # the stage and step were shown
    if not shot:
        screenshot(page, "job-list")
    assert editor.external() == []

    reviewer = Visit(browser, site["base"]).sign_in("reviewer")
    page = reviewer.page
    page.goto(f"/jobs/{job_id}")
    assert "青岚 春茶" in page.inner_text("main")
    played = page.evaluate(
        """async () => {
          const v = document.querySelector("video");
          v.muted = true;
          if (v.readyState < 2) await new Promise((ok, ko) => {
            v.addEventListener("loadeddata", ok, {once: true}); v.addEventListener("error", () => ko(String(v.error && v.error.code)), {once: true});
          });
          const start = v.currentTime;
          await v.play();
          await new Promise((ok) => setTimeout(ok, 600));
          return {readyState: v.readyState, duration: v.duration, start, now: v.currentTime,
                  width: v.videoWidth, height: v.videoHeight};
        }"""
    )
    assert played["readyState"] >= 2 and played["duration"] > 0, played
    assert played["now"] > played["start"] or played["duration"] > 0.5, played
    assert (played["width"], played["height"]) == (128, 228), played  # the profile's 9:16 at 128 px
    page.evaluate("document.querySelector('video').pause()")
    screenshot(page, "clip")
    comment = "色调很好，可以发布。Approved."
    page.fill('textarea[name="comment"]', comment)
    with page.expect_navigation():
        page.click('button[name="verdict"][value="approved"]')
    reviews = page.locator("section.card", has_text="Reviews").inner_text()
    assert "approved" in reviews and "王美" in reviews and comment in reviews
    page.goto(f"/brands/{A}/history")
    row = page.locator("tr", has_text="review.approved").first.inner_text()
    assert "王美" in row and comment in row and f"job:{job_id}" in row
    assert page.locator("tr", has_text="job.submit").first.inner_text().count("李编辑") == 1
    assert reviewer.external() == [], reviewer.external()
    for visit in (editor, reviewer):
        assert visit.requests and all(urlsplit(u).hostname == "127.0.0.1" for u in visit.requests)
        visit.close()


def _error(site, job_id: int):
    with site["Session"]() as session:
        return session.get(Job, job_id).error


def _finished_job(site, brand: str, text: str) -> int:
    """A job of ``brand`` done with one small file (no render: the wall is what is tested)."""
    Session = site["Session"]  # noqa: N806
    with Session() as session:
        job_id = queue.submit(session, brand=brand, template="product-hero", variables={"product": text}).id
        session.commit()
    claimed = queue.claim(Session, "test-worker", lease_seconds=60)
    assert claimed.id == job_id
    folder = job_dir(site["data"], brand, job_id)
    folder.mkdir(parents=True)
    clip = folder / "clip.mp4"
    clip.write_bytes(b"\0\0\0\x18ftypmp42" + text.encode() * 8)
    queue.finish(Session, job_id, "test-worker", outputs=[str(clip)],
                 result={"files": [{"sha256": "0" * 64, "size": clip.stat().st_size}],
                         "render": {"qc": {"status": "pass", "checks": {}}, "prompt": text}})  # fmt: skip
    return job_id


def test_a_client_reviewer_sees_nothing_of_another_brand_in_the_browser(site, browser):
    secret = "Aurora 秘密新品 Midnight Roast"
    job_b = _finished_job(site, B, secret)
    job_a = _finished_job(site, A, "青岚 春茶")
    other = Visit(browser, site["base"]).sign_in("other")  # B's own reviewer does see it: the test is not vacuous
    assert other.page.goto(f"/jobs/{job_b}").status == 200 and secret in other.page.inner_text("main")
    other.close()

    visit = Visit(browser, site["base"]).sign_in("reviewer")
    page = visit.page
    screenshot_text = page.inner_text("body")
    assert "Aurora" not in screenshot_text and A in page.content()
    token = create_api_token(site["Session"], site["users"]["reviewer"], "browser test")
    bearer = {"Authorization": f"Bearer {token}"}
    routes = [(p, m) for p, m in app_routes(site["app"]) if "{brand_id}" in p or "{job_id}" in p]
    assert len(routes) >= 12
    checked = 0
    for path, methods in routes:
        url = path.format(brand_id=B, job_id=job_b, name="product-hero", index=0)
        if "GET" in methods and not path.startswith("/api/"):
            response = page.goto(url)  # what the browser shows: the page, not just the status
            assert response.status == 404, (url, response.status)
            body = page.inner_text("body")
            assert "Aurora" not in body and "Midnight" not in body and "秘密" not in body, (url, body[:300])
            checked += 1
        for method in methods - {"HEAD"}:
            if path.startswith("/api/"):
                kw = {"data": json.dumps({"template": "product-hero", "verdict": "approved", "plan": "x"}),
                      "headers": {**bearer, "Content-Type": "application/json"}}  # fmt: skip
            elif method == "POST":
                kw = {"form": {"csrf": _csrf(page), "verdict": "approved", "var.product": "x"}}
            else:
                kw = {}
            res = visit.context.request.fetch(site["base"] + url, method=method, **kw)
            assert res.status == 404, (method, url, res.status, res.text()[:200])
            assert "Aurora" not in res.text() and "Midnight" not in res.text()
            checked += 1
    assert checked >= 20
    # the API lists only the reviewer's brand and jobs; a cookie is no API credential
    brands = visit.context.request.get(site["base"] + "/api/brands", headers=bearer).json()
    assert [b["id"] for b in brands] == [A]
    jobs = visit.context.request.get(site["base"] + f"/api/brands/{A}/jobs", headers=bearer).json()
    assert [j["id"] for j in jobs] == [job_a]
    assert visit.context.request.get(site["base"] + "/api/brands").status == 401
    # on their own brand: the clip page, but no render form (a client reviewer does not render)
    assert page.goto(f"/jobs/{job_a}").status == 200
    assert page.goto(f"/brands/{A}/templates/product-hero").status == 403
    assert visit.external() == [], visit.external()
    visit.close()


def _csrf(page) -> str:
    page.goto("/")
    return page.get_attribute('input[name="csrf"]', "value")


def test_an_editor_uploads_a_csv_of_briefs_sees_the_plan_and_confirms_it(site, browser):
    """Brand page → "Upload briefs…" → a CSV (Chinese values, a bad aspect, a competitor's name
    the brand's rules block) → the plan, each bad row with its problem, nothing queued yet →
    confirm → the job list with the good rows queued, once."""
    csv = "product,aspect,seed\n龙井 春茶,9:16,7\n白茶 Silver Needle,1:1,\n比喜茶更好,9:16,\nOolong,2:7,\n"
    visit = Visit(browser, site["base"]).sign_in("editor")
    page = visit.page
    page.goto(f"/brands/{A}")
    page.click(f'a[href="/brands/{A}/templates/product-hero/briefs"]')
    page.set_input_files('input[name="csv"]', files=[{"name": "春季.csv", "mimeType": "text/csv",
                                                       "buffer": csv.encode()}])  # fmt: skip
    with page.expect_navigation():
        page.click('form[enctype="multipart/form-data"] button[type="submit"]')
    summary = page.inner_text("main")
    assert "2 job(s) to queue, 2 row(s) with a problem" in summary, summary
    bad = page.locator("table.plan tr.invalid")
    assert bad.count() == 2
    assert "competitor:喜茶" in bad.nth(0).inner_text() and "春季.csv:4" in bad.nth(0).inner_text()
    assert "aspect" in bad.nth(1).inner_text() and "春季.csv:5" in bad.nth(1).inner_text()
    screenshot(page, "briefs-plan")
    with site["Session"]() as session:
        assert session.query(Job).count() == 0  # nothing before the confirm
    with page.expect_navigation():
        page.click('button:has-text("Queue 2 job(s)")')
    assert urlsplit(page.url).path == f"/brands/{A}/jobs"
    assert page.locator("td[data-status-of]").count() == 2
    with site["Session"]() as session:
        assert sorted(j.variables["product"] for j in session.query(Job)) == ["白茶 Silver Needle", "龙井 春茶"]
    page.go_back()  # the plan again: confirming it twice is refused, nothing doubled
    with page.expect_navigation():
        page.click('button:has-text("Queue 2 job(s)")')
    assert "already submitted" in page.inner_text("main")
    with site["Session"]() as session:
        assert session.query(Job).count() == 2
    assert visit.external() == [], visit.external()
    visit.close()


def test_an_admin_gives_a_client_a_role_on_the_users_page_and_it_applies_at_once(site, browser):
    """Admin: Users → give Bob (Aurora's reviewer) the reviewer role on Qinglan → Bob's next page
    lists Qinglan; the change is in Qinglan's history with the admin's name."""
    bob = Visit(browser, site["base"]).sign_in("other")
    assert "青岚茶" not in bob.page.inner_text("main")
    admin = Visit(browser, site["base"]).sign_in("admin")
    page = admin.page
    page.click('a[href="/admin/users"]')
    row = page.locator(f'tr[data-user="{EMAILS["other"]}"]')
    assert "aurora-coffee: reviewer" in row.inner_text().replace("\n", " ")
    row.locator('select[name="brand"]').select_option(A)
    row.locator('select[name="role"]').select_option("reviewer")
    screenshot(page, "users")
    with page.expect_navigation():
        row.locator('button[type="submit"]').click()
    assert f"{A}: reviewer" in page.locator(f'tr[data-user="{EMAILS["other"]}"]').inner_text().replace("\n", " ")
    bob.page.reload()
    assert "青岚茶 Qinglan Tea" in bob.page.inner_text("main")
    page.goto(f"/brands/{A}/history")
    change = page.locator("tr", has_text="role.change").first.inner_text()
    assert EMAILS["other"] in change and "no role → reviewer" in change
    assert admin.external() == [] and bob.external() == []
    for visit in (admin, bob):
        visit.close()
