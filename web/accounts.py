"""Signing in and out with Django's own views: the same accounts, the same django-axes lockout as the API.

Sign-ins through here are ordinary session sign-ins (django.contrib.auth.login), which the project logs as
access events wherever they happen; sessions end after 30 minutes idle (settings).
"""

from django import forms
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from web.pages import render_page


class SignInForm(AuthenticationForm):
    username = forms.CharField(
        label="Username", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username", "spellcheck": "false"})
    )
    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    error_messages = {
        "invalid_login": "Enter a correct username and password. After 5 failed attempts in a row the account is locked for a while.",
        "inactive": "This account is switched off. Ask an administrator.",
    }


class SignInView(auth_views.LoginView):
    template_name = "web/sign_in.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self):
        return "/"

    def form_invalid(self, form):
        if getattr(self.request, "axes_locked_out", False):
            # django-axes refused the attempt (5 failures in a row): say so on the page, with no form to retry.
            response = render_page(self.request, "web/locked_out.html", {"minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)},
                                   status=429)  # fmt: skip
            response.answers_lockout = True
            return response
        return render_page(self.request, self.template_name, self.get_context_data(form=form), status=400)

    def render_to_response(self, context, **kwargs):
        return render_page(self.request, self.template_name, context)


@method_decorator(never_cache, name="dispatch")
class SignOutView(auth_views.LogoutView):
    template_name = "web/signed_out.html"

    def render_to_response(self, context, **kwargs):
        return render_page(self.request, self.template_name, context)
