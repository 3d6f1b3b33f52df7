"""Token authentication: django-rest-knox's hashed, expiring tokens, sent as `Authorization: Token <token>`.

Knox passes over a header of another scheme silently (for another authenticator to try), which would answer
"credentials were not provided" to a client that did send some. This API has no other header scheme, so a
Bearer or Basic header, or a Token header that is not one token, is refused with a 401 that says so.
"""

import binascii
from hmac import compare_digest

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox import auth
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

SIGN_IN = "sign in with POST /api/v1/auth/token/"


class TokenAuthentication(auth.TokenAuthentication):
    """knox's token authentication with precise refusals, loading the staff profile in the same query."""

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        scheme = parts[0].decode("latin-1") if parts else ""
        if scheme.lower() != knox_settings.AUTH_HEADER_PREFIX.lower():
            shown = f"the {scheme[:20]} scheme" if scheme.isascii() and scheme.isalpha() else "a scheme this API does not know"
            raise exceptions.AuthenticationFailed(
                f"The Authorization header uses {shown}; this API accepts only 'Token <token>': {SIGN_IN}."
            )
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                f"The Authorization header must be 'Token', one space, and the token itself: {SIGN_IN}."
            )
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(f"That is not a token this API issued: {SIGN_IN}.") from None
        return self.authenticate_credentials(token.encode("ascii"))

    def authenticate_credentials(self, token):
        token = token.decode("ascii")
        refused = exceptions.AuthenticationFailed(f"Invalid or expired token: {SIGN_IN} again.")
        candidates = (
            get_token_model()
            .objects.filter(token_key=token[: CONSTANTS.TOKEN_KEY_LENGTH])
            .select_related("user__staff_profile__organisation", "user__staff_profile__team")
        )
        for auth_token in candidates:
            if self._cleanup_token(auth_token):
                continue
            try:
                digest = hash_token(token)
            except (TypeError, binascii.Error):
                raise refused from None
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                if not auth_token.user.is_active:
                    raise exceptions.AuthenticationFailed("This account is inactive.")
                return auth_token.user, auth_token
        raise refused


class TokenScheme(OpenApiAuthenticationExtension):
    """The token scheme in the OpenAPI schema: `Authorization: Token <token>` (drf-spectacular)."""

    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix=knox_settings.AUTH_HEADER_PREFIX)
