import sys

from cassandra_sink.cli import main

sys.exit(main())
