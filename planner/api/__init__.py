"""The JSON API (django-ninja) for CI pipelines: projects, the go-live verdict, validation
runs, mapping export/import and the runbook. OpenAPI schema at /api/openapi.json.

Authentication: `Authorization: Bearer <token>` (tokens from /account/tokens/). Every
endpoint under /projects/{id}/ applies the web's per-project roles: a non-member gets 404,
a member whose role lacks the capability gets 403.
"""
