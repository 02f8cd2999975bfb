import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import BURST, WEBHOOKS_PER_SECOND, Cluster
from network import namespaces_supported

# The checks of a converged tenant are the fault suite's (tests/faults/attribution_checks.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = namespaces_supported()
    if reason is not None:
        pytest.skip(reason)
    assert shutil.which("haproxy"), "haproxy is not installed (make test installs Debian's)"
    # Under /tmp with o+x: as root, PostgreSQL's own user must reach its data directories.
    directory = Path(tempfile.mkdtemp(prefix="skt-cluster-"))
    directory.chmod(0o711)
    started = Cluster(directory, webhooks_per_second=WEBHOOKS_PER_SECOND, burst=BURST)
    try:
        started.start()
        yield started
    finally:
        started.close()
        shutil.rmtree(directory, ignore_errors=True)
