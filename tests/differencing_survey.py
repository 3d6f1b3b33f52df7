"""The reader of report_adversary against many seeded worlds: how docs/disclosure-control.md's table was measured.

    .venv/bin/python -m tests.differencing_survey 0 1000      # seeds 0 to 999 (about 20 minutes)

Prints each world the reader wins (a count of 1 to 7 pinned) and the total. Not a test: the property test in
test_report_differencing.py runs a few of these worlds on every run.
"""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
django.setup()

from tests.report_adversary import Adversary, all_reports  # noqa: E402
from tests.test_report_differencing import seeded_world  # noqa: E402


def survey(first: int, last: int) -> list[int]:
    """The seeds in first..last-1 whose world the reader wins."""
    won = []
    for seed in range(first, last):
        world = seeded_world(seed)
        adversary = Adversary(world, all_reports(world))
        adversary.propagate()
        if pinned := adversary.pinned_small_counts():
            won.append(seed)
            print(f"world {seed}: pinned {pinned[:3]}", flush=True)
    return won


if __name__ == "__main__":
    first, last = (int(arg) for arg in sys.argv[1:3])
    won = survey(first, last)
    print(f"{len(won)} of {last - first} worlds won by the reader: {won}")
