"""``python -m cilium_labs.local serve --spec FILE --state-dir DIR``: the local lab's supervisor."""

from __future__ import annotations

from .supervisor import main

raise SystemExit(main())
