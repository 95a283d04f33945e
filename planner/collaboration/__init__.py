"""Pages of team work: assigning, "My work", comment threads, notifications and preferences."""
