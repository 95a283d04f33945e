"""The seed scenarios that `make run` loads."""
