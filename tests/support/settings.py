"""Complete, fake environments for building settings in the unit tier."""

from __future__ import annotations

WEBHOOK_ENV = {
    "RECORDINGS_TABLE": "x-recordings",
    "SLOTS_TABLE": "x-slots",
    "MERGE_QUEUE_URL": "http://queue/merge",
    "SUBMIT_QUEUE_URL": "http://queue/submit",
    "NOTIFY_QUEUE_URL": "http://queue/notify",
    "PUMP_FUNCTION_NAME": "x-pump",
    "ZOOM_WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:zoom",
    "SYMBL_CREDENTIALS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:symbl",
    "MEDIA_BUCKET": "x-media",
    "LINK_SIGNING_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:link",
}

MERGER_ENV = {
    "RECORDINGS_TABLE": "x-recordings",
    "MEDIA_BUCKET": "x-media",
    "MERGE_QUEUE_URL": "http://queue/merge",
    "SUBMIT_QUEUE_URL": "http://queue/submit",
    "PUMP_FUNCTION_NAME": "x-pump",
    "ZOOM_S2S_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:zoom-s2s",
}
