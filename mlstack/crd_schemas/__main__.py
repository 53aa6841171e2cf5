"""``python -m mlstack.crd_schemas <crd.yaml> <version> <out.json>``: vendor a CRD schema."""

import sys
from pathlib import Path

from mlstack.crd_schemas import vendor

vendor(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
