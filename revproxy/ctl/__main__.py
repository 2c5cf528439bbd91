"""``python -m revproxy.ctl ...``"""

import sys

from revproxy.ctl.cli import main

sys.exit(main())
