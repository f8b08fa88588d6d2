"""Static checks of the deployment files: every Dockerfile passes hadolint."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HADOLINT = Path(sys.executable).parent / "hadolint"


@pytest.mark.parametrize(
    "dockerfile", sorted((ROOT / "deploy" / "docker").glob("*.Dockerfile")), ids=lambda p: p.name
)
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run([str(HADOLINT), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
