"""Fargate entry point for long merges: `python -m services.merger.task [--meeting-uuid UUID]`.

The meeting comes from the container override `MERGE_MEETING_UUID` set by the dispatcher. Exit
status: 0 merged (or nothing left to do), 1 failed for good (the item says why), 2 a transient
failure (the item stays MERGING and the reconciler starts the merge again).
"""

from __future__ import annotations

import argparse
import os
import sys

from services.core.errors import PermanentError
from services.core.observability import logger, metrics
from services.core.settings import MergerSettings, load_settings
from services.merger.dispatch import TASK_UUID_VARIABLE
from services.merger.merge import build_deps, fail_merge, merge_meeting


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.merger.task")
    parser.add_argument("--meeting-uuid", default=os.environ.get(TASK_UUID_VARIABLE, ""))
    args = parser.parse_args(argv)
    if not args.meeting_uuid:
        parser.error(f"no meeting: pass --meeting-uuid or set {TASK_UUID_VARIABLE}")
    deps = build_deps(load_settings(MergerSettings))
    logger.append_keys(meeting_uuid=args.meeting_uuid)
    try:
        merge_meeting(args.meeting_uuid, deps)
    except PermanentError as e:
        fail_merge(deps.store, args.meeting_uuid, str(e))
        return 1
    except Exception:  # noqa: BLE001 - reported, then retried by the reconciler
        logger.exception("merge task failed; the reconciler will retry")
        return 2
    finally:
        metrics.flush_metrics()
    return 0


if __name__ == "__main__":
    sys.exit(main())
