"""``dlscratch verify``: recompute the notes' worked numbers and show the table."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="recompute the book's worked numbers and check them (seconds)",
        description="Recompute every worked number of the notes (softmax, losses, numerical "
        "derivatives, computational graphs, gradient checks) and compare with the printed values.",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from dlscratch.verify import format_table, run_checks

    checks = run_checks()
    print(format_table(checks))
    return 0 if all(c.passed for c in checks) else 1
