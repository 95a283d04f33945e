"""One page per checklist step: its page context, forms, row kinds and views."""
