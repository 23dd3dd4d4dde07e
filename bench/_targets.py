"""The benches' verdicts: each target claimed, whether this run met it, what was measured.

Every bench ends with `return report(targets)`, so it exits 1 when a judged target was missed and
`make bench` stops there. A target recorded with `judged=False` is printed for information (a smoke
or stress run whose figures the claim is not made for) and never fails the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    claim: str
    met: bool
    shown: str = ""
    judged: bool = True


def verdict(target: Target) -> str:
    if target.judged:
        return "met" if target.met else "MISSED"
    return "met (not judged)" if target.met else "missed (not judged)"


def report(targets: Sequence[Target], *, write: Callable[[str], None] = print) -> int:
    """Print one line per target and a closing verdict; 1 if a judged target was missed."""
    if not targets:
        write("targets: none were measured")
        return 1
    width = max(len(t.claim) for t in targets) + 2
    write("targets:")
    for target in targets:
        shown = f"   ({target.shown})" if target.shown else ""
        write(f"   {target.claim:<{width}}{verdict(target):>20}{shown}")
    missed = [t for t in targets if t.judged and not t.met]
    judged = sum(t.judged for t in targets)
    if missed:
        write(f"{len(missed)} of {judged} judged targets MISSED")
        return 1
    write(f"all {judged} judged targets met")
    return 0
