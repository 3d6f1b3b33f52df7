"""No admin page lists API tokens: knox keeps only their hashes, but its admin would let an administrator
issue a token for any account (and so act as anyone) and shows every account's sign-ins."""

from django.contrib import admin
from knox.models import AuthToken

if admin.site.is_registered(AuthToken):
    admin.site.unregister(AuthToken)
