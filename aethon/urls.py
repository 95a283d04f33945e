from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("accounts/", include("planner.accounts.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(("planner.api.urls", "api"), namespace="api")),
    path("", include("planner.urls")),
]

if settings.AETHON_OIDC_ENABLED:
    urlpatterns.insert(0, path("oidc/", include("planner.accounts.sso")))
