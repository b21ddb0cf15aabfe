"""``python -m harness.study``: a study from the command line (:func:`harness.study.driver.main`)."""

import sys

from harness.study.driver import main

if __name__ == "__main__":
    sys.exit(main())
