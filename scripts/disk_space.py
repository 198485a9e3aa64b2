"""Free-space and free-inode check for the filesystems the agent writes to.

A full disk breaks the agent in ways that are hard to diagnose afterwards: SQLite cannot
commit a ledger row, git cannot write an object, a trace line is lost. Running out of
inodes does the same while `df` still shows plenty of bytes, so both are checked.
Thresholds are options so that a deployment (and a test) can tighten or relax them.

Exit codes: 0 every path is healthy, 1 a problem was found, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class Usage:
    path: str
    total_bytes: int
    free_bytes: int
    total_inodes: int
    free_inodes: int

    @property
    def free_pct(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def inodes_pct(self) -> float | None:
        # Some filesystems (btrfs, many network and overlay mounts) report no inode
        # count at all: there is no limit to run into, so there is nothing to check.
        return 100.0 * self.free_inodes / self.total_inodes if self.total_inodes else None


def measure(path: str) -> Usage:
    """Read the figures an unprivileged process actually gets.

    `f_bavail`/`f_favail` exclude the blocks and inodes reserved for root; the agent does
    not run as root, so the reserve is not space it can use.
    """
    st = os.statvfs(path)
    return Usage(
        path=path,
        total_bytes=st.f_blocks * st.f_frsize,
        free_bytes=st.f_bavail * st.f_frsize,
        total_inodes=st.f_files,
        free_inodes=st.f_favail,
    )


def problems_for(
    usage: Usage, min_free_pct: float, min_free_mb: float, min_inodes_pct: float
) -> list[str]:
    found: list[str] = []
    if usage.free_pct < min_free_pct:
        found.append(
            f"{usage.path}: only {usage.free_pct:.1f}% free, below --min-free-pct "
            f"{min_free_pct:g}"
        )
    if usage.free_bytes < min_free_mb * MIB:
        found.append(
            f"{usage.path}: only {usage.free_bytes / MIB:.0f} MiB free, below --min-free-mb "
            f"{min_free_mb:g}"
        )
    inodes = usage.inodes_pct
    if inodes is not None and inodes < min_inodes_pct:
        found.append(
            f"{usage.path}: only {inodes:.1f}% of inodes free, below --min-free-inodes-pct "
            f"{min_inodes_pct:g}"
        )
    return found


def describe(usage: Usage) -> str:
    inodes = usage.inodes_pct
    inode_text = "inodes n/a" if inodes is None else f"inodes {inodes:.0f}% free"
    return (
        f"{usage.path} {usage.free_pct:.1f}% free ({usage.free_bytes / GIB:.1f} GiB), "
        f"{inode_text}"
    )


def _percentage(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage between 0 and 100")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Check free space and free inodes of the filesystems holding PATHs."
    )
    parser.add_argument(
        "--path",
        action="append",
        dest="paths",
        metavar="PATH",
        help="a path on the filesystem to check; repeat for several (default: .)",
    )
    parser.add_argument("--min-free-pct", type=_percentage, default=10.0)
    parser.add_argument("--min-free-mb", type=_non_negative, default=500.0)
    parser.add_argument("--min-free-inodes-pct", type=_percentage, default=5.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths: list[str] = args.paths or ["."]
    problems: list[str] = []
    healthy: list[str] = []
    for raw in paths:
        path = os.path.abspath(raw)
        try:
            usage = measure(path)
        except FileNotFoundError:
            problems.append(f"{path}: path does not exist")
            continue
        except OSError as exc:
            problems.append(f"{path}: cannot read filesystem figures: {exc.strerror or exc}")
            continue
        found = problems_for(
            usage, args.min_free_pct, args.min_free_mb, args.min_free_inodes_pct
        )
        problems.extend(found)
        if not found:
            healthy.append(describe(usage))
    if problems:
        for line in problems:
            print(f"PROBLEM: {line}")
        return 1
    print("disk ok: " + "; ".join(healthy))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
