"""The shipped contract (:mod:`scimcore.testing`) runs in a host's own suite, outside ours.

A host project is written to a temporary directory (one test module, no conftest) and run
with pytest in a fresh process whose working directory is that project, so nothing of
scimcore's ``tests`` package is importable there. Its storage is a thin subclass of the memory
storage, as a host's own would be; a broken variant shows the contract can fail, with pytest's
explanation of the failed assertion.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from scimcore.testing import StorageContract

HOST_TESTS = '''
    """A host app's tests of its own storage, as docs/embedding.md shows them."""

    from collections.abc import Iterator

    import pytest

    from scimcore import Workspace
    from scimcore.testing import StorageContract
    from scimcore_adapters.memory import MemoryStorage


    class HostStorage(MemoryStorage):
        """The host's storage: here the reference one under the host's own name."""


    class LeakyStorage(MemoryStorage):
        """A bug: any slug finds the first workspace (one workspace would see another's data)."""

        def get_workspace(self, slug: str) -> Workspace | None:
            return next(iter(self.list_workspaces()), None)


    class TestHostStorage(StorageContract):
        @pytest.fixture
        def storage(self) -> Iterator[HostStorage]:
            yield HostStorage()


    class TestLeakyStorage(StorageContract):
        @pytest.fixture
        def storage(self) -> LeakyStorage:
            return LeakyStorage()
'''


def _outcomes(report: Path) -> dict[str, Counter[str]]:
    """Per test class: how many tests passed or had a failure, error or skip (JUnit's tags)."""
    out: dict[str, Counter[str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        cls = case.get("classname", "").rpartition(".")[2]
        out.setdefault(cls, Counter())[kinds[0] if kinds else "passed"] += 1
    return out


def test_a_host_storage_runs_the_whole_contract_from_its_own_suite(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "test_host_storage.py").write_text(textwrap.dedent(HOST_TESTS))
    report = tmp_path / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}",
         "--rootdir", str(host), str(host)],
        cwd=host, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    contract = sum(1 for name in dir(StorageContract) if name.startswith("test_"))
    assert contract >= 58
    outcomes = _outcomes(report)
    assert outcomes["TestHostStorage"] == Counter(passed=contract), done.stdout[-3000:]
    leaky = outcomes["TestLeakyStorage"]
    assert leaky["failure"] >= 1 and leaky["error"] == 0, leaky
    assert leaky["passed"] + leaky["failure"] == contract
    # the contract's own asserts are rewritten: the failure names the value it got
    failure = "TestLeakyStorage.test_workspaces_admins_tokens"
    assert failure in done.stdout
    assert "assert Workspace(id='ws-acme'" in done.stdout
