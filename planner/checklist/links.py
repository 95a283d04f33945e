"""Links to the app's pages by id, each URL pattern reversed once and then filled in.

Readiness findings and go-live reasons name a page per project, run or row: the portfolio's
verdicts asked `reverse` for the same few patterns about a thousand times a page.
"""

from functools import lru_cache

from django.urls import get_script_prefix, get_urlconf, reverse

# Ids no page will have, reversed in place of the real ones and then replaced by them.
_MARK = 987654321


@lru_cache(maxsize=128)
def _pieces(viewname: str, arity: int, prefix: str, urlconf: str | None) -> tuple[str, ...]:
    # The script prefix and URL configuration in force are part of the key: reverse reads them.
    rest = reverse(viewname, args=[_MARK + i for i in range(arity)], urlconf=urlconf)
    pieces = []
    for i in range(arity):
        head, found, rest = rest.partition(str(_MARK + i))
        if not found:
            raise ValueError(f"{viewname} does not take {arity} ids in order")
        pieces.append(head)
    return (*pieces, rest)


def url(viewname: str, *ids: int) -> str:
    """`reverse(viewname, args=ids)` for integer ids."""
    pieces = _pieces(viewname, len(ids), get_script_prefix(), get_urlconf())
    out = [pieces[0]]
    for value, piece in zip(ids, pieces[1:], strict=True):
        out += (str(int(value)), piece)
    return "".join(out)
