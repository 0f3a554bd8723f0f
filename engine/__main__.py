"""Command line: python -m engine {classify,bench,info} ..."""
import argparse
import sys

from engine import bench, classify, info


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m engine', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    classify.add_parser(sub)
    bench.add_parser(sub)
    info.add_parser(sub)
    args = parser.parse_args(argv)
    if getattr(args, 'threads', None) is not None and args.threads < 1:
        parser.error('--threads must be >= 1')
    if getattr(args, 'runs', 1) < 1:
        parser.error('--runs must be >= 1')
    if getattr(args, 'top_k', 1) < 1 or getattr(args, 'batch_size', 1) < 1:
        parser.error('--top-k and --batch-size must be >= 1')
    try:
        args.func(args)
    except (ValueError, OSError, ImportError) as e:     # ModelFileError is a ValueError
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
