"""The seven steps as one registry, and what is computed from it.

Evidence, readiness, sign-offs, the go-live gate, the pattern analysis and the audit trail.
"""
