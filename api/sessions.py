"""Django's session middleware, saving the session on every request (so it ends after 30 minutes idle) except
on an answer that already says the database is unavailable: saving then would turn that 503 into a 500."""

from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware


class SessionMiddleware(DjangoSessionMiddleware):
    def process_response(self, request, response):
        if response.status_code == 503:
            return response
        return super().process_response(request, response)
