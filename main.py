"""Entry point kept for operators used to `python main.py -c python_est.cfg`."""

import sys

from python_est.cli import main

if __name__ == "__main__":
    sys.exit(main())
