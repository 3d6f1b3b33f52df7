"""gunicorn settings for `make serve-production`, read from the environment like the Django settings.

HOST, PORT            where to listen (127.0.0.1:8000); behind a proxy, bind where it forwards to
WEB_CONCURRENCY       worker processes (2 x CPUs + 1, at most 8)
GUNICORN_THREADS      threads per worker (1)
GUNICORN_TIMEOUT      seconds a request may take before its worker is restarted (30)
FORWARDED_ALLOW_IPS   proxies trusted to set X-Forwarded-Proto (127.0.0.1)
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = f"{os.environ.get('HOST', '127.0.0.1')}:{_int('PORT', 8000)}"
workers = _int("WEB_CONCURRENCY", min(multiprocessing.cpu_count() * 2 + 1, 8))
threads = _int("GUNICORN_THREADS", 1)
# A request that takes longer is stuck, not busy: lists and reports cost a fixed number of queries.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound; the jitter keeps them from restarting together.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = 100

# Only the proxy in front may say the request came over TLS (Django's SECURE_PROXY_SSL_HEADER trusts it).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Request lines and headers of a JSON API are short; refuse monsters before Django sees them.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# Access log to stdout without query strings (%(U)s is the path alone) and without the Referer or user agent:
# a query string or a referring URL can carry a client identifier, and this log is not the hash-chained one.
accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# Worker heartbeats: in containers point this at a memory filesystem, so a slow disk cannot get workers killed.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None


def on_starting(server):
    """Refuse to start when Django's system checks find an error (e.g. production without its receipt key)."""
    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    django.setup()
    call_command("check", fail_level="ERROR")
