from __future__ import annotations

from metaserver.accounts.api.views import CurrentUserView, ObtainTokenView
from metaserver.routing import api_route

urlpatterns = [
    api_route("auth/token/", ObtainTokenView.as_view(), "auth-token"),
    api_route("user/", CurrentUserView.as_view(), "current-user"),
]
