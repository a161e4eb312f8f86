"""`switchboard worker bot --bot module:function` refusals, before anything connects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


@pytest.mark.parametrize(("spec", "says"), [
    # Said only "error: No module named 'mybots'", naming neither the bot nor where it looked.
    ("mybots:answer", "error: bot 'mybots:answer': cannot import it: No module named 'mybots' "
                      "(modules are looked for in the current directory and on PYTHONPATH)\n"),
    ("os:nosuch", "error: bot 'os:nosuch': nosuch is not a function in os\n"),
    ("os.path", "error: bot 'os.path': expected module:function\n"),
])
def test_a_bot_that_cannot_be_loaded_is_one_line_naming_it(tmp_path: Path, spec: str,
                                                          says: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached
                   "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-m", "switchboard", "worker", "bot", "--bot", spec],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert result.stderr == says
