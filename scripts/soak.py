"""The lab under faults for a while (airlab.soak): N researches at once on the embedded stack with 2+
runners, random SIGKILLs of any of its processes meanwhile, and a summary of what held.

Usage: make soak   (or: .venv/bin/python scripts/soak.py [--researches 10] [--runners 2] [--kills 100]
       [--minutes 30] [--budget 8] [--local-model] [--seed 0] [--no-backup-check])
Exits 1 when a research did not complete, an experiment was lost or run twice, or the backup taken
halfway did not restore to a lab that completes its researches."""

from __future__ import annotations

import argparse
import sys

from airlab.soak import SoakConfig, run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--researches", type=int, default=10)
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--grace-minutes", type=float, default=10.0)
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--local-model", action="store_true", help="the local LLM instead of the fake one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-backup-check", action="store_true", help="take no backup halfway")
    args = parser.parse_args()
    config = SoakConfig(
        researches=args.researches, runners=args.runners, kills=args.kills, minutes=args.minutes,
        grace_minutes=args.grace_minutes, budget=args.budget, use_local_model=args.local_model,
        seed=args.seed, check_backup=not args.no_backup_check,
    )  # fmt: skip
    summary = run(config)
    print("\n".join(summary.lines()))
    sys.exit(0 if summary.holds else 1)


if __name__ == "__main__":
    main()
