"""What every page shares, and the pages no domain owns.

Permissions, optimistic concurrency, base forms, inline rows, the project context; the
projects, members, inventory, history, go-live and dashboard pages.
"""
