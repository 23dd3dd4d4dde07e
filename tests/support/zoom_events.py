"""Small, valid Zoom events for tests that need no audio behind them."""

from __future__ import annotations

from typing import Any


def recording_completed(
    uuid: str = "AbC1/dEf+Gh==",
    *,
    participants: list[str] | None = None,
    with_participant_files: bool = True,
    topic: str = "Weekly sync",
) -> dict[str, Any]:
    names = participants if participants is not None else ["Ana Ruiz-Soto", "Bo"]
    participant_files = [
        {
            "id": f"p-{i + 1}",
            "recording_start": f"2023-11-14T22:1{i}:05Z",
            "recording_end": "2023-11-14T22:52:00Z",
            "file_name": f"Audio only - {name}",
            "file_type": "M4A",
            "file_extension": "M4A",
            "file_size": 7000 + i,
            "download_url": f"https://zoom.example/rec/webhook_download/p-{i + 1}",
            "status": "completed",
        }
        for i, name in enumerate(names)
    ]
    obj: dict[str, Any] = {
        "uuid": uuid,
        "id": 81234567890,
        "account_id": "ACC",
        "host_id": "HOST",
        "host_email": "host@example.com",
        "topic": topic,
        "type": 2,
        "start_time": "2023-11-14T22:10:00Z",
        "timezone": "Europe/Madrid",
        "duration": 42,
        "total_size": 20000,
        "recording_count": 1 + len(participant_files),
        "share_url": "https://zoom.example/rec/share/x",
        "password": "",
        "recording_files": [
            {
                "id": "f-m4a",
                "meeting_id": uuid,
                "recording_start": "2023-11-14T22:10:05Z",
                "recording_end": "2023-11-14T22:52:00Z",
                "file_type": "M4A",
                "file_extension": "M4A",
                "file_size": 5000,
                "download_url": "https://zoom.example/rec/webhook_download/f-m4a",
                "status": "completed",
                "recording_type": "audio_only",
            },
            {"meeting_id": uuid, "file_type": "TIMELINE", "file_extension": "JSON"},
        ],
    }
    if with_participant_files:
        obj["participant_audio_files"] = participant_files
    return {
        "event": "recording.completed",
        "event_ts": 1700000000000,
        "download_token": "header.payload.signature",
        "payload": {"account_id": "ACC", "object": obj},
    }
