"""The pages. Referral ids are taken as any text: the firewall decides, so a bad id is a logged "not found"."""

from django.urls import path

from web import accounts, clients, dpo, reports, start

app_name = "web"

urlpatterns = [
    path("", start.home, name="home"),
    path("sign-in/", accounts.SignInView.as_view(), name="sign-in"),
    path("sign-out/", accounts.SignOutView.as_view(), name="sign-out"),
    path("no-client-data/", start.no_client_data, name="no-client-data"),
    # The therapist and the clinical lead
    path("clients/", clients.client_list, name="clients"),
    path("clients/new/", clients.new_referral, name="new-referral"),
    path("clients/<str:referral_id>/", clients.client_detail, name="client"),
    path("clients/<str:referral_id>/consent/", clients.record_consent, name="consent"),
    path("clients/<str:referral_id>/voluntariness-check/", clients.record_check, name="check"),
    path("clients/<str:referral_id>/withdraw/", clients.withdraw, name="withdraw"),
    path("clients/<str:referral_id>/decline/", clients.decline, name="decline"),
    path("clients/<str:referral_id>/discharge/", clients.discharge, name="discharge"),
    path("clients/<str:referral_id>/receipt/", clients.receipt, name="receipt"),
    path("clients/<str:referral_id>/assignments/", clients.assignments, name="assignments"),
    path("break-glass/", clients.break_glass, name="break-glass"),
    # The data-protection officer
    path("dpo/alerts/", dpo.alerts, name="alerts"),
    path("dpo/alerts/dispose/", dpo.dispose_group, name="dispose-group"),
    path("dpo/log/", dpo.log, name="log"),
    path("dpo/chain/", dpo.chain, name="chain"),
    path("dpo/subject-access/", dpo.subject_access, name="subject-access"),
    path("dpo/subject-access/<str:referral_id>/", dpo.subject_access_download, name="subject-access-download"),
    # Reports: the reviewer, and leads and DPOs of providers in a pilot
    path("reports/", reports.pilots, name="pilots"),
    path("reports/<int:pilot_id>/", reports.report, name="report"),
    path("reports/<int:pilot_id>/csv/", reports.report_csv_download, name="report-csv"),
    path("reports/<int:pilot_id>/freeze/", reports.freeze, name="freeze"),
    path("reports/snapshots/<int:snapshot_id>/", reports.snapshot, name="snapshot"),
]
