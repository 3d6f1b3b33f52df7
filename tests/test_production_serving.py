"""`make serve-production` answers real HTTP requests with every security header and secure cookies.

The README's own command is started on a free port with production settings from the environment (a secret,
the allowed hosts, an SQLite database of its own), asked real questions over a socket, and stopped. Requests
carry X-Forwarded-Proto: https as the TLS-terminating proxy in front of it would.
"""

import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
STARTUP_LIMIT = 240  # seconds: migrate and collectstatic run first, and CI machines can be busy
PROBE_PASSWORD = secrets.token_urlsafe(16)

pytestmark = [pytest.mark.slow] + [
    pytest.mark.skipif(
        connection.vendor == "postgresql", reason="served once per CI run, on its own SQLite database (the SQLite run)"
    )
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_environment(tmp_path: Path, port: int) -> dict:
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    environment.update(
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"sqlite:///{tmp_path / 'production.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        CONSENT_RECEIPT_SIGNING_KEY=key.decode("ascii"),
        # The access log's own key, apart from the receipt key (consent.access.heads).
        ACCESS_LOG_SIGNING_KEY=Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode("ascii"),
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
    )
    return environment


class Server:
    """`make serve-production` in its own process group, its output collected as it runs."""

    def __init__(self, environment: dict, port: int):
        self.port = port
        self.environment = environment
        self.output: list[str] = []
        self.process = subprocess.Popen(
            ["make", "-s", "serve-production"], cwd=ROOT, env=environment, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        for line in self.process.stdout:
            self.output.append(line)

    def log(self) -> str:
        return "".join(self.output)

    def wait_until_listening(self):
        deadline = time.monotonic() + STARTUP_LIMIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"make serve-production exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"make serve-production did not listen on {self.port}:\n{self.log()[-4000:]}")

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"X-Forwarded-Proto": "https", **(headers or {})})
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def manage(self, *args: str) -> str:
        environment = {**self.environment, "DJANGO_SETTINGS_MODULE": "config.settings.production"}
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def stop(self):
        # Only the process group this test started: make, gunicorn's arbiter and its workers.
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    running = Server(production_environment(tmp_path_factory.mktemp("serve-production"), port), port)
    try:
        running.wait_until_listening()
        yield running
    finally:
        running.stop()


SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def assert_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        assert response.getheader(name) == value, (name, response.getheaders())
    policy = response.getheader("Content-Security-Policy")
    assert policy and "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


@pytest.mark.parametrize(
    "path", ["/api/v1/me/", "/api/v1/referrals/", "/api/schema/", "/api/docs/", "/api/v1/no-such-thing/", "/admin/login/"]
)
def test_it_answers_with_every_security_header(server, path):
    response, _ = server.request("GET", path)
    assert response.status < 500, server.log()[-2000:]
    assert_security_headers(response)


def test_it_answers_the_api_in_json_and_refuses_without_credentials(server):
    response, body = server.request("GET", "/api/v1/referrals/")
    assert response.status == 401
    assert response.getheader("Content-Type").startswith("application/json")
    assert b"credentials" in body.lower()
    assert response.getheader("Cache-Control") == "no-store"


def test_it_redirects_plain_http_to_https(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/api/v1/me/")
    response = conn.getresponse()
    conn.close()
    assert response.status == 301
    assert response.getheader("Location").startswith("https://")


def test_it_serves_the_docs_assets_itself(server):
    response, body = server.request("GET", "/api/docs/")
    assert response.status == 200
    assert b"cdn." not in body and b"/static/drf_spectacular_sidecar/" in body


def test_its_access_log_leaves_out_query_strings(server):
    server.request("GET", "/api/v1/referrals/?nhs_number=9434765919&local_reference=KTT-000123")
    deadline = time.monotonic() + 10
    # Wait for gunicorn's access line itself: Django's "Unauthorized: /api/v1/referrals/" warning comes first.
    while '"GET /api/v1/referrals/' not in server.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert '"GET /api/v1/referrals/ HTTP/1.1" 401' in server.log()
    assert "9434765919" not in server.log() and "KTT-000123" not in server.log()


def test_its_csrf_and_session_cookies_are_secure(server):
    server.manage(
        "shell", "-c",
        f"from colocation.models import User; User.objects.create_user('probe', password='{PROBE_PASSWORD}')",
    )  # fmt: skip
    response, _ = server.request("GET", "/admin/login/")
    csrf_cookie = next(v for k, v in response.getheaders() if k == "Set-Cookie" and v.startswith("csrftoken="))
    assert "Secure" in csrf_cookie and "HttpOnly" in csrf_cookie
    token = csrf_cookie.split(";", 1)[0].split("=", 1)[1]
    origin = f"https://127.0.0.1:{server.port}"
    response, body = server.request(
        "POST", "/api/auth/login/",
        body=f"username=probe&password={PROBE_PASSWORD}&csrfmiddlewaretoken={token}&next=/api/v1/me/",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={token}", "Origin": origin,
                 "Referer": f"{origin}/api/auth/login/"},
    )  # fmt: skip
    assert response.status == 302, body[:2000]
    session_cookie = next(v for k, v in response.getheaders() if k == "Set-Cookie" and v.startswith("sessionid="))
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie
    assert_security_headers(response)
