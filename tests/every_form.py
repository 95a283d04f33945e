"""Every form class of the app, instantiated: for tests that render every field."""

from django import forms

import planner.urls  # noqa: F401 - imports every page, so every form class exists


def _form_classes(cls=forms.BaseForm):
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("planner."):
            yield sub
        yield from _form_classes(sub)


def every_form(project, data: dict | None = None) -> list[forms.BaseForm]:
    """One instance of each form class (bound to `data` when given), built with the first
    arguments it accepts among the project and its first connection."""
    connection = project.connections.first()
    arguments = ({"project": project}, {"project": project, "connection": connection})
    arguments += ({"connection": connection}, {})
    made = []
    for cls in sorted(set(_form_classes()), key=lambda c: f"{c.__module__}.{c.__name__}"):
        if getattr(getattr(cls, "_meta", None), "model", False) is None:
            continue  # an abstract model form
        for kwargs in arguments:
            try:
                made.append(cls(data, **kwargs) if data is not None else cls(**kwargs))
                break
            except TypeError:
                continue
    return made
