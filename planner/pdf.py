"""PDF rendering shared by the runbook and the health-review report (WeasyPrint)."""

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Python starts a collection every 700 net allocations. WeasyPrint makes and drops several
# hundred thousand objects laying out a big runbook, so at that pace the collector ran about
# 700 times a render, five of them full passes over every object of the process (Django's
# included): a quarter of the render's time (benchmarks/runbook.py). At this pace it runs a
# few dozen times and never a full pass.
RENDER_GC_THRESHOLD = 10_000


def no_fetching():
    """Resources may only be inline: user text in the runbook can never make us fetch a URL."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols={"data"})


class _Collections:
    """The collector's threshold is the process's: overlapping renders (threads) share one
    raise, and the last to finish restores what was there before the first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.saved = gc.get_threshold()

    def enter(self, threshold: int) -> None:
        with self.lock:
            if not self.active:
                self.saved = gc.get_threshold()
                gc.set_threshold(max(threshold, self.saved[0]), *self.saved[1:])
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1
            if not self.active:
                gc.set_threshold(*self.saved)


_collections = _Collections()


@contextmanager
def fewer_collections(threshold: int = RENDER_GC_THRESHOLD) -> Iterator[None]:
    """Space out the garbage collector's runs while WeasyPrint renders; restored afterwards.

    The collector still runs (cycles are found, at a slower pace); what a render leaves is
    freed by the next full collection, which the export worker runs once the file is saved.
    """
    _collections.enter(threshold)
    try:
        yield
    finally:
        _collections.leave()
