"""Pages with explicit boundaries, for the command line and Discord's button pagination."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a result; ``page`` counts from 0.

    ``first`` and ``last`` are the 1-based positions of the items shown ("11-20 of 43"),
    both 0 when there is nothing to show.
    """

    items: list[T]
    page: int
    pages: int
    total: int
    first: int
    last: int

    @property
    def has_prev(self) -> bool:
        return self.page > 0

    @property
    def has_next(self) -> bool:
        return self.page < self.pages - 1


def check_page(page: int, page_size: int) -> None:
    if page < 0:
        raise ValueError(f"page must be 0 or more, not {page}")
    if page_size < 1:
        raise ValueError(f"page_size must be 1 or more, not {page_size}")


def fixed_bounds(total: int, page_size: int) -> list[tuple[int, int]]:
    """[start, end) of every page when each holds ``page_size`` items."""
    return [(i, min(i + page_size, total)) for i in range(0, total, page_size)]


def budget_bounds(sizes: Sequence[int], max_items: int, max_chars: int | None) -> list[tuple[int, int]]:
    """[start, end) of every page holding at most ``max_items`` items and ``max_chars`` of
    rendered size (a Discord embed holds 4096 characters); an item larger than the budget
    gets a page of its own rather than being split or dropped."""
    bounds: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        full = i - start >= max_items or (max_chars is not None and i > start and used + size > max_chars)
        if full:
            bounds.append((start, i))
            start, used = i, 0
        used += size
    if start < len(sizes):
        bounds.append((start, len(sizes)))
    return bounds


def clamp(page: int, bounds: list[tuple[int, int]]) -> int:
    # A page past the end (rows deleted since the buttons were drawn) shows the last one.
    return min(page, max(len(bounds) - 1, 0))


def make_page(items: list[T], page: int, bounds: list[tuple[int, int]], total: int) -> Page[T]:
    if not bounds:
        return Page(items=[], page=0, pages=1, total=0, first=0, last=0)
    start, end = bounds[page]
    return Page(items=items, page=page, pages=len(bounds), total=total, first=start + 1, last=end)
