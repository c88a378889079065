"""The tfvis command: help, usage errors, and the demo subcommand (in-process and as -m)."""

import subprocess
import sys

import pytest

from tfvis.cli import main


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2


def test_unknown_method_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--methods", "gradkam"])
    assert exit_.value.code == 2
    assert "gradcam" in capsys.readouterr().err


def test_demo_subcommand_writes_a_gallery(tmp_path):
    code = main(["demo", "--out", str(tmp_path), "--methods", "gradcam", "--epochs", "1",
                 "--train-images", "64", "--quiet"])
    assert code == 0
    assert (tmp_path / "index.html").exists() and (tmp_path / "summary.json").exists()


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "tfvis", "demo", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--out" in done.stdout
