from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from api import access_log, accounts, colocation, consent_exports, referrals, reports


class Router(DefaultRouter):
    # No format suffixes (referrals/{id}.json): an operation answers the formats its schema names and no other.
    include_format_suffixes = False


router = Router()
router.register("sites", colocation.SiteViewSet, basename="site")
router.register("pilots", colocation.PilotViewSet, basename="pilot")
router.register("consent-templates", colocation.ConsentTemplateViewSet, basename="consent-template")
router.register("referrals", referrals.ReferralViewSet, basename="referral")

urlpatterns = [
    path("api/v1/auth/token/", accounts.TokenView.as_view(), name="auth-token"),
    path("api/v1/auth/logout/", accounts.LogoutView.as_view(), name="auth-logout"),
    path("api/v1/auth/logoutall/", accounts.LogoutAllView.as_view(), name="auth-logout-all"),
    path("api/v1/me/", accounts.MeView.as_view(), name="me"),
    # Each module's own patterns come before the router so deeper paths under /referrals/{id}/ reach them.
    path("api/v1/", include(consent_exports.urlpatterns)),
    path("api/v1/", include(access_log.urlpatterns)),
    path("api/v1/", include(reports.urlpatterns)),
    path("api/v1/", include(router.urls)),
    path("api/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
]
