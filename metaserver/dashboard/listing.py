"""What the datasets home lists: filters from the URL, the folder tree, tags.

`?q=` (search), `?folder=<id>` with `&recursive=1` (include subfolders) and a
repeatable `?tag=` combine; every folder and dataset comes from the gates of
`metaserver.datasets.access`. Anonymous visitors get the public datasets of all
organizations and no tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from rest_framework.exceptions import NotFound

from metaserver.accounts.access import AnyUser, is_logged_in
from metaserver.accounts.models import Organization
from metaserver.datasets.access import (
    annotate_folder_access,
    datasets_managed_by,
    datasets_visible_to,
    folders_visible_to,
    get_folder_for_user,
)
from metaserver.datasets.models import (
    TAG_NAME_MAX_CHARS,
    Dataset,
    Folder,
    FolderClosure,
    Tag,
)
from shared.protocol import AccessMode

MAX_QUERY_CHARS = 200
MAX_TAG_FILTERS = 20
MAX_SUGGESTIONS = 500
_TRUE = ("1", "true", "on", "yes")


@dataclass(frozen=True)
class DatasetFilters:
    """The filters of the dataset table, as read from the URL and checked."""

    query: str = ""
    folder: Folder | None = None
    recursive: bool = False
    tags: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.query or self.folder or self.tags)

    def params(self, page: int = 1) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = []
        if self.query:
            params.append(("q", self.query))
        if self.folder is not None:
            params.append(("folder", str(self.folder.pk)))
            if self.recursive:
                params.append(("recursive", "1"))
        params.extend(("tag", tag) for tag in self.tags)
        if page > 1:
            params.append(("page", str(page)))
        return params

    def url(self, page: int = 1) -> str:
        home = reverse("dashboard:home")
        params = self.params(page)
        return f"{home}?{urlencode(params)}" if params else home

    def without_tag(self, tag: str) -> str:
        return DatasetFilters(
            self.query,
            self.folder,
            self.recursive,
            tuple(t for t in self.tags if t != tag),
        ).url()

    def with_tag(self, tag: str) -> str:
        if tag in self.tags:
            return self.url()
        return DatasetFilters(
            self.query, self.folder, self.recursive, (*self.tags, tag)
        ).url()


def clean_tag_filters(values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty, de-duplicated tag names; too long ones cannot match and go."""
    tags: dict[str, None] = {}
    for value in values:
        tag = value.strip()
        if tag and len(tag) <= TAG_NAME_MAX_CHARS:
            tags[tag] = None
    return tuple(tags)[:MAX_TAG_FILTERS]


def _folder_param(
    user: AnyUser, organization: Organization | None, value: str
) -> Folder | None:
    """The folder `?folder=` names if the user sees it in their current organization."""
    if organization is None or not value.isdigit() or len(value) > 18:
        return None
    try:
        folder = get_folder_for_user(user, int(value), AccessMode.READ)
    except NotFound:
        return None
    return folder if folder.organization_id == organization.pk else None


def parse_filters(
    request: HttpRequest, organization: Organization | None
) -> DatasetFilters:
    """The filters of `request.GET`; what is junk or out of reach is left out."""
    params = request.GET
    folder = _folder_param(request.user, organization, params.get("folder", ""))
    return DatasetFilters(
        query=params.get("q", "").strip()[:MAX_QUERY_CHARS],
        folder=folder,
        recursive=folder is not None and params.get("recursive", "").lower() in _TRUE,
        tags=clean_tag_filters(params.getlist("tag")),
    )


def filter_changes_history(request: HttpRequest, filters: DatasetFilters) -> bool:
    """Whether the folder or tags differ from the page the htmx request came from.

    Those changes get a history entry (back goes to the previous folder); typing
    a search or turning a page only replaces the address.
    """
    current = getattr(request, "htmx", None)
    url = getattr(current, "current_url_abs_path", None) or ""
    before = parse_qs(urlsplit(url).query)

    def first(key: str) -> str:
        return (before.get(key) or [""])[0]

    old_folder = first("folder")
    new_folder = str(filters.folder.pk) if filters.folder else ""
    old_recursive = bool(old_folder) and first("recursive").lower() in _TRUE
    return (
        old_folder != new_folder
        or old_recursive != filters.recursive
        or clean_tag_filters(before.get("tag", [])) != filters.tags
    )


def visible_in(user: AnyUser, organization: Organization | None) -> QuerySet[Dataset]:
    """What the table may list: the organization's datasets `user` sees.

    Anonymous visitors see the public datasets of every organization.
    """
    datasets = datasets_visible_to(user)
    if not is_logged_in(user):
        return datasets
    if organization is None:
        return datasets.none()
    return datasets.filter(organization=organization)


def apply_filters(
    datasets: QuerySet[Dataset], filters: DatasetFilters
) -> QuerySet[Dataset]:
    """`datasets` narrowed by search, folder (and subfolders) and every tag."""
    query = filters.query
    if query:
        datasets = datasets.filter(
            Q(name__icontains=query)
            | Q(display_name__icontains=query)
            | Q(description__icontains=query)
        )
    if filters.folder is not None:
        if filters.recursive:
            below = FolderClosure.objects.filter(ancestor_id=filters.folder.pk)
            datasets = datasets.filter(folder_id__in=below.values("descendant_id"))
        else:
            datasets = datasets.filter(folder_id=filters.folder.pk)
    for tag in filters.tags:
        # One EXISTS per tag: every tag must match, and no duplicate rows.
        datasets = datasets.filter(
            Exists(
                Tag.datasets.through.objects.filter(
                    dataset=OuterRef("pk"), tag__name=tag
                )
            )
        )
    return datasets


def tag_counts(visible: QuerySet[Dataset]) -> list[tuple[str, int]]:
    """(name, datasets) of the tags on `visible` datasets, by name (one query)."""
    rows = (
        Tag.objects.filter(datasets__in=visible.values("pk"))
        .values("name")
        .annotate(datasets=Count("datasets"))
        .order_by("name")
    )
    merged: dict[str, int] = {}
    for row in rows:
        # Anonymous visitors see several organizations, each with its own tags.
        merged[row["name"]] = merged.get(row["name"], 0) + row["datasets"]
    return sorted(merged.items(), key=lambda item: item[0].casefold())


def editable_dataset_ids(user: AnyUser, datasets: Iterable[Dataset]) -> set[int]:
    """Which of `datasets` `user` may change (one query, none for anonymous)."""
    ids = [dataset.pk for dataset in datasets]
    if not ids or not is_logged_in(user):
        return set()
    return set(
        datasets_managed_by(user).filter(pk__in=ids).values_list("pk", flat=True)
    )


def folder_path(folder: Folder) -> list[tuple[int, str]]:
    """(id, name) of `folder`'s ancestors from the root, itself last (one query)."""
    return list(
        FolderClosure.objects.filter(descendant_id=folder.pk)
        .order_by("-depth")
        .values_list("ancestor_id", "ancestor__name")
    )


@dataclass
class FolderNode:
    """One folder of the sidebar tree, in display order (depth first, by name)."""

    id: int
    name: str
    parent_id: int | None
    is_accessible: bool
    is_editable: bool
    depth: int = 0
    children: list[FolderNode] = field(default_factory=list)
    # How many nested lists close after this node (the template draws a flat list).
    close_count: int = 0

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    @property
    def has_children(self) -> bool:
        return bool(self.children)

    @property
    def closers(self) -> range:
        return range(self.close_count)


@dataclass(frozen=True)
class FolderTree:
    nodes: tuple[FolderNode, ...]

    @property
    def editable(self) -> tuple[FolderNode, ...]:
        return tuple(node for node in self.nodes if node.is_editable)

    @property
    def can_edit(self) -> bool:
        return any(node.is_editable for node in self.nodes)


def _flatten(roots: list[FolderNode]) -> list[FolderNode]:
    """Depth first, children by name; each subtree's last node closes its lists."""
    ordered: list[FolderNode] = []

    def visit(node: FolderNode, depth: int) -> None:
        node.depth = depth
        ordered.append(node)
        node.children.sort(key=lambda child: (child.name.casefold(), child.id))
        for child in node.children:
            visit(child, depth + 1)
        if node.children:
            ordered[-1].close_count += 1

    for root in roots:
        visit(root, 0)
    return ordered


def _folder_rows(user: AnyUser, organization: Organization) -> list[dict[str, Any]]:
    folders = annotate_folder_access(
        folders_visible_to(user).filter(organization=organization), user
    )
    return list(
        folders.values("id", "name", "parent_id", "is_accessible", "is_editable")
    )


def folder_tree(user: AnyUser, organization: Organization | None) -> FolderTree:
    """The organization's folders as `user` sees them (one query).

    Folders seen only as the way to an allowed one (breadcrumbs) have
    `is_accessible` False: the tree shows them greyed, not as links.
    """
    if organization is None or not is_logged_in(user):
        return FolderTree(())
    rows = _folder_rows(user, organization)
    if not any(row["parent_id"] is None for row in rows):
        # An organization made outside our actions (Django admin) gets its root now.
        Folder.objects.root_of(organization.pk)
        rows = _folder_rows(user, organization)
    nodes = {
        row["id"]: FolderNode(
            id=row["id"],
            name=row["name"],
            parent_id=row["parent_id"],
            is_accessible=bool(row["is_accessible"]),
            is_editable=bool(row["is_editable"]),
        )
        for row in rows
    }
    roots: list[FolderNode] = []
    for node in nodes.values():
        parent = nodes.get(node.parent_id) if node.parent_id is not None else None
        if parent is None:
            # The root, or (never in a consistent tree) a folder whose parent
            # the gate does not show: it hangs at the top rather than vanishing.
            roots.append(node)
        else:
            parent.children.append(node)
    roots.sort(key=lambda node: (node.parent_id is not None, node.name.casefold()))
    return FolderTree(tuple(_flatten(roots)))


def filter_context(
    filters: DatasetFilters, tags: Iterable[tuple[str, int]]
) -> Mapping[str, Any]:
    """The filter bar above the table: current folder, tags to choose, active ones."""
    chosen = set(filters.tags)
    return {
        "filters": filters,
        "query": filters.query,
        "tag_choices": [(name, count) for name, count in tags if name not in chosen],
        "active_tags": [(tag, filters.without_tag(tag)) for tag in filters.tags],
        "folder_path": folder_path(filters.folder) if filters.folder else [],
    }


def tree_context(
    user: AnyUser, organization: Any, filters: DatasetFilters | None = None
) -> dict[str, Any]:
    """What `_folder_tree.html` needs (one query for the whole tree)."""
    folder = filters.folder if filters is not None else None
    return {
        "tree_ready": True,
        "folder_tree": folder_tree(user, organization),
        "current_folder_id": folder.pk if folder is not None else None,
        "recursive": bool(filters and filters.recursive),
    }


def may_edit_dataset(user: AnyUser, dataset: Dataset) -> bool:
    return (
        is_logged_in(user) and datasets_managed_by(user).filter(pk=dataset.pk).exists()
    )


def tag_editor_context(
    user: AnyUser, dataset: Dataset, *, error: str = "", typed: str = ""
) -> dict[str, Any]:
    """The details sidebar's tags: chips, and for editors an input with suggestions."""
    tags = sorted((tag.name for tag in dataset.tags.all()), key=str.casefold)
    can_edit = may_edit_dataset(user, dataset)
    suggestions: list[str] = []
    if can_edit:
        taken = set(tags)
        suggestions = [
            name
            for name in Tag.objects.filter(organization_id=dataset.organization_id)
            .order_by("name")
            .values_list("name", flat=True)[:MAX_SUGGESTIONS]
            if name not in taken
        ]
    return {
        "tags": tags,
        "can_edit_tags": can_edit,
        "tag_suggestions": suggestions,
        "tags_url": reverse(
            "dashboard:dataset-tags",
            kwargs={"organization": dataset.organization.name, "name": dataset.name},
        ),
        "tag_max_chars": TAG_NAME_MAX_CHARS,
        "tag_error": error,
        "typed_tag": typed,
    }
