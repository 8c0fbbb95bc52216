import sys

from symphony_schema.cli import main

sys.exit(main())
