"""The app's URLs with single sign-on mounted, as settings mount them when OIDC is configured."""

from django.urls import include, path

from aethon.urls import urlpatterns as app_patterns

urlpatterns = [path("oidc/", include("planner.accounts.sso")), *app_patterns]
