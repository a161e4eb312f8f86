"""Ctrl-C in the first second of any command, while Python imports its modules, ends it with
exit 130 and no traceback: `switchboard.cli` imported every command's modules (aiokafka,
starlette, pydantic...) before main() could catch anything, and `--help` waited for them too.

A real SIGINT, sent by the command's own process the moment a given module is first imported
(a sitecustomize on PYTHONPATH installs the import hook), so it always lands inside the
import, however fast or slow the machine is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"

# Imported by Python at start-up from PYTHONPATH: the first import of $TRIP_MODULE sends the
# process SIGINT (as Ctrl-C in its terminal does) and leaves a mark that it did.
SITECUSTOMIZE = '''
import os, signal, sys
from pathlib import Path

class _CtrlCOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["TRIP_MODULE"]:
            sys.meta_path.remove(self)
            Path(os.environ["TRIP_MARK"]).touch()
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, _CtrlCOnImport())
'''


def _run_tripped(args: list[str], module: str, tmp_path: Path) -> tuple[
        subprocess.CompletedProcess[str], bool]:
    """The command run as `python -m switchboard.cli`, Ctrl-C sent at `module`'s import."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    mark = tmp_path / "tripped"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")} | {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "TRIP_MODULE": module, "TRIP_MARK": str(mark),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: stopped before
        "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS)}
    result = subprocess.run([sys.executable, "-m", "switchboard.cli", *args], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    return result, mark.exists()


@pytest.mark.parametrize(("args", "module"), [
    (["schema"], "pydantic"),  # the settings every command reads
    (["normalize", "--provider", "infobip", "-"], "pydantic"),
    (["tail"], "aiokafka"),
    (["send", "demo-infobip", "+41790001111", "--text", "hi"], "aiokafka"),
    (["worker", "sender"], "aiokafka"),
    (["replay", "--dry-run"], "aiokafka"),
])
def test_ctrl_c_while_a_command_imports_its_modules_is_exit_130_without_a_traceback(
        args: list[str], module: str, tmp_path: Path) -> None:
    result, tripped = _run_tripped(args, module, tmp_path)
    assert tripped, f"{module} was never imported: the test sent no Ctrl-C"
    assert result.returncode == 130, result.stderr
    assert result.stderr == "" and result.stdout == ""


def test_help_imports_none_of_the_commands_modules(tmp_path: Path) -> None:
    """`--help` (and a mistyped argument) is answered before any of them is needed."""
    result, tripped = _run_tripped(["--help"], "pydantic", tmp_path)
    assert not tripped
    assert result.returncode == 0 and "usage: switchboard" in result.stdout
