"""Every planner URL, with arguments that resolve to real objects: for tests that walk them all."""

from django.urls import URLPattern, URLResolver, get_resolver, reverse

# Not per-project: any signed-in user may list their projects or start a new one.
ACCOUNT_LEVEL = {
    "planner:project_list",
    "planner:project_create",
    "logout",
    "password_change",
    "password_change_done",
    "planner:api_tokens",  # the user's own API tokens
    "planner:governance",  # the user's own projects only
    "planner:governance_csv",
    "planner:deleted_projects",  # staff only: the deletion log
    "planner:project_from_template",  # only the user's own projects and templates
    # the user's own work and notifications, across their projects
    "planner:my_work",
    "planner:notifications",
    "planner:notifications_read",
    "planner:notifications_bell",
    "planner:notification_settings",
}


def walk(resolver: URLResolver, prefix: str = "", namespace: str = ""):
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from walk(p, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern) and p.name:
            yield f"{namespace}{p.name}", p


def planner_patterns():
    return [(name, p) for name, p in walk(get_resolver()) if name.startswith("planner:")]


def url_for(name: str, pattern: URLPattern, world) -> str:
    kwargs = {}
    params = pattern.pattern.converters
    if "project_id" in params or name not in ACCOUNT_LEVEL:
        kwargs["project_id"] = world["project"].pk
    kind = pattern.default_args.get("kind")
    if "pk" in params:
        # row views are handed their kind; the others are named <kind>_<action>
        key = kind.name if kind else name.split(":")[1].split("_")[0]
        kwargs["pk"] = world["objects"][key].pk
    if "connection_id" in params:
        kwargs["connection_id"] = world["objects"]["connection"].pk
    if "system_id" in params:
        kwargs["system_id"] = world["objects"]["system"].pk
    if "fmt" in params:
        kwargs["fmt"] = "csv"
    if "direction" in params:
        kwargs["direction"] = "up"
    if "number" in params:
        kwargs["number"] = 1
    if "work" in params:
        kwargs["work"], kwargs["ref"] = "step", 1
    if "model" in params:
        kwargs["model"] = "criterion"
        kwargs["object_id"] = world["objects"]["criterion"].pk
    kwargs = {k: v for k, v in kwargs.items() if k in params or k == "project_id"}
    return reverse(name, kwargs=kwargs or None)
