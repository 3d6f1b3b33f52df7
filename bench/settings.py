"""Settings the benchmark runs under: the project's base settings as production would run them.

DEBUG is off (Django would otherwise keep every query in memory), and the throttles stay on but with a
rate a benchmark cannot reach, so their cost is measured without their refusals. The database is chosen
per world by bench.run (a SQLite file under bench/results/, or a schema of the DATABASE_URL database).
"""

from config.settings.base import *  # noqa: F401,F403
from config.settings.base import BASE_DIR, DATABASES, REST_FRAMEWORK

DEBUG = False
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"user": "100000000/hour", "anon": "100000000/hour", "sign_in": "100000/minute"},
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Never the developer's db.sqlite3: bench.run points this at bench/results/bench-<N>.sqlite3.
    DATABASES["default"]["NAME"] = str(BASE_DIR / "bench" / "results" / "bench.sqlite3")
