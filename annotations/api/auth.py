"""Token login (locked out like the login page after repeated failures) and who am I."""

from __future__ import annotations

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_record

from .. import roles, serializers
from ..login_guard import credentials_problem
from ..safejson import SafeJSONParser
from .plumbing import LoginRateThrottle


class LockedOut(exceptions.Throttled):
    default_detail = "Too many failed logins for this account from this address: it is locked here for a while. Try again later."
    default_code = "locked_out"


class TokenObtainView(ObtainAuthToken):
    """Trade a username and password for an API token (send it as ``Authorization: Token <key>``).

    Failures count towards the same lockout as the login page (django-axes, in the database, per account
    and client address): past the limit the answer is 429 for the cool-off period from that address, even
    with the right password.
    """

    throttle_classes = [LoginRateThrottle]
    # The safe parser (ObtainAuthToken names DRF's plain JSONParser): nesting, NUL, surrogates are a 400.
    parser_classes = [SafeJSONParser, FormParser, MultiPartParser]

    def post(self, request, *args, **kwargs):
        if not hasattr(request.data, "get"):
            raise exceptions.ValidationError({"detail": "Send a username and a password."})
        username = request.data.get("username")
        problem = credentials_problem(username, request.data.get("password"))
        if problem:  # the login page's rule (annotations.login_guard), also when the middleware is absent
            raise exceptions.ValidationError({"detail": problem})
        credentials = {"username": username if isinstance(username, str) else ""}
        # The HttpRequest: axes keeps its per-request attributes there, and DRF's wrapper does not.
        wait = int(settings.AXES_COOLOFF_TIME.total_seconds())
        if not AxesProxyHandler.is_allowed(request._request, credentials):
            raise LockedOut(wait=wait)
        try:
            response = super().post(request, *args, **kwargs)
        except exceptions.ValidationError:
            if getattr(request, "axes_locked_out", False):  # this failure reached the limit
                raise LockedOut(wait=wait) from None
            raise
        user = Token.objects.select_related("user").get(key=response.data["token"]).user
        audit_record(action="login.token", actor=user, obj=user)
        return response


class MeView(APIView):
    @extend_schema(responses={200: serializers.MeSerializer})
    def get(self, request):
        """Who the token or session belongs to, and their roles."""
        user = request.user
        return Response({"id": user.pk, "username": user.get_username(), "roles": roles.role_names(user)})
