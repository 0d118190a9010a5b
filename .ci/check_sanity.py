"""Fail unless every scim-sanity failure is one that docs/conformance.md explains.

Reads the output of ../shared/conformance/run-scim-sanity.sh and a list of accepted check names
(one per line, '#' comments). Exit 1 on an unaccepted failure, on any error, or when the
output has no summary line (the checker did not run).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main(output: str, accepted_file: str) -> int:
    text = Path(output).read_text()
    accepted = {
        line.strip()
        for line in Path(accepted_file).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    failed = [m.group(1).strip() for m in re.finditer(r"\[FAIL \] (.*?)(?: -- .*)?$", text, re.M)]
    summary = re.search(r"^(\d+) passed, (\d+) failed, .*?(\d+) errors$", text, re.M)
    if summary is None:
        print("scim-sanity printed no summary: it did not run", file=sys.stderr)
        return 1
    unexpected = [name for name in failed if name not in accepted]
    if unexpected or int(summary.group(3)):
        print(f"scim-sanity: unaccepted failures {unexpected}, errors {summary.group(3)}")
        return 1
    print(f"scim-sanity: {len(failed)} failures, each explained in docs/conformance.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
