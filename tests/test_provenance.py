"""dvsnet's process-wide settings: the OpenMP spin count that keeps threads from fighting."""
import os
import subprocess
import sys


def _spincount(env: dict[str, str]) -> str:
    code = "import dvsnet, os; print(os.environ['GOMP_SPINCOUNT'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_dvsnet_sets_a_short_openmp_spin_unless_the_user_did():
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert _spincount(env) == "1000"
    assert _spincount({**env, "GOMP_SPINCOUNT": "42"}) == "42"



def test_the_version_every_record_carries_is_the_packages():
    import re
    from pathlib import Path

    import dvsnet
    from dvsnet.provenance import versions

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()  # tomllib: Python 3.11+ only
    version = re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE)[1]
    assert versions()["dvsnet"] == dvsnet.__version__ == version
