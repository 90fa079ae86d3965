"""``python -m cli …`` is the same as the ``iport-cds`` command."""

from cli.main import main

raise SystemExit(main())
