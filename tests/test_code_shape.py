"""The services' code stays in small modules: each one a reader can hold in mind (the loop's own shape is
checked in services/manager/tests/test_loop_structure.py)."""

from pathlib import Path

MAX_LINES = 400
SERVICES = Path(__file__).resolve().parents[1] / "services"


def test_no_module_of_a_service_is_over_400_lines():
    modules = sorted(SERVICES.glob("*/src/**/*.py"))
    assert len(modules) > 40
    long = {
        str(path.relative_to(SERVICES)): lines
        for path in modules
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"
