from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotations import views as annotation_views

urlpatterns = [
    path("", annotation_views.home, name="home"),
    path("healthz", annotation_views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("text2grad_web.api_urls")),
    path("data/", include("annotations.data_urls")),
    path("", include("annotations.urls")),
    path("", include("training.urls")),
    path("", include("evaluation.urls")),
    path("admin/", admin.site.urls),
]
