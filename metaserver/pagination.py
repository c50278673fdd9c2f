"""Page-number pagination that refuses junk instead of silently ignoring it."""

from __future__ import annotations

from typing import Any

from django.core.paginator import InvalidPage
from django.db.models import Count, QuerySet, Window
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
        return self._page(
            self.django_paginator_class(queryset, size), page_number, request
        )

    def _page(self, paginator: Any, number: int, request: Request) -> list[Any]:
        try:
            self.page = paginator.page(number)
        except InvalidPage:
            raise NotFound(
                f"page {number} does not exist ({paginator.num_pages} pages)"
            ) from None
        self.request = request
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        return list(self.page)

    def paginate_ids(
        self, ids: QuerySet[Any], request: Request, view: APIView | None = None
    ) -> list[Any]:
        """Like `paginate_queryset` for a `values_list("pk", flat=True)` query, in
        one query instead of two: the total comes with the page's rows as a
        window count, so the filter (a listing's visibility predicate) runs once.
        """
        number = self._positive(request, self.page_query_param, None) or 1
        size = self.get_page_size(request)
        start = (number - 1) * size
        rows = list(
            ids.annotate(_total=Window(Count("*"))).values_list("pk", "_total")[
                start : start + size
            ]
        )
        # Past the last page the window has no row to carry the count.
        total = rows[0][1] if rows else (0 if number == 1 else ids.count())
        paginator = self.django_paginator_class(_Counted(total, start, rows), size)
        return self._page(paginator, number, request)


class _Counted:
    """A known count and one fetched page, as Django's Paginator asks for them."""

    def __init__(self, total: int, start: int, rows: list[tuple[Any, int]]) -> None:
        self._total, self._start = total, start
        self._ids = [pk for pk, _ in rows]

    def count(self) -> int:
        return self._total

    def __len__(self) -> int:
        return self._total

    def __getitem__(self, window: slice) -> list[Any]:
        offset = window.start - self._start
        return self._ids[offset : offset + (window.stop - window.start)]
