"""``python -m lifelong`` runs the ``lifelong`` command (``up`` starts its worker this way)."""

from lifelong.cli import main

raise SystemExit(main())
