"""The ``tfvis`` command (also ``python -m tfvis``).

Exit codes: 0 ok, 2 usage error, 3 refused for safety, 4 method not supported for the model.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

EXAMPLES = """examples:
  tfvis demo                      train a small CNN on built-in shapes, write ./tfvis-demo/
  tfvis demo --out /tmp/gallery   choose the output folder
  tfvis demo --methods gradcam cam --quiet
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tfvis`` command."""
    parser = argparse.ArgumentParser(
        prog="tfvis",
        description="Explain what a Keras / TensorFlow CNN looks at.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train a small CNN on built-in data and write a gallery of every method",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", default="tfvis-demo", help="output folder (default: tfvis-demo)")
    demo.add_argument("--methods", nargs="+", metavar="NAME", help="registry names (default: all)")
    demo.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    demo.add_argument("--train-images", type=int, default=1200, help="training images (default: 1200)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and weights")
    demo.add_argument("--quiet", action="store_true", help="print nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "demo":
            from tfvis.demo import run_demo
            from tfvis.explainers import REGISTRY

            unknown = [m for m in args.methods or [] if m not in REGISTRY]
            if unknown:
                parser.error(f"unknown methods {unknown}; available: {', '.join(REGISTRY)}")
            run_demo(args.out, methods=args.methods, epochs=args.epochs,
                     n_train=args.train_images, seed=args.seed, verbose=0 if args.quiet else 1)
        return 0
    except (ValueError, TypeError, OSError) as err:
        if args.debug:
            raise
        print(f"tfvis: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
