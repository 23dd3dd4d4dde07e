"""Fargate entry point for long merges:
`python -m services.merger.task [--meeting-uuid UUID] [--lease-holder ID]`.

The meeting and the merge lease it runs under come from the container overrides
`MERGE_MEETING_UUID` and `MERGE_LEASE_HOLDER` set by the dispatcher, which took the lease
before starting the task; a task whose lease was taken over meanwhile stops without merging.
Started by hand without a lease holder, the task takes the lease itself like any merge request
(and does nothing while another run holds it). Exit status: 0 merged (or nothing left to do),
1 failed for good (the item says why), 2 a transient failure (the lease is released, the item
stays MERGING and the reconciler starts the merge again).
"""

from __future__ import annotations

import argparse
import os
import sys

from services.core.errors import PermanentError
from services.core.observability import logger, metrics
from services.core.settings import MergerSettings, load_settings
from services.merger.dispatch import TASK_LEASE_VARIABLE, TASK_UUID_VARIABLE
from services.merger.merge import MergerDeps, build_deps, fail_merge, merge_meeting


def run_task(meeting_uuid: str, lease_holder: str | None, deps: MergerDeps) -> int:
    """Merge one meeting under `lease_holder`'s lease; returns the task's exit status."""
    logger.append_keys(meeting_uuid=meeting_uuid)
    try:
        merge_meeting(meeting_uuid, deps, lease=lease_holder or None)
    except PermanentError as e:
        fail_merge(deps.store, meeting_uuid, str(e), lease=lease_holder or None)
        return 1
    except Exception:  # noqa: BLE001 - reported, then retried by the reconciler
        logger.exception("merge task failed; the reconciler will retry")
        return 2
    finally:
        metrics.flush_metrics()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.merger.task")
    parser.add_argument("--meeting-uuid", default=os.environ.get(TASK_UUID_VARIABLE, ""))
    parser.add_argument("--lease-holder", default=os.environ.get(TASK_LEASE_VARIABLE, ""))
    args = parser.parse_args(argv)
    if not args.meeting_uuid:
        parser.error(f"no meeting: pass --meeting-uuid or set {TASK_UUID_VARIABLE}")
    deps = build_deps(load_settings(MergerSettings))
    return run_task(args.meeting_uuid, args.lease_holder, deps)


if __name__ == "__main__":
    sys.exit(main())
