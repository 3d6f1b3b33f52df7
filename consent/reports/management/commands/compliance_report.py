"""python manage.py compliance_report --pilot ID --period 2026-Q3 [--format json|csv|html] [--output FILE]"""

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from colocation.models import Pilot
from consent.reports.periods import parse_period
from consent.reports.render import report_csv, report_html
from consent.reports.report import compliance_report

RENDERERS = {
    "json": lambda report: json.dumps(report, indent=2, ensure_ascii=False) + "\n",
    "csv": report_csv,
    "html": report_html,
}


class Command(BaseCommand):
    help = "Print or write a pilot's compliance report for a period, with small numbers suppressed."

    def add_arguments(self, parser):
        parser.add_argument("--pilot", type=int, required=True, help="the pilot's id")
        parser.add_argument("--period", help="2026, 2026-Q3 or 2026-07")
        parser.add_argument("--from", dest="start", help="first day (YYYY-MM-DD), with --to, instead of --period")
        parser.add_argument("--to", dest="end", help="last day (YYYY-MM-DD), with --from")
        parser.add_argument("--format", choices=sorted(RENDERERS), default="json")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args, pilot, period, start, end, format, output, **options):
        found = Pilot.objects.filter(pk=pilot).first()
        if found is None:
            raise CommandError(f"No pilot with id {pilot}.")
        try:
            parsed = parse_period(period, start=start, end=end)
        except ValidationError as error:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
            ) from None
        # The same published (suppressed) report as the API serves: an operator's shell gets no raw figures.
        text = RENDERERS[format](compliance_report(found, parsed))
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote the {format} report of {found.name}, {parsed.label}, to {output}.")
        else:
            self.stdout.write(text, ending="")
