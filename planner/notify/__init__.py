"""Notifications in the app and by mail: one function the domain services call on their write
paths, the unread count of the bell, and the mails (immediate or a daily digest)."""
