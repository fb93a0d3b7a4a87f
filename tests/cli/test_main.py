"""The `dvsnet` entry point itself: --version, in-process and as `python -m dvsnet`."""
import subprocess
import sys

import pytest

import dvsnet
from dvsnet.cli import COMMANDS, build_parser, main


def test_version_in_process(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"dvsnet {dvsnet.__version__}"


def test_version_as_module():
    done = subprocess.run([sys.executable, "-m", "dvsnet", "--version"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"dvsnet {dvsnet.__version__}"


def test_every_command_is_registered():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(subparsers.choices) == list(COMMANDS)


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err
