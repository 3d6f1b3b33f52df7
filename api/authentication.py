from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication, loading the staff profile and organisation in the same query."""

    def authenticate_credentials(self, key):
        try:
            token = Token.objects.select_related("user__staff_profile__organisation", "user__staff_profile__team").get(key=key)
        except Token.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid token: sign in again at /api/v1/auth/token/.") from None
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This account is inactive.")
        return token.user, token
