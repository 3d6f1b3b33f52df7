"""Sign-in and the signed-in user's own details."""

from axes.helpers import get_lockout_message
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from knox import views as knox_views
from knox.models import get_token_model
from knox.settings import knox_settings
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from api.authentication import TokenAuthentication
from api.fields import StrictSerializer, parsed, parser_classes
from api.query import DeclaredQueryOnly
from api.schema import ACCOUNT
from colocation.models import OrganisationKind, Role
from colocation.selectors import staff_profile_of


class TokenInput(StrictSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, style={"input_type": "password"}, trim_whitespace=False)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField(help_text="Send as Authorization: Token <token>. Shown this once: only its hash is kept.")
    expiry = serializers.DateTimeField(
        help_text="When the token lapses unless used before then; each use moves it on, up to the sign-in's maximum."
    )


class SignInRateThrottle(ScopedRateThrottle):
    """Sign-in attempts per address (the "sign_in" rate), on top of django-axes' lockout per account.

    X-Forwarded-For is believed only as far as the settings say proxies set it (REST_FRAMEWORK NUM_PROXIES).
    Left unset, DRF would key on the whole header, which the client writes: each made-up address would get a
    fresh allowance, so here it is ignored and the connecting address counts.
    """

    scope = "sign_in"

    def get_ident(self, request):
        if api_settings.NUM_PROXIES is None:
            return request.META.get("REMOTE_ADDR")
        return super().get_ident(request)


class TokenView(DeclaredQueryOnly, APIView):
    """Exchange a username and password for a token; repeated failures lock the account for a while."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [SignInRateThrottle]
    throttle_scope = "sign_in"
    parser_classes = parser_classes()

    @extend_schema(
        tags=[ACCOUNT],
        summary="Sign in: a token for a username and password",
        description=(
            "Send the token back as `Authorization: Token <token>`. Five failed attempts lock the account for a while "
            "(429 with code locked_out); wrong credentials are a 400 with code invalid_credentials."
        ),
        operation_id="auth_token_create",
        request=TokenInput,
        responses={200: TokenOutput, 400: OpenApiResponse(description="Wrong username or password"),
                   429: OpenApiResponse(description="Locked out after repeated failures, or throttled")},
        auth=[],
    )  # fmt: skip
    def post(self, request):
        values = parsed(TokenInput, request.data)
        username, password = values["username"], values["password"]
        try:
            # A failure is an access event through django.contrib.auth's user_login_failed (consent.access.signals).
            user = authenticate(request._request, username=username, password=password)
        except PermissionDenied:
            user = None
        if getattr(request._request, "axes_locked_out", False):
            return Response(
                {
                    "detail": f"This account is locked after repeated failed sign-ins. {get_lockout_message()}",
                    "code": "locked_out",
                },
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
        if user is None:
            return Response(
                {"detail": "Wrong username or password.", "code": "invalid_credentials"}, status=status.HTTP_400_BAD_REQUEST
            )
        instance, token = _issue_token(user)
        # The sign-in is an access event through the same signal the admin's session login sends.
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        return Response({"token": token, "expiry": instance.expiry})


def _issue_token(user):
    """A new token for this sign-in (one per device); beyond the limit per account, the oldest lapse first."""
    limit = knox_settings.TOKEN_LIMIT_PER_USER
    tokens = get_token_model().objects
    if limit:
        live = tokens.filter(user=user).filter(Q(expiry__gt=timezone.now()) | Q(expiry__isnull=True)).order_by("-created")
        stale = list(live.values_list("digest", flat=True)[limit - 1 :])
        tokens.filter(Q(user=user) & (Q(digest__in=stale) | Q(expiry__lte=timezone.now()))).delete()
    return tokens.create(user=user, expiry=knox_settings.TOKEN_TTL)


class LogoutView(DeclaredQueryOnly, knox_views.LogoutView):
    """Sign out: the token this request carries stops working at once. An access event (user_logged_out)."""

    authentication_classes = [TokenAuthentication]

    @extend_schema(
        tags=[ACCOUNT],
        summary="Sign out: the token sent with this request stops working",
        operation_id="auth_logout_create",
        request=None,
        responses={204: OpenApiResponse(description="Signed out: the token no longer works")},
    )
    def post(self, request, format=None):
        return super().post(request, format)


class LogoutAllView(DeclaredQueryOnly, knox_views.LogoutAllView):
    """Sign out everywhere: every token of the account stops working at once. An access event (user_logged_out)."""

    authentication_classes = [TokenAuthentication]

    @extend_schema(
        tags=[ACCOUNT],
        summary="Sign out everywhere: every token of this account stops working",
        operation_id="auth_logoutall_create",
        request=None,
        responses={204: OpenApiResponse(description="Every token of the account revoked")},
    )
    def post(self, request, format=None):
        return super().post(request, format)


class OrganisationRef(serializers.Serializer):
    """The organisation an account belongs to."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=OrganisationKind.choices)


class MeOutput(serializers.Serializer):
    """The signed-in account: its organisation and role (null for an account without a staff profile)."""

    username = serializers.CharField()
    organisation = OrganisationRef(allow_null=True)
    role = serializers.ChoiceField(choices=Role.choices, allow_null=True)


class MeView(DeclaredQueryOnly, APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=[ACCOUNT],
        summary="The signed-in account",
        description="Your username, your organisation (id, name, kind) and your role.",
        operation_id="me_retrieve",
        responses=MeOutput,
    )
    def get(self, request):
        profile = staff_profile_of(request.user)
        return Response(
            {
                "username": request.user.get_username(),
                "organisation": OrganisationRef(profile.organisation).data if profile else None,
                "role": profile.role if profile else None,
            }
        )
