"""Write the coder's index of the library APIs that drafts call (scikit-learn, torch.nn, torch.optim),
from the versions installed here (requirements-experiment.txt's pins, the ones experiments run with).

The coder checks every call of a draft against this index before it spends a smoke run, without importing
either library (its service does not install them). Run it after changing those pins:

    .venv/bin/python scripts/api_index.py        (make api-index)

services/coder/tests/test_api_index.py fails while the file differs from what the installed libraries say."""

from __future__ import annotations

import sys

from airlab_coder.api_index import INDEX_FILE, build_index, dump

if __name__ == "__main__":
    INDEX_FILE.write_text(dump(build_index()))
    print(f"wrote {INDEX_FILE}", file=sys.stderr)
