"""Starting a project from a template: built-in scenarios, saved templates, other projects."""
