"""dvsnet.sweep's row identity: which weights files a row's figures depend on."""
import hashlib

import pytest

from dvsnet.models.weights import shipped_path
from dvsnet.sweep import weights_id


def _digest(name: str) -> str:
    path = shipped_path(name)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10] if path.is_file() else "none"


@pytest.mark.parametrize("flow, policy, networks", [
    ("-", "always", ["fast"]),
    ("dis", "fixed:5", ["fast"]),
    ("dis-fast", "dn:0.9", ["fast", "dn-dis"]),
    ("flownet", "dn:0.9", ["fast", "flownet", "dn-flownet-conv6"]),
    # the rule before: "flownet-conv4-conv6" and "mv-conv6", files that never exist, and no FlowNetS
    ("flownet-conv4", "dn:0.9", ["fast", "flownet", "dn-flownet-conv4"]),
    ("flownet-conv5", "dn:fps=10", ["fast", "flownet", "dn-flownet-conv5"]),
    ("mv", "dn:0.9", ["fast", "dn-mv"]),
])
def test_a_rows_weights_id_hashes_the_networks_it_ran(flow, policy, networks):
    assert weights_id("fast", flow, policy) == "-".join(_digest(name) for name in networks)
    assert _digest("dn-mv") != "none"  # shipped: the mv rows' id names a real file


def test_a_segmenter_file_is_known_by_its_contents(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"weights")
    b.write_bytes(b"weights")
    assert weights_id(str(a), "dis", "always") == weights_id(str(b), "dis", "always") \
        == hashlib.sha256(b"weights").hexdigest()[:10]
