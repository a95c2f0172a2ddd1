import logging
import os
import sys

from batch_processor.cli import main

status = main(sys.argv[1:])
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
# Interpreter shutdown resets signal handlers to their defaults, so a
# repeated SIGTERM arriving then would end the process with -15 instead of
# the status main() chose. Every file is written and closed by now.
os._exit(status)
