"""The voluntariness status rule is one table (STATUS_RULE), read in SQL and in Python: both give the same status.

The API asks the rule of each referral in SQL; the compliance report groups referrals by when their facts
happened and asks it of each group in Python. Every combination of the rule's eight flags is tried in both.
"""

from datetime import date
from itertools import product

from django.db.models import BooleanField, Value

from consent.models import Referral
from consent.selectors import STATUS_RULE, Voluntariness, status_from_flags, voluntariness_status_expression
from tests.conftest import make_referral

FLAGS = tuple(flag for _, deciding in STATUS_RULE for flag in deciding)


def test_sql_and_python_give_the_same_status_for_every_combination_of_flags(world):
    referral = make_referral(world.therapist, world.site, referred_on=date(2026, 9, 1))
    seen = set()
    for values in product((False, True), repeat=len(FLAGS)):
        flags = dict(zip(FLAGS, values, strict=True))
        in_sql = (
            Referral.objects.filter(pk=referral.pk)
            .alias(**{name: Value(value, output_field=BooleanField()) for name, value in flags.items()})
            .annotate(rule_status=voluntariness_status_expression())
            .values_list("rule_status", flat=True)
            .get()
        )
        assert status_from_flags(flags) == in_sql, flags
        seen.add(in_sql)
    assert seen == set(Voluntariness.ALL)


def test_the_most_serious_status_wins():
    flags = dict.fromkeys(FLAGS, False)
    assert status_from_flags(flags) == Voluntariness.VOLUNTARY
    assert status_from_flags({**flags, "v_no_consent": True}) == Voluntariness.UNKNOWN
    assert status_from_flags({**flags, "v_no_consent": True, "v_goal_by_agency": True}) == Voluntariness.CONCERN
    assert status_from_flags({**flags, "v_goal_by_agency": True, "v_mandated_pathway": True}) == Voluntariness.NOT_VOLUNTARY
