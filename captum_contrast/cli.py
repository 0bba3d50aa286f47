"""The ``captum-contrast`` command line."""

from __future__ import annotations

import argparse
import sys

from captum_contrast import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-contrast",
        description="Contrastive CAM explanations for Captum, evaluated with Quantus.",
    )
    parser.add_argument("--version", action="version", version=f"captum-contrast {__version__}")
    subcommands = parser.add_subparsers(dest="command")
    subcommands.add_parser("demo", help="train a small CNN offline, explain and evaluate it")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        from captum_contrast.demo import run_demo

        return run_demo()
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
