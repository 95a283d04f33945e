"""Working as a team: assignments with due dates and their reminders, comment threads with
@mentions. Plain functions the pages, the API and the beat call alike."""
