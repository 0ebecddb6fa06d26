"""``bridgesolve figures``: finds examples/papers/<name>.py and calls its main(argv)."""

from __future__ import annotations

import json

import pytest

from bridgesolve.cli import main
from bridgesolve.cli.figures import PAPERS, PAPERS_ENV, papers_dir

FAKE = '''\
"""A stand-in paper script: records its argv."""
import argparse
import json
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--output", type=Path, default=Path("results/figures/fake"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "numbers.json").write_text(json.dumps({"quick": args.quick}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''


@pytest.fixture
def papers(tmp_path, monkeypatch):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "hirono_2024.py").write_text(FAKE)
    monkeypatch.setenv(PAPERS_ENV, str(folder))
    return folder


def test_runs_the_script_with_output_and_quick(papers, tmp_path):
    out = tmp_path / "out"
    assert main(["figures", "hirono-2024", "-o", str(out), "--quick"]) == 0
    assert json.loads((out / "numbers.json").read_text()) == {"quick": True}
    assert main(["figures", "hirono_2024", "-o", str(out)]) == 0  # underscores too
    assert json.loads((out / "numbers.json").read_text()) == {"quick": False}


def test_default_output_folder(papers, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["figures", "hirono-2024", "--quick"]) == 0
    assert (tmp_path / "results" / "figures" / "hirono_2024" / "numbers.json").is_file()


def test_unknown_name_and_missing_folder_exit_2_naming_the_sets(papers, tmp_path, capsys):
    assert main(["figures", "nobody-2020"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown figure set" in err
    assert all(p.replace("_", "-") in err for p in PAPERS), err
    assert main(["figures"]) == 2
    assert "--list" in capsys.readouterr().err


def test_missing_papers_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(PAPERS_ENV, str(tmp_path / "nowhere"))
    assert main(["figures", "hirono-2024"]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "yu-huang-2025" in err and "Traceback" not in err


def test_list(papers, capsys):
    assert main(["figures", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("yu-huang-2025") and "(script missing)" in out[0]
    assert any(line.strip() == "hirono-2024" for line in out)


def test_default_folder_is_the_checkout(monkeypatch):
    monkeypatch.delenv(PAPERS_ENV, raising=False)
    assert papers_dir().parts[-2:] == ("examples", "papers")
    assert papers_dir().parent.parent.joinpath("bridgesolve", "cli").is_dir()
