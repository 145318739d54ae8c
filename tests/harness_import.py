"""The cluster harness (tests/cluster/cluster_harness.py) for test folders other than tests/cluster.

pytest puts each test folder on sys.path, so only tests/cluster can `import
cluster_harness`; the others load it here by path, once, under one name
(tests/ itself is on sys.path through its conftest.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

NAME = "boltlink_cluster_harness"
PATH = Path(__file__).resolve().parent / "cluster" / "cluster_harness.py"


def cluster_harness() -> ModuleType:
    if NAME in sys.modules:
        return sys.modules[NAME]
    spec = importlib.util.spec_from_file_location(NAME, PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module  # dataclasses and typing look their module up by name
    spec.loader.exec_module(module)
    return module
