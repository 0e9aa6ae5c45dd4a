from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from annotations.views import workspace as annotation_views

from .security_views import csp_report


class FaviconRedirect(RedirectView):
    """Browsers (and the admin) ask for /favicon.ico; pages link the SVG. Resolved per request: at import
    the production static storage may not have its manifest yet (``check --deploy`` before collectstatic)."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("favicon.svg")


urlpatterns = [
    path("", annotation_views.home, name="home"),
    path("healthz", annotation_views.healthz, name="healthz"),
    # Pages link the SVG icon; this answers browsers (and the admin) that ask for the classic path.
    path("favicon.ico", FaviconRedirect.as_view()),
    path("csp-report/", csp_report, name="csp_report"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("text2grad_web.api_urls")),
    path("data/", include("annotations.data_urls")),
    path("audit/", include("audit.urls")),
    path("", include("annotations.urls")),
    path("", include("training.urls")),
    path("", include("evaluation.urls")),
    path("admin/", admin.site.urls),
]
