"""How a person is named wherever the app shows them: pages, PDFs, mails."""


def display_name(user) -> str:
    """The full name, else the username; empty for nobody (the caller says who: "system"...)."""
    if user is None:
        return ""
    return (user.get_full_name() or "").strip() or user.get_username()
