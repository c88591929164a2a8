import sys

from python_est.cli import main

sys.exit(main())
