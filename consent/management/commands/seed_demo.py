"""Build, idempotently, the demo world of the README ("The two commands"): organisations, sites, a pilot, accounts, a year of referrals."""

import random
from datetime import date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from colocation.models import Cadence, ClinicalTeam, Organisation, OrganisationKind, Pilot, Role, Site, User, VenueKind
from colocation.services import create_clinical_team, create_staff_member
from consent.access import firewall
from consent.access.log import AccessContext
from consent.models import ConsentTemplate, Referral
from consent.services import (
    create_referral,
    discharge_referral,
    record_consent,
    record_decline,
    record_voluntariness_check,
    record_withdrawal,
)

DEFAULT_PASSWORD = "demo-pass-2026"  # noqa: S105 - the documented demo password (README)

ACCOUNTS = [
    # username, organisation, role, team, superuser
    ("therapist", "Kent talking therapies", Role.THERAPIST, "Canterbury team", False),
    ("therapist2", "Kent talking therapies", Role.THERAPIST, "Canterbury team", False),
    ("lead", "Kent talking therapies", Role.CLINICAL_LEAD, "Canterbury team", False),
    ("dpo", "Kent talking therapies", Role.DPO, None, False),
    ("other-therapist", "Medway wellbeing service", Role.THERAPIST, "Medway team", False),
    ("reviewer", "BACP", Role.REVIEWER, None, False),
    ("workcoach", "Jobcentre Plus, Canterbury", Role.WORK_COACH, None, False),
    ("admin", "Kent talking therapies", Role.ADMIN, None, True),
]


class Command(BaseCommand):
    help = "Create the demo organisations, sites, pilot, accounts and a year of referrals (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEFAULT_PASSWORD, help="Password for every demo account.")
        parser.add_argument("--quiet", action="store_true", help="Do not print the accounts.")

    def handle(self, *args, password, quiet, **options):
        with transaction.atomic():
            world = self.build_world(password)
            if not world["kent"].referrals.exists():
                self.build_referrals(world)
                self.build_access_attempts(world)
        if not quiet:
            self.print_accounts(password)
            pilot = world["pilot"]
            self.stdout.write(
                f"Report       http://127.0.0.1:8000/api/v1/pilots/{pilot.pk}/compliance-report/?period=pilot "
                f"(standard periods only: {pilot.starts_on.year}, {pilot.starts_on.year}-Q{(pilot.starts_on.month - 1) // 3 + 1}, "
                f"{pilot.starts_on:%Y-%m} or pilot, the pilot to date; as the reviewer)\n"
            )

    def build_world(self, password):
        def org(name, kind, ods=""):
            return Organisation.objects.get_or_create(name=name, defaults={"kind": kind, "ods_code": ods})[0]

        kent = org("Kent talking therapies", OrganisationKind.THERAPY_PROVIDER, "RXY")
        medway = org("Medway wellbeing service", OrganisationKind.THERAPY_PROVIDER, "RPA")
        jobcentre = org("Jobcentre Plus, Canterbury", OrganisationKind.BENEFITS_AGENCY)
        bacp = org("BACP", OrganisationKind.PROFESSIONAL_BODY)
        ukcp = org("UKCP", OrganisationKind.PROFESSIONAL_BODY)
        library_host = org("Kent County Council libraries", OrganisationKind.OTHER)
        surgery_host = org("Northgate Medical Practice", OrganisationKind.OTHER)

        today = timezone.localdate()
        start = (today - relativedelta(years=1)).replace(day=1)
        sites = {}
        for key, name, venue, host, provider, district, separation in [
            ("jobcentre", "Canterbury Jobcentre, first-floor clinic", VenueKind.JOBCENTRE, jobcentre, kent, "CT1", True),
            ("surgery", "Northgate Medical Practice", VenueKind.GP_SURGERY, surgery_host, kent, "CT1", True),
            ("library", "Canterbury Library wellbeing room", VenueKind.LIBRARY, library_host, medway, "CT2", False),
        ]:
            sites[key], _ = Site.objects.get_or_create(
                name=name,
                defaults=dict(
                    venue_kind=venue, host_organisation=host, provider=provider, postcode_district=district,
                    active_from=start, separate_room_or_floor=True, separate_entrance=separation,
                    separate_signage_and_publicity=True, separate_it_and_records=True,
                    no_benefits_agency_staff_in_sessions=True, separation_last_reviewed=start + relativedelta(months=6),
                ),
            )  # fmt: skip
        pilot, created = Pilot.objects.get_or_create(
            name="Canterbury co-location pilot",
            defaults={"starts_on": start, "ends_on": start + relativedelta(years=1, days=-1), "cadence": Cadence.QUARTERLY},
        )
        if created:
            pilot.sites.set(sites.values())
            pilot.overseen_by.set([bacp, ukcp])

        teams = {}
        for organisation, name in [(kent, "Canterbury team"), (kent, "Thanet team"), (medway, "Medway team")]:
            teams[name] = ClinicalTeam.objects.filter(organisation=organisation, name=name).first() or create_clinical_team(
                organisation=organisation, name=name
            )
        organisations = {o.name: o for o in (kent, medway, jobcentre, bacp, ukcp)}
        for username, org_name, role, team, superuser in ACCOUNTS:
            user = User.objects.filter(username=username).first()
            if user is None:
                create_staff_member(
                    username=username, password=password, organisation=organisations[org_name], role=role,
                    team=teams.get(team), is_superuser=superuser,
                )  # fmt: skip
            else:
                user.set_password(password)
                user.save()
        return {"kent": kent, "medway": medway, "sites": sites, "pilot": pilot, "start": start, "today": today}

    def build_referrals(self, world):
        """A year of referrals across every pathway, each with what happened to it, from one seeded random stream."""
        rng = random.Random(2026)
        template = self.build_templates(world)
        clinicians = {
            "jobcentre": [
                User.objects.get(username="therapist"),
                User.objects.get(username="therapist2"),
                User.objects.get(username="lead"),
            ],
            "surgery": [User.objects.get(username="therapist"), User.objects.get(username="therapist2")],
            "library": [User.objects.get(username="other-therapist")],
        }
        today, start = world["today"], world["start"]
        days = (today - start).days
        number = 0
        for site_key, count in (("jobcentre", 110), ("surgery", 40), ("library", 30)):
            site = world["sites"][site_key]
            for _ in range(count):
                number += 1
                context = AccessContext.for_command(rng.choice(clinicians[site_key]), "seed_demo")
                referred_on = start + timedelta(days=rng.randrange(days))
                referral = self.build_referral(rng, context, site, site_key, number, referred_on)
                self.build_episode(rng, context, referral, referred_on, today, template)

    def build_templates(self, world) -> ConsentTemplate:
        template_start = world["start"] - relativedelta(months=1)
        template, _ = ConsentTemplate.objects.get_or_create(
            code="colocation-intake", version=1, language="en",
            defaults={"title": "Talking therapies at a co-located clinic", "effective_from": template_start,
                      "body": CONSENT_TEXT},
        )  # fmt: skip
        ConsentTemplate.objects.get_or_create(
            code="colocation-intake", version=1, language="cy",
            defaults={"title": "Therapïau siarad mewn clinig a rennir", "effective_from": template_start, "body": CONSENT_TEXT_CY},
        )  # fmt: skip
        return template

    def build_referral(self, rng, context, site, site_key: str, number: int, referred_on):
        pathway = rng.choices(
            ["self_referral", "signposted_by_work_coach", "mandated_assessment", "benefit_condition"], [55, 30, 8, 7]
        )[0]
        if pathway == "self_referral":
            source = rng.choices(["B1", "B2", "A1"], [80, 10, 10])[0]
            heard = rng.choice(["leaflet_or_poster", "gp", "friend_or_family", "found_themselves", "other"])
        else:
            source = rng.choices(["M5", "B1"], [60, 40])[0] if site_key == "jobcentre" else "B1"
            heard = "work_coach_suggested"
        return create_referral(
            context=context, local_reference=f"{site.provider.ods_code}-{number:06d}",
            nhs_number=_nhs_number(rng) if rng.random() < 0.7 else "", year_of_birth=rng.randint(1960, 2004),
            site=site, referred_on=referred_on, source_of_referral=source, how_heard=heard, pathway=pathway,
        )  # fmt: skip

    def build_episode(self, rng, context, referral, referred_on, today, template):
        age = (today - referred_on).days
        if rng.random() < 0.08:
            record_decline(
                context=context,
                referral_id=referral.pk,
                declined_on=min(today, referred_on + timedelta(days=rng.randint(0, 3))),
            )
            return
        if age < 21 and rng.random() < 0.5:
            return  # still awaiting consent: consent is often given at the second appointment
        consent_day = min(today, referred_on + timedelta(days=rng.choice([0, 0, 1, 2, 3, 5, 8])))
        at = _at(consent_day, 10)
        record_consent(
            context=context, referral_id=referral.pk, template=template, method=rng.choice(["verbal", "written", "digital"]),
            given_at=at, scopes=["treatment", "data_set_submission"] + rng.sample(["contact_by_phone", "contact_by_sms", "contact_by_letter", "share_with_gp"], 2),
            acknowledgements=dict.fromkeys(("attendance_is_optional", "no_effect_on_benefits", "service_separate_from_jobcentre", "nothing_shared_with_jobcentre", "free_to_withdraw"), True),
        )  # fmt: skip
        if rng.random() < 0.9:
            roll = rng.random()
            record_voluntariness_check(
                context=context, referral_id=referral.pk, checked_at=at + timedelta(minutes=10), stage="intake",
                told_attendance_required=roll < 0.04, sanction_mentioned=0.04 <= roll < 0.07,
                feels_free_to_stop=not (0.07 <= roll < 0.13), goals_set_by_client=roll >= 0.1,
                employment_goal_raised_by=rng.choices(["nobody", "client", "therapist", "benefits_agency"], [60, 25, 10, 5])[0],
            )  # fmt: skip
        if age > 30 and rng.random() < 0.12:
            record_withdrawal(
                context=context, referral_id=referral.pk, withdrawn_at=_at(min(today, consent_day + timedelta(days=rng.randint(7, 30))), 15),
                reason=rng.choices(["no_longer_wanted", "felt_pressured", "moved_or_unreachable", "other"], [50, 20, 20, 10])[0],
            )  # fmt: skip
            return
        if age > 100 and rng.random() < 0.7:
            ended = consent_day + timedelta(days=rng.randint(60, 95))
            record_voluntariness_check(
                context=context, referral_id=referral.pk, checked_at=_at(ended, 11), stage="discharge",
                told_attendance_required=False, sanction_mentioned=False, feels_free_to_stop=True,
                goals_set_by_client=True, employment_goal_raised_by=rng.choice(["nobody", "client"]),
            )  # fmt: skip
            discharge_referral(
                context=context, referral_id=referral.pk, discharged_on=ended,
                reason=rng.choices(["completed", "client_ended", "not_suitable", "referred_on", "no_contact"], [60, 15, 5, 10, 10])[0],
            )  # fmt: skip

    def build_access_attempts(self, world):
        """What a DPO should find in the alert queue: a work coach's attempts to list and to open a referral."""
        coach = AccessContext.for_command(User.objects.get(username="workcoach"), "seed_demo")
        referral = Referral.objects.filter(site=world["sites"]["jobcentre"]).order_by("referred_on").first()
        # Each refusal writes its denied event before raising; caught inside the transaction, the event stays.
        for attempt in (
            lambda: firewall.refuse_list_if_not_allowed(coach),
            lambda: firewall.open_referral(coach, referral.pk, purpose=firewall.Purpose.VIEW),
        ):
            try:
                attempt()
            except (firewall.ClientDataRefused, firewall.ReferralNotFound):
                pass

    def print_accounts(self, password):
        self.stdout.write("\nDemo accounts (password: %s)\n" % password)
        self.stdout.write(f"  {'username':<16} {'organisation':<30} role")
        for username, org_name, role, _team, _superuser in ACCOUNTS:
            self.stdout.write(f"  {username:<16} {org_name:<30} {role}")
        self.stdout.write(
            "\nAPI          http://127.0.0.1:8000/api/v1/\n"
            "Swagger UI   http://127.0.0.1:8000/api/docs/\n"
            "Redoc        http://127.0.0.1:8000/api/redoc/\n"
            "Admin        http://127.0.0.1:8000/admin/\n"
        )


def _at(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, 0)))


def _nhs_number(rng: random.Random) -> str:
    """A number in the 999 range NHS Digital reserves for tests, with a valid check digit."""
    while True:
        digits = [9, 9, 9] + [rng.randrange(10) for _ in range(6)]
        total = sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            return "".join(map(str, digits)) + str(check)


CONSENT_TEXT = """Talking therapies at this clinic are completely voluntary.

- Coming to therapy is your choice. You do not have to attend, and it is not part of any work-related requirement.
- Whether you take part or not has no effect on your benefits.
- The therapy service is separate from the Jobcentre. We are a different service, with our own rooms, records and staff.
- Nothing about you or your therapy is shared with the Jobcentre or any benefits agency.
- You are free to stop at any time, with no consequence.

What we work on is what you bring. Employment is a goal only if you choose it."""

CONSENT_TEXT_CY = """Mae therapïau siarad yn y clinig hwn yn gwbl wirfoddol.

- Eich dewis chi yw dod i therapi. Nid oes rhaid i chi fynychu.
- Nid yw cymryd rhan yn effeithio ar eich budd-daliadau.
- Mae'r gwasanaeth therapi ar wahân i'r Ganolfan Byd Gwaith.
- Nid oes dim amdanoch yn cael ei rannu â'r Ganolfan Byd Gwaith.
- Rydych yn rhydd i roi'r gorau iddi unrhyw bryd."""
