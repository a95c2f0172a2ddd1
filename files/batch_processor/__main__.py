import sys

from batch_processor.cli import main

sys.exit(main(sys.argv[1:]))
