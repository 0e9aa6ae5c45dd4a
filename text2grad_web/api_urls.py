"""REST API routes under /api/v1/, the OpenAPI schema and its interactive docs (served offline)."""

from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from annotations import api as annotation_api
from evaluation import api as evaluation_api
from training import api as training_api

router = DefaultRouter()
router.register("projects", annotation_api.ProjectViewSet, basename="api-project")
router.register("prompts", annotation_api.PromptViewSet, basename="api-prompt")
router.register("generations", annotation_api.GenerationViewSet, basename="api-generation")
router.register("annotations", annotation_api.AnnotationViewSet, basename="api-annotation")
router.register("token-rewards", annotation_api.TokenRewardViewSet, basename="api-token-reward")
router.register("exports", annotation_api.ExportViewSet, basename="api-export")
router.register("model-versions", training_api.ModelVersionViewSet, basename="api-model-version")
router.register("training-rounds", training_api.TrainingRoundViewSet, basename="api-training-round")
router.register("evaluation-campaigns", evaluation_api.CampaignViewSet, basename="api-evaluation-campaign")


def _is_remote(url: str) -> bool:
    return "://" in url or url.startswith("//")


class OfflineSwaggerView(SpectacularSwaggerView):
    """Swagger UI from the copy vendored under static/vendor/swagger-ui/, never from a CDN.

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
    path("", include(router.urls)),
]
