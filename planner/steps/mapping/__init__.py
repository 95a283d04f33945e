"""Step 2: the mapping editor, spreadsheet import/export and the step page."""
