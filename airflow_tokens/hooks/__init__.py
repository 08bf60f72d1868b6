"""Token hooks, one module per vendor."""

from __future__ import annotations
