"""Page-number pagination that refuses junk instead of silently ignoring it."""

from __future__ import annotations

from typing import Any

from django.core.paginator import InvalidPage
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.views import APIView


class StrictPageNumberPagination(PageNumberPagination):
    """`?page=` (1-based) and `?page_size=` (1..max_page_size); else a 400 naming it."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def _positive(self, request: Request, name: str, maximum: int | None) -> int | None:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return None
        if not raw.isdigit() or int(raw) < 1 or (maximum and int(raw) > maximum):
            upper = f" and {maximum}" if maximum else ""
            bound = f"between 1{upper}" if maximum else "a positive integer"
            raise ValidationError({name: [f"must be {bound}, got {raw[:20]!r}"]})
        return int(raw)

    def get_page_size(self, request: Request) -> int:
        size = self._positive(request, self.page_size_query_param, self.max_page_size)
        return size or self.page_size

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: APIView | None = None
    ) -> list[Any]:
        page_number = self._positive(request, self.page_query_param, None) or 1
        size = self.get_page_size(request)
        paginator = self.django_paginator_class(queryset, size)
        try:
            self.page = paginator.page(page_number)
        except InvalidPage:
            raise NotFound(
                f"page {page_number} does not exist ({paginator.num_pages} pages)"
            ) from None
        self.request = request
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        return list(self.page)
