"""`python -m larq_tentacle --version` prints the versions in use."""

import sys

import larq_tentacle


def main(argv) -> int:
    if len(argv) > 1 and argv[1] in ("--version", "-V", "doctor"):
        larq_tentacle.doctor()
        return 0
    print("usage: python -m larq_tentacle --version", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
