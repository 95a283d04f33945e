"""The measured figures: one definition each, read by reviews, alerts and the API."""
