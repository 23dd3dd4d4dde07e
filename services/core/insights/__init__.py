"""The insights document (one versioned JSON per meeting) and its rendering: the email and the
insights page, used by the notifier and the webhook alike."""
