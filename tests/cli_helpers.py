"""Running the `inkwell` CLI in-process from tests (importable: tests/ is on sys.path via tests/conftest.py)."""

import pytest

from inkwell.cli import main


def run(capsys, argv, exit_code=None):
    """Run the CLI; returns (stdout, stderr). With exit_code, expects SystemExit with that code."""
    if exit_code is None:
        main(argv)
    else:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == exit_code, capsys.readouterr()
    return capsys.readouterr()
