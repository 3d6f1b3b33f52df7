"""python manage.py compliance_report --pilot ID --period 2026-Q3|2026-07|2026|pilot [--format json|csv|html]
[--output FILE] [--actor USERNAME]

The same published (suppressed) report as the API serves, for a standard period only, clipped to the pilot's
dates. Each run is a report request in the access log of the pilot's providers, by the named account (the
person running it) or, unattended, as the compliance_report command.
"""

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from colocation.models import Pilot, StaffProfile, User
from consent.access.log import AccessContext
from consent.access.report_access import ReportRequest, record_report_request
from consent.reports.periods import ACCEPTED_FORMS, period_of_pilot
from consent.reports.render import report_csv, report_html
from consent.reports.report import compliance_report

RENDERERS = {
    "json": lambda report: json.dumps(report, indent=2, ensure_ascii=False) + "\n",
    "csv": report_csv,
    "html": report_html,
}


class CommandRun:
    """The actor of an unattended run (not a person): named in the log, holding no permission."""

    pk = None
    is_authenticated = True

    def get_username(self) -> str:
        return "compliance_report"

    @property
    def staff_profile(self):
        raise StaffProfile.DoesNotExist


class Command(BaseCommand):
    help = "Print or write a pilot's compliance report for a standard period, with small numbers suppressed."

    def add_arguments(self, parser):
        parser.add_argument("--pilot", type=int, required=True, help="the pilot's id")
        parser.add_argument(
            "--period", required=True, help="a standard period: 2026, 2026-Q3, 2026-07 or pilot (the pilot to date)"
        )
        parser.add_argument("--format", choices=sorted(RENDERERS), default="json")
        parser.add_argument("--output", help="write to this file instead of standard output")
        parser.add_argument("--actor", help="username of the person running it, for the access log")

    def handle(self, *args, pilot, period, format, output, actor=None, **options):
        found = Pilot.objects.filter(pk=pilot).first()
        if found is None:
            raise CommandError(f"No pilot with id {pilot}.")
        user = CommandRun()
        if actor:
            user = User.objects.filter(username=actor, is_active=True).first()
            if user is None:
                raise CommandError(f"No active account {actor!r}; give the username of the person running the report.")
        try:
            parsed = period_of_pilot(found, period)
        except ValidationError as error:
            messages = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in error.message_dict.items())
            raise CommandError(messages if ACCEPTED_FORMS in messages else f"{messages} {ACCEPTED_FORMS}") from None
        # The request and its access event commit together, or neither does (the log fails closed).
        with transaction.atomic():
            report = compliance_report(found, parsed)
            record_report_request(
                context=AccessContext.for_command(user, "compliance_report"), pilot=found, request=ReportRequest.READ,
                period_label=parsed.label, format=format,
            )  # fmt: skip
        text = RENDERERS[format](report)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote the {format} report of {found.name}, {parsed.label}, to {output}.")
        else:
            self.stdout.write(text, ending="")
