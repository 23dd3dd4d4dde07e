"""A pump in its own process (as concurrent Lambda invocations are): runs until a stop file
appears. Settings come from the environment, exactly as in Lambda."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from services.core.settings import SubmitterSettings, load_settings
from services.submitter.handler import build_pump_deps
from services.submitter.pump import run_pump


def main(stop_file: str) -> int:
    deps = build_pump_deps(load_settings(SubmitterSettings))
    stop = Path(stop_file)
    while not stop.exists():
        report = run_pump(deps)
        if not report.submitted:
            time.sleep(0.2)  # idle, as between two scheduled runs
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
