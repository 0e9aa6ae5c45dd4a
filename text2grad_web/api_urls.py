"""REST API routes under /api/v1/, the OpenAPI schema and its interactive docs (served offline)."""

from django.templatetags.static import static
from django.urls import include, path, re_path
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from annotations import api as annotation_api
from annotations.api import hooks as hooks_api
from annotations.api import ingest as ingest_api
from annotations.api import machine as machine_api
from evaluation import api as evaluation_api
from training import api as training_api
from training.api import downloads as download_api
from training.api import rewards as reward_api


class RoleAPIRootView(DefaultRouter.APIRootView):
    """The API's index of links, for accounts with a role (as every list it links to)."""

    permission_classes = [annotation_api.HasRole]


class Router(DefaultRouter):
    APIRootView = RoleAPIRootView
    # No format suffixes (".json"): custom actions do not take them (a TypeError, so a 500), and
    # ?format= or the Accept header does the same job.
    include_format_suffixes = False


router = Router()
router.register("projects", annotation_api.ProjectViewSet, basename="api-project")
router.register("prompts", annotation_api.PromptViewSet, basename="api-prompt")
router.register("generations", annotation_api.GenerationViewSet, basename="api-generation")
router.register("annotations", annotation_api.AnnotationViewSet, basename="api-annotation")
router.register("token-rewards", reward_api.TokenRewardViewSet, basename="api-token-reward")
router.register("exports", annotation_api.ExportViewSet, basename="api-export")
router.register("imports", annotation_api.ImportViewSet, basename="api-import")
router.register("reviews", annotation_api.ReviewViewSet, basename="api-review")
router.register("agreement", annotation_api.AgreementViewSet, basename="api-agreement")
router.register("model-versions", training_api.ModelVersionViewSet, basename="api-model-version")
router.register("training-rounds", training_api.TrainingRoundViewSet, basename="api-training-round")
router.register("generation-jobs", training_api.GenerationJobViewSet, basename="api-generation-job")
router.register("critic-versions", training_api.CriticVersionViewSet, basename="api-critic-version")
router.register("critic-jobs", training_api.CriticJobViewSet, basename="api-critic-job")
router.register("model-downloads", download_api.ModelDownloadViewSet, basename="api-model-download")
router.register("machine-critics", machine_api.MachineCriticConfigViewSet, basename="api-machine-critic")
router.register("machine-critic-jobs", machine_api.MachineCriticJobViewSet, basename="api-machine-critic-job")
router.register("webhooks", hooks_api.WebhookViewSet, basename="api-webhook")
router.register("webhook-deliveries", hooks_api.WebhookDeliveryViewSet, basename="api-webhook-delivery")
router.register("evaluation-campaigns", evaluation_api.CampaignViewSet, basename="api-evaluation-campaign")


def _is_remote(url: str) -> bool:
    return "://" in url or url.startswith("//")


class OfflineSwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI from the copy vendored under static/vendor/swagger-ui/, never from a CDN; its start-up
    script is served from this URL with ``?script`` (no inline script, for the CSP), and the page's styles
    come from static/css/app.css (templates/drf_spectacular/swagger_ui.html).

    drf-spectacular's default SWAGGER_UI_DIST is a CDN URL; any local setting (such as "SIDECAR" with
    drf-spectacular-sidecar installed) is used as it is.
    """

    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        if _is_remote(spectacular_settings.SWAGGER_UI_DIST):
            return static(f"vendor/swagger-ui/{filename}")
        return SpectacularSwaggerView._swagger_ui_resource(filename)

    @staticmethod
    def _swagger_ui_favicon() -> str:
        if _is_remote(spectacular_settings.SWAGGER_UI_FAVICON_HREF):
            return static("vendor/swagger-ui/favicon-32x32.png")
        return SpectacularSwaggerView._swagger_ui_favicon()


urlpatterns = [
    path("auth/token/", annotation_api.TokenObtainView.as_view(), name="api-token"),
    path("me/", annotation_api.MeView.as_view(), name="api-me"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", OfflineSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Ids beyond bigint are a 404 from the resolver, never a database error.
    re_path(
        rf"^projects/(?P<pk>{annotation_api.ID_REGEX})/agreement/$",
        annotation_api.ProjectAgreementView.as_view(),
        name="api-project-agreement",
    ),
    re_path(
        rf"^projects/(?P<pk>{annotation_api.ID_REGEX})/outputs/$",
        ingest_api.OutputIngestView.as_view(),
        name="api-project-outputs",
    ),
    re_path(
        rf"^generations/(?P<pk>{annotation_api.ID_REGEX})/gold/$",
        annotation_api.GoldView.as_view(),
        name="api-generation-gold",
    ),
    re_path(
        rf"^model-versions/(?P<pk>{annotation_api.ID_REGEX})/downloads/$",
        download_api.VersionDownloadsView.as_view(),
        name="api-model-version-downloads",
    ),
    re_path(
        rf"^model-versions/(?P<pk>{annotation_api.ID_REGEX})/card/$",
        download_api.VersionCardView.as_view(),
        name="api-model-version-card",
    ),
    path("", include(router.urls)),
]
