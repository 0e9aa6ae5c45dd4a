"""Login protection through a real gunicorn with two worker processes: the lockout (django-axes, counted
in the database) holds on the login page and on the API's token endpoint across processes, and the DRF
throttles count in the shared cache, not per process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple 9"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn(settings, tmp_path, django_user_model):
    """gunicorn (2 sync workers) on the test database; the access log records each request's worker pid."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs the PostgreSQL test database (DATABASE_URL)")
    port = _free_port()
    log = tmp_path / "access.log"
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CACHE_URL": "db",
        "T2G_VAR_DIR": str(tmp_path / "var"),
        "LOGIN_FAILURE_LIMIT": "5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "text2grad_web.wsgi", "-w", "2", "-k", "sync",
         "-b", f"127.0.0.1:{port}", "--access-logfile", str(log), "--access-logformat", "%(p)s %(s)s %(U)s"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.3)
        yield base, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _login_page(base: str, username: str, password: str) -> requests.Response:
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(
        f"{base}/accounts/login/",
        {"username": username, "password": password, "csrfmiddlewaretoken": token},
        allow_redirects=False,
        timeout=30,
    )


def _hold_a_worker(port: int) -> socket.socket:
    """A connection with half a request: the sync worker that accepts it waits for the rest."""
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    held.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    time.sleep(0.5)  # accepted by an idle worker before anything else is sent
    return held


def _token(base: str, username: str, password: str) -> requests.Response:
    return requests.post(
        f"{base}/api/v1/auth/token/", {"username": username, "password": password}, timeout=30
    )


@pytest.mark.heavy
@pytest.mark.django_db(transaction=True)
def test_lockout_and_throttles_hold_across_gunicorn_processes(gunicorn, settings, django_user_model):
    from annotations import roles

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # what gunicorn uses
    for name in ("ann1", "ann2"):
        roles.assign_role(
            django_user_model.objects.create_user(username=name, password=PASSWORD), "annotator"
        )
    base, log = gunicorn

    # The login page: 4 wrong passwords are told so; the 5th locks; then the right one is refused too.
    for _ in range(4):
        wrong = _login_page(base, "ann1", "guess")
        assert wrong.status_code == 200 and "match" in wrong.text
    assert _login_page(base, "ann1", "guess").status_code == 429
    locked = _login_page(base, "ann1", PASSWORD)
    assert locked.status_code == 429 and "Too many failed logins" in locked.text
    # ... and the token endpoint honours the same lock.
    token = _token(base, "ann1", PASSWORD)
    assert token.status_code == 429 and "locked" in token.json()["detail"]

    # The other way round: failures on the token endpoint lock the login page.
    for _ in range(4):
        assert _token(base, "ann2", "guess").status_code == 400
    assert _token(base, "ann2", "guess").status_code == 429
    assert _login_page(base, "ann2", PASSWORD).status_code == 429
    assert set(django_user_model.objects.values_list("username", flat=True)) == {"ann1", "ann2"}

    # The token endpoint's throttle (20/min) counts in the shared cache: 6 spent above, 14 left for all
    # processes together (a throttle per process would let 2 x 20 - 6 = 34 through). One after another,
    # the kernel may hand every connection to the same idle worker, so a half-sent request holds one
    # worker while the first 12 are sent, and another holds the other worker (freeing the first) for the rest.
    port = int(base.rsplit(":", 1)[1])
    first = _hold_a_worker(port)
    codes = [_token(base, "nobody-here", "").status_code for _ in range(12)]
    second = _hold_a_worker(port)
    first.close()
    codes += [_token(base, "nobody-here", "").status_code for _ in range(12)]
    second.close()
    assert codes == [400] * 14 + [429] * 10
    served_by = [line.split()[0] for line in log.read_text().splitlines() if "/api/v1/auth/token/" in line]
    assert len(set(served_by)) >= 2, "one worker process served every request"
