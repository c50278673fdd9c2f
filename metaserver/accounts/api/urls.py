from __future__ import annotations

from django.urls import re_path

from metaserver.accounts.api.organization_views import OrganizationViewSet
from metaserver.accounts.api.team_views import TeamViewSet
from metaserver.accounts.api.user_views import UserViewSet
from metaserver.accounts.api.views import CurrentUserView, ObtainTokenView
from metaserver.routing import api_route

LIST = {"get": "list", "post": "create"}
DETAIL = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}

urlpatterns = [
    api_route("auth/token/", ObtainTokenView.as_view(), "auth-token"),
    api_route("user/", CurrentUserView.as_view(), "current-user"),
    api_route("organizations/", OrganizationViewSet.as_view(LIST), "organization-list"),
    api_route(
        "organizations/{name}/",
        OrganizationViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        "organization-detail",
    ),
    api_route("users/", UserViewSet.as_view(LIST), "user-list"),
    # Django's usernames may hold '@' and '+', which technical names may not.
    re_path(
        r"^users/(?P<username>[\w.@+-]{1,150})/?$",
        UserViewSet.as_view(DETAIL),
        name="user-detail",
    ),
    api_route("teams/", TeamViewSet.as_view(LIST), "team-list"),
    re_path(
        r"^teams/(?P<id>[0-9]{1,18})/?$",
        TeamViewSet.as_view(DETAIL),
        name="team-detail",
    ),
]
