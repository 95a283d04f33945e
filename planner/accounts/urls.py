from django.urls import path

from planner.accounts import views

app_name = "accounts"

urlpatterns = [
    path("invite/<str:uidb64>/<str:token>/", views.invite_accept, name="invite_accept"),
    path("invite/renew/", views.invite_renew, name="invite_renew"),
    path("people/", views.people, name="people"),
    path("people/<int:pk>/deactivate/", views.person_deactivate, name="person_deactivate"),
    path("people/<int:pk>/reinvite/", views.person_reinvite, name="person_reinvite"),
]
