"""Each user's journey through the pages, in a real headless Chromium, with axe-core on every page."""

import pytest
from django.db import transaction

from consent.access import firewall
from consent.access.log import AccessContext
from consent.access.models import AccessEvent, AlertDisposition
from consent.models import ConsentRecord, Referral, ReferralStatus, ScopeWithdrawal, Withdrawal
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_the_therapist_records_a_referral_with_consent_withdraws_sms_only_and_prints_the_receipt(visitor, browser_world):
    w = browser_world
    person = visitor("therapist", PASSWORD)
    page = person.page
    assert page.url.endswith("/clients/")
    person.accessible("therapist-clients")

    page.click("text=Record a new self-referral")
    person.accessible()
    page.click("button:has-text('Record the referral')")  # nothing filled in: every field says what it needs
    assert page.locator(".nhsuk-error-summary").is_visible()
    person.accessible("therapist-referral-errors")
    page.fill("#id_local_reference", "KTT-E2E-0001")
    page.select_option("#id_site", str(w.site.pk))
    page.fill("#id_referred_on", "2026-09-20")
    page.check("input[name=how_heard][value=leaflet_or_poster]")
    page.check("input[name=pathway][value=self_referral]")
    page.select_option("#id_source_of_referral", "B1")
    person.accessible("therapist-new-referral")
    page.click("button:has-text('Record the referral')")

    assert "/consent/" in page.url
    assert w.template.body in page.inner_text("main")  # the template's own wording, for the client to read
    person.accessible("therapist-consent")
    for box in page.locator("input[name=acknowledgements]").all():
        box.check()
    for scope in ("treatment", "contact_by_sms", "contact_by_phone"):
        page.check(f"input[name=scopes][value={scope}]")
    page.check("input[name=method][value=verbal]")
    page.click("button:has-text('Record consent')")

    assert not page.locator(".nhsuk-error-summary").count(), page.inner_text(".nhsuk-error-summary")
    referral = Referral.objects.get(client__local_reference="KTT-E2E-0001")
    assert page.url.endswith(f"/clients/{referral.pk}/")
    assert ConsentRecord.objects.get(referral=referral).scopes == ["treatment", "contact_by_phone", "contact_by_sms"]
    person.accessible("therapist-client")

    _withdraw_sms_and_print_the_receipt(person, referral)


def _withdraw_sms_and_print_the_receipt(person, referral):
    page = person.page
    page.click("text=Withdraw a use, or withdraw from therapy")
    person.accessible("therapist-withdraw")
    page.check("input[name=what][value=uses]")
    page.check("input[name=scopes][value=contact_by_sms]")
    page.check("input[name=reason][value=no_longer_wanted]")
    page.click("button:has-text('Record the withdrawal')")
    assert "Therapy carries on" in page.inner_text("main")
    referral.refresh_from_db()
    assert referral.status == ReferralStatus.ACTIVE  # the episode goes on
    assert list(ScopeWithdrawal.objects.filter(referral=referral).values_list("scope", flat=True)) == ["contact_by_sms"]
    assert Withdrawal.objects.filter(referral=referral).count() == 0

    page.click("text=Consent receipt for the client")
    receipt = page.inner_text("main")
    assert "Sending you text messages (SMS) about your therapy" in receipt and "Withdrawn on" in receipt
    assert "Phoning you about your therapy" in receipt and "In force" in receipt
    assert "What the Jobcentre gets" in receipt and "How to withdraw" in receipt
    person.accessible("therapist-receipt")
    # Printed, the receipt is the receipt alone: no header, menus or footer.
    page.emulate_media(media="print")
    assert not page.locator("header.nhsuk-header").is_visible()
    assert page.locator(".consent-receipt").is_visible()
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")


def test_the_dpo_disposes_of_a_group_of_alerts_at_once(visitor, browser_world):
    w = browser_world
    # One work-coach session's refused attempts: three alerts, one actor, one day.
    context = AccessContext.for_command(w.work_coach, "test")
    for _ in range(3):
        with transaction.atomic(), pytest.raises(firewall.ReferralNotFound):
            firewall.open_referral(context, w.referral.pk, purpose=firewall.Purpose.VIEW)
    alerts = AccessEvent.objects.filter(chain=w.kent, actor_id=w.work_coach.pk).exclude(alert_reasons="")
    assert alerts.count() == 3

    person = visitor("dpo", PASSWORD)
    page = person.page
    assert page.url.endswith("/dpo/alerts/")
    person.accessible("dpo-alerts")
    group = page.locator(".nhsuk-card", has_text="workcoach")
    assert "3 open alerts" in group.inner_text()
    group.locator("input[value=no_concern]").check()
    group.locator("textarea[name=note]").fill("One work coach's session, all refused; spoken to their manager.")
    group.locator("button").click()
    assert "Decision recorded on 3 alerts" in page.inner_text("main")
    assert AlertDisposition.objects.filter(event__in=alerts, disposition="no_concern").count() == 3
    assert "workcoach" not in page.inner_text("main").split("Done", 1)[-1].replace("Decision recorded", "")
    person.accessible()

    for path, name in (("/dpo/log/", "dpo-log"), ("/dpo/chain/", "dpo-chain"), ("/dpo/subject-access/", "")):
        page.goto(path)
        person.accessible(name)
    page.goto("/dpo/chain/")
    page.click("button:has-text('Verify the whole chain now')")
    assert "Verified" in page.inner_text("main")
    person.accessible()


def test_the_reviewer_opens_a_report(visitor, browser_world):
    w = browser_world
    person = visitor("reviewer", PASSWORD)
    page = person.page
    assert page.url.endswith("/reports/")
    person.accessible("reviewer-pilots")
    page.click(f"text={w.pilot.name}")
    person.accessible()
    page.select_option("#id_period", "2026-Q3")
    page.click("button:has-text('Show this period')")
    assert page.locator("h1").inner_text() == "Compliance report: 2026-Q3"
    assert "The six principles" in page.inner_text("main")
    person.accessible("reviewer-report")


def test_the_work_coach_sees_nothing(visitor, browser_world):
    w = browser_world
    person = visitor("workcoach", PASSWORD)
    page = person.page
    assert page.url.endswith("/no-client-data/")
    assert "This account can see no client data" in page.inner_text("main")
    person.accessible("work-coach")
    for path in ("/clients/", f"/clients/{w.referral.pk}/", "/dpo/alerts/", "/reports/"):
        response = page.goto(path)
        assert response.status in (403, 404)
        assert "KTT-000123" not in page.content() and str(w.referral.pk) not in page.inner_text("body")
        person.accessible()
    refused = AccessEvent.objects.filter(actor_id=w.work_coach.pk, outcome="denied")
    assert refused.count() >= 5  # the start page and each attempt, all refused and logged


def test_every_other_page_passes_the_accessibility_check(visitor, browser_world):
    """The pages the four journeys do not visit: the lead's, the remaining record forms, a snapshot."""
    w = browser_world
    lead = visitor("lead", PASSWORD)
    page = lead.page
    lead.accessible("lead-clients")
    for path in (f"/clients/{w.referral.pk}/voluntariness-check/", f"/clients/{w.referral.pk}/decline/",
                 f"/clients/{w.referral.pk}/discharge/", f"/clients/{w.referral.pk}/receipt/", "/break-glass/"):  # fmt: skip
        page.goto(path)
        lead.accessible()
    page.goto(f"/clients/{w.referral.pk}/assignments/")
    page.select_option("#id_therapist", "unassigned")
    page.get_by_role("button", name="Assign", exact=True).click()
    assert "Assigned unassigned" in page.inner_text("main")
    lead.accessible("lead-assignments")
    page.goto("/break-glass/")
    page.fill("#id_referral", str(w.referral.pk))
    page.fill("#id_reason", "Safeguarding concern raised at reception")
    page.click("button:has-text('Open the record')")
    assert "Opened by break-glass" in page.inner_text("main") and "9434765919" not in page.content()
    lead.accessible("lead-break-glass")
    page.goto(f"/reports/{w.pilot.pk}/?period=2026-Q3")
    page.click("button:has-text('Freeze this report as a snapshot')")
    assert "Snapshot" in page.locator("h1").inner_text()
    page.click("button:has-text('Verify this snapshot')")
    assert "Verified" in page.inner_text("main")
    lead.accessible("lead-snapshot")
    page.goto("/no-such-page/")
    lead.accessible()
