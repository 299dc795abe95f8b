"""The pretrain / corpus / experiment commands: argument handling and one-line errors."""

from __future__ import annotations

import json

from brainlike.cli import main


def test_corpus_setup_dry_run_prints_apt_command(capsys):
    assert main(["corpus", "setup", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("apt-get install -y") and "asterisk-core-sounds-en-wav" in out


def test_unknown_preset_and_missing_corpus_fail_in_one_line(tmp_path, capsys):
    assert main(["pretrain", "--config", "huge", "--corpus", "synthetic", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "brainlike: error: unknown training config 'huge'; choose from tiny, small, base"
    assert main(["-q", "pretrain", "--corpus", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "no corpus" in capsys.readouterr().err and len(err.splitlines()) == 1


def test_bad_mask_ratio_is_a_user_error(tmp_path, capsys):
    code = main(["-q", "pretrain", "--corpus", "synthetic", "--out", str(tmp_path / "o"), "--mask-ratio", "1.5"])
    assert code == 2 and "mask_ratio must lie in (0, 1)" in capsys.readouterr().err


def test_synthetic_corpus_build_and_short_pretrain_run(tmp_path, capsys):
    corpus = tmp_path / "synth"
    assert main(["-q", "corpus", "build", "synthetic", "--hours", "0.01", "--out", str(corpus)]) == 0
    assert "9 clips" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["-q", "pretrain", "--corpus", str(corpus), "--out", str(out), "--steps", "4",
                 "--checkpoint-every", "2", "--encoder", "conv", "--mask-span", "3", "--threads", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4 and summary["model_spec"] == f"mae:{out}"
    config = json.loads((out / "checkpoints" / "step_000004" / "config.json").read_text())
    assert config["model"]["encoder"] == "conv" and config["model"]["mask_span"] == 3 and config["step"] == 4
