"""PDF rendering shared by the runbook and the health-review report (WeasyPrint)."""


def no_fetching():
    """Resources may only be inline: user text in the runbook can never make us fetch a URL."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols={"data"})
