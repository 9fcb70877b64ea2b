"""Pagination with a bounded page size."""

from rest_framework.pagination import PageNumberPagination


class BoundedPageNumberPagination(PageNumberPagination):
    """`?page=N&page_size=M`, with M capped so no request reads an unbounded list."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
