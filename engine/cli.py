"""Command line: python -m engine {classify,detect,bench,info,convert,quantize} ...

Arguments are checked by argparse (a usage line and `error: ...`, exit 2);
errors met while working (a bad model file, an unreadable folder) print
`error: ...` and exit 2 as well, never a traceback."""
import argparse
import sys


def positive_int(text):
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def nonnegative_int(text):
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text, low):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value < low:
        raise argparse.ArgumentTypeError(f'must be an integer >= {low}, got {value}')
    return value


def main(argv=None):
    from engine import bench, classify, convert_command, detect, info, quantization
    parser = argparse.ArgumentParser(prog='python -m engine', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    for command in (classify, detect, bench, info, convert_command, quantization):
        command.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, OSError, ImportError) as e:     # ModelFileError is a ValueError
        print(f'error: {e}', file=sys.stderr)
        return 2
