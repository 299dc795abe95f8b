"""Corpora: deterministic manifests, exact budgets, and the leakage check (hash and audio fingerprint)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from brainlike.data.audio import resample
from brainlike.errors import DataError
from brainlike.pretrain import corpus as corpora
from brainlike.pretrain.corpus import (LeakageError, bit_error_rate, build_synthetic, check_leakage, fingerprint,
                                       load_corpus, synthetic_clip, take_budget, write_corpus)


def test_synthetic_corpus_is_deterministic(tmp_path):
    a = build_synthetic(tmp_path / "a", n_clips=6, seconds=1.0, seed=3)
    b = build_synthetic(tmp_path / "b", n_clips=6, seconds=1.0, seed=3)
    c = build_synthetic(tmp_path / "c", n_clips=6, seconds=1.0, seed=4)
    summary = [json.loads((p / "corpus.json").read_text()) for p in (a, b, c)]
    assert summary[0]["manifest_sha256"] == summary[1]["manifest_sha256"] != summary[2]["manifest_sha256"]
    assert summary[0]["n_clips"] == 6 and summary[0]["seconds"] == pytest.approx(6.0)
    loaded = load_corpus(a)
    assert loaded.seconds == pytest.approx(6.0) and loaded.manifest_sha256 == summary[0]["manifest_sha256"]


def test_manifest_detects_modified_files(tmp_path):
    path = build_synthetic(tmp_path / "c", n_clips=2, seconds=0.5)
    victim = sorted((path / "audio").glob("*.wav"))[0]
    sf.write(str(victim), np.zeros(100), 16000)
    with pytest.raises(DataError, match="does not match its manifest"):
        load_corpus(path)


def test_take_budget_is_exact():
    clips = [(f"c{i}", np.ones(n, np.float32), "src") for i, n in enumerate([700, 300, 1000, 50])]
    taken = take_budget(iter(clips), 1234, progress=False)
    assert [len(c[1]) for c in taken] == [700, 300, 234]
    assert sum(len(c[1]) for c in take_budget(iter(clips), 10_000, progress=False)) == 2050  # runs out


def test_build_corpus_rejects_unknown_domain(tmp_path):
    with pytest.raises(DataError, match="unknown corpus domain"):
        corpora.build_corpus("podcasts", tmp_path / "x", budget_seconds=1)


def _references(folder: Path, n: int = 6, rate: int = 44100) -> list[Path]:
    """Evaluation-like reference clips (2 s, 44.1 kHz) in a folder laid out like natsound165."""
    out = folder / "natsound165" / "stimuli" / "wav"
    out.mkdir(parents=True)
    rng = np.random.default_rng(100)
    paths = []
    for i in range(n):
        clip = synthetic_clip(rng, 2.0, rate)
        path = out / f"stim{i}_ref.wav"
        sf.write(str(path), clip, rate, subtype="PCM_16")
        paths.append(path)
    return paths


def test_fingerprint_is_gain_invariant_and_robust_to_resampling():
    rng = np.random.default_rng(0)
    clip = synthetic_clip(rng, 3.0, 44100)
    a = fingerprint(clip, 44100)
    b = fingerprint(0.3 * resample(clip, 44100, 16000) + 0.001 * rng.standard_normal(48000).astype(np.float32),
                    16000)
    other = fingerprint(synthetic_clip(rng, 3.0, 44100), 44100)
    n = min(len(a), len(b))
    assert bit_error_rate(a[:n], b[:n]) < 0.2
    assert bit_error_rate(a[:n], other[:n]) > 0.35


def test_leakage_check_catches_hidden_near_duplicate(tmp_path):
    refs = _references(tmp_path / "data")
    wave, rate = sf.read(str(refs[2]), dtype="float32")
    rng = np.random.default_rng(1)
    hidden = 0.4 * resample(wave, rate, 16000) + 0.002 * rng.standard_normal(32000).astype(np.float32)
    padding = synthetic_clip(rng, 1.3)
    long_clip = np.concatenate([padding, hidden, synthetic_clip(rng, 2.0)])  # the stimulus 1.3 s into a clip
    clips = [("clean", synthetic_clip(rng, 4.0), "synthetic"), ("suspect", long_clip, "synthetic")]
    with pytest.raises(LeakageError, match=r"audio/suspect.wav contains natsound165/stimuli/wav/stim2_ref.wav"):
        write_corpus(tmp_path / "corpus", clips, name="corpus", domain="test", budget=None, check=refs,
                     progress=False)
    assert not (tmp_path / "corpus").exists() and not (tmp_path / "corpus.partial").exists()


def test_leakage_check_catches_exact_copies_and_passes_clean_corpora(tmp_path):
    refs = _references(tmp_path / "data")
    clean = build_synthetic(tmp_path / "clean", n_clips=4, seconds=2.0, seed=9)
    assert check_leakage(clean, refs, progress=False)["result"] == "clean"
    copied = tmp_path / "copied"
    shutil.copytree(clean, copied)
    shutil.copy(refs[0], copied / "audio" / "extra.wav")
    (copied / "manifest.jsonl").unlink()  # a plain folder: every audio file is checked
    with pytest.raises(LeakageError, match="same sha256"):
        check_leakage(copied, refs, progress=False)


def test_leakage_against_the_real_stimuli(data_root, tmp_path):
    """A resampled, quieter copy of a real stimulus inside a corpus clip is caught; the synthetic corpus is clean."""
    wavs = sorted((data_root / "natsound165" / "stimuli" / "wav").glob("*.wav"))
    stim = wavs[40]
    wave, rate = sf.read(str(stim), dtype="float32")
    rng = np.random.default_rng(0)
    clips = [("a", synthetic_clip(rng, 3.0), "synthetic"),
             ("b", np.concatenate([synthetic_clip(rng, 0.7), 0.5 * resample(wave, rate, 16000)]), "synthetic")]
    with pytest.raises(LeakageError, match=stim.name):
        write_corpus(tmp_path / "c", clips, name="c", domain="test", budget=None, check=wavs, progress=False)
    assert check_leakage(build_synthetic(tmp_path / "s", n_clips=8, seconds=2.0), wavs, progress=False)


def test_setup_command_lists_the_corpus_packages():
    command = corpora.run_setup(dry_run=True)
    assert command[:2] == ["apt-get", "install"]
    assert {"asterisk-core-sounds-en-wav", "wesnoth-1.16-music", "lincity-ng-data", "espeak-ng"} <= set(command)


@pytest.mark.corpus
def test_build_speech_corpus_from_debian_packages(tmp_path, data_root):
    path = corpora.build_corpus("speech", tmp_path / "speech", budget_seconds=60, progress=False)
    summary = json.loads((path / "corpus.json").read_text())
    assert summary["seconds"] == pytest.approx(60.0, abs=1e-4)
    assert summary["leakage_check"]["result"] == "clean"


def test_drop_leaks_skips_matching_clips_and_fills_the_budget(tmp_path):
    refs = _references(tmp_path / "data")
    wave, rate = sf.read(str(refs[1]), dtype="float32")
    rng = np.random.default_rng(5)
    candidates = [("a", synthetic_clip(rng, 2.0), "synthetic"), ("leak", resample(wave, rate, 16000), "synthetic"),
                  ("b", synthetic_clip(rng, 2.0), "synthetic"), ("c", synthetic_clip(rng, 2.0), "synthetic")]
    dropped: list[dict] = []
    taken = take_budget(iter(candidates), 5 * 16000, progress=False,
                        skip=corpora.leak_filter(refs, dropped, progress=False))
    assert [c[0] for c in taken] == ["a", "b", "c"] and sum(len(c[1]) for c in taken) == 5 * 16000
    assert len(dropped) == 1 and "stim1_ref.wav" in dropped[0]["reason"]


needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")


def test_score_sources_exclude_every_music_style_task_score():
    pytest.importorskip("music21")
    from brainlike.downstream.render import MUSIC_CORPORA, _music21_corpus_root

    root = _music21_corpus_root()
    sources = corpora.score_sources()
    assert len(sources) >= 100
    collections = {p.relative_to(root).parts[0] for p in sources}
    assert collections <= set(corpora.SCORE_CORPORA) and not collections & set(MUSIC_CORPORA)
    task_hashes = {corpora.sha256_file(p) for c in MUSIC_CORPORA for p in (root / c).rglob("*") if p.is_file()}
    assert not {corpora.sha256_file(p) for p in sources} & task_hashes
    assert sources == corpora.score_sources()  # fixed order


def test_render_programs_are_not_nsynth_task_programs():
    from brainlike.downstream.render import NSYNTH_FAMILIES

    task_programs = {p for programs in NSYNTH_FAMILIES.values() for p in programs}
    assert len(set(corpora.RENDER_PROGRAMS)) == 10 and not set(corpora.RENDER_PROGRAMS) & task_programs


def test_silent_tails_do_not_make_unrelated_clips_match():
    """Frames where both sides are digital silence (all-zero sub-fingerprints) are left out of the bit error rate: a
    hi-hat sample and an ESC-50 rooster clip, both 45% silent, matched at 0.27 before (0.49 on the sounding frames)."""
    rng = np.random.default_rng(3)
    silence = np.zeros(300, np.uint32)
    reference = np.concatenate([rng.integers(1, 2 ** 32, 100, dtype=np.uint32), silence])
    unrelated = np.concatenate([rng.integers(1, 2 ** 32, 100, dtype=np.uint32), silence])
    unrelated[:5] = reference[:5]  # a few chance hits propose the alignment
    index = corpora.FingerprintIndex(["ref"], [reference])
    assert bit_error_rate(unrelated, reference) < 0.15  # silence alone would pass every threshold
    assert index.matches(unrelated) == []
    flips = (np.arange(400) % 4 == 0).astype(np.uint32) << rng.integers(0, 32, 400).astype(np.uint32)
    noisy_copy = np.where(reference != 0, reference ^ flips, reference).astype(np.uint32)  # 1 bit in every 4th frame
    [(label, ber, overlap)] = index.matches(noisy_copy)
    assert label == "ref" and ber == pytest.approx(25 / 3200) and overlap == 100


@pytest.mark.slow
@needs_fluidsynth
def test_music_corpus_is_topped_up_with_deterministic_score_renders(tmp_path, data_root, monkeypatch):
    """Without recordings, the music budget fills exactly with FluidR3 renders of non-task scores; the leakage check
    against the real evaluation audio passes and two builds are byte-identical."""
    pytest.importorskip("music21")
    from brainlike.downstream.render import find_soundfont

    monkeypatch.setitem(corpora.SOURCES, "music", [])
    paths = [corpora.build_corpus("music", tmp_path / f"music{i}", budget_seconds=75, progress=False)
             for i in range(2)]
    summary = json.loads((paths[0] / "corpus.json").read_text())
    assert summary["seconds"] == pytest.approx(75.0, abs=1e-4)
    assert summary["leakage_check"]["result"] == "clean"
    assert list(summary["seconds_per_source"]) == [f"fluidsynth/{find_soundfont(None, corpora.RENDER_SOUNDFONTS).name}"]
    assert summary["manifest_sha256"] == json.loads((paths[1] / "corpus.json").read_text())["manifest_sha256"]
    rows = corpora.read_manifest(paths[0])
    assert len(rows) >= 3 and len({r["file"].split("-")[1] for r in rows}) >= 3  # several GM programs
    assert {int(r["file"].split("-")[1][1:]) for r in rows} <= set(corpora.RENDER_PROGRAMS)
    for row in rows:
        wave, rate = sf.read(str(paths[0] / row["file"]), dtype="float32")
        assert rate == 16000 and np.sqrt(np.mean(wave ** 2)) > 0.01  # real music, not silence
    with pytest.raises(DataError, match="no-top-up"):
        corpora.build_corpus("music", tmp_path / "none", budget_seconds=10, progress=False, top_up=False)


def _sources_with_a_leak(folder: Path, refs: list[Path], monkeypatch) -> None:
    """Three synthetic source recordings and, second, a quieter 16 kHz copy of a reference stimulus, offered as the
    environmental domain's candidates (in place of the Debian packages)."""
    rng = np.random.default_rng(7)
    folder.mkdir()
    wave, rate = sf.read(str(refs[1]), dtype="float32")
    clips = [synthetic_clip(rng, 2.0), 0.5 * resample(wave, rate, 16000), synthetic_clip(rng, 2.0),
             synthetic_clip(rng, 2.0)]
    paths = []
    for i, clip in enumerate(clips):
        sf.write(str(folder / f"s{i}.wav"), clip, 16000, subtype="PCM_16")
        paths.append(("test-sounds", folder / f"s{i}.wav"))
    monkeypatch.setattr(corpora, "candidate_clips", lambda domain: (paths, []))


def test_build_drops_and_lists_leaking_clips_by_default(tmp_path, monkeypatch):
    refs = _references(tmp_path / "data")
    _sources_with_a_leak(tmp_path / "sources", refs, monkeypatch)
    path = corpora.build_corpus("environmental", tmp_path / "env", budget_seconds=5.0, references=refs,
                                progress=False, top_up=False)
    summary = json.loads((path / "corpus.json").read_text())
    assert summary["seconds"] == pytest.approx(5.0) and summary["leakage_check"]["result"] == "clean"
    [dropped] = summary["dropped_for_leakage"]
    assert dropped["source"].endswith("s1.wav") and "stim1_ref.wav" in dropped["reason"]
    with pytest.raises(LeakageError, match="without --strict such clips are dropped"):
        corpora.build_corpus("environmental", tmp_path / "strict", budget_seconds=5.0, references=refs,
                             progress=False, top_up=False, drop_leaks=False)
    assert not (tmp_path / "strict").exists()


def test_cli_build_lists_dropped_clips_and_strict_stops(tmp_path, monkeypatch, capsys):
    from brainlike.cli import main

    refs = _references(tmp_path / "data")
    _sources_with_a_leak(tmp_path / "sources", refs, monkeypatch)
    monkeypatch.setenv("BRAINLIKE_DATA", str(tmp_path / "data"))
    hours = str(5.0 / 3600)
    assert main(["-q", "corpus", "build", "environmental", "--hours", hours, "--no-top-up",
                 "--out", str(tmp_path / "env")]) == 0
    err = capsys.readouterr().err
    assert "dropped 1 source clip(s) that match evaluation audio" in err and "s1.wav" in err
    assert main(["-q", "corpus", "build", "environmental", "--hours", hours, "--no-top-up", "--strict",
                 "--out", str(tmp_path / "strict")]) == 2
    assert "leaks evaluation audio" in capsys.readouterr().err and not (tmp_path / "strict").exists()


KNOWN_LEAKS = {"/usr/share/games/lincity-ng/sounds/ParklandLake2.wav": ("stim138_duck_quack.wav", 0.05),
               "/usr/share/games/megaglest/techs/megapack/commondata/sounds/archmage_attack3.wav":
                   ("stim368_thunder.wav", 0.26)}
"""Debian sound files that contain a natsound165 stimulus (README: the duck quack and the thunder)."""


@pytest.mark.corpus
@pytest.mark.parametrize("source", sorted(KNOWN_LEAKS))
def test_the_known_debian_leaks_are_found_and_dropped(source, data_root):
    stimulus, max_ber = KNOWN_LEAKS[source]
    if not Path(source).is_file():
        pytest.skip(f"{source} not installed (brainlike corpus setup)")
    wave, rate = sf.read(source, dtype="float32", always_2d=True)
    clip = resample(wave.mean(axis=1)[: int(corpora.MAX_CLIP_SECONDS * rate)], rate, corpora.CORPUS_RATE,
                    method="soxr")
    refs = sorted((data_root / "natsound165" / "stimuli" / "wav").glob("*.wav"))
    dropped: list[dict] = []
    assert corpora.leak_filter(refs, dropped, progress=False)("clip", clip, f"pkg:{source}")
    [row] = dropped
    ber = float(re.search(r"bit error rate ([\d.]+)", row["reason"]).group(1))
    assert stimulus in row["reason"] and ber < max_ber


@pytest.mark.corpus
def test_hidden_thunder_copies_are_left_out_of_the_sources():
    """archmage_attack4/8/13 hold stim368's thunder under a spell sound but escape the fingerprint check."""
    megaglest = next(s for s in corpora.SOURCES["environmental"] if s.package == "megaglest-data")
    files = corpora.source_files(megaglest)
    if files is None:
        pytest.skip("megaglest-data not installed (brainlike corpus setup)")
    names = {p.name for p in files}
    assert {"archmage_attack3.wav", "archmage_attack1.wav"} <= names  # caught by the fingerprint / unrelated
    assert not names & {"archmage_attack4.wav", "archmage_attack8.wav", "archmage_attack13.wav"}
