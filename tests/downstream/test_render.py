"""Rendered task sets: slot layout, MIDI timing, excerpt choice; fluidsynth renders are marked slow."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest

from brainlike.downstream import render


def test_nsynth_slots_are_balanced_with_one_program_per_family_and_fold():
    slots = render.nsynth_slots()
    assert len(slots) == 55 * 32 == 1760
    labels = [s.labels for s in slots]
    assert set(Counter(x["pitch"] for x in labels).values()) == {55}
    assert set(Counter(x["family"] for x in labels).values()) == {160}
    assert set(Counter(x["fold"] for x in labels).values()) == {352}
    programs_per_fold_family = Counter((x["fold"], x["family"]) for x in {(x["program"], x["fold"], x["family"]):
                                                                          x for x in labels}.values())
    assert set(programs_per_fold_family.values()) == {1}  # test instruments never appear in training
    assert len({s.name for s in slots}) == len(slots)


def test_slots_to_midi_places_every_slot_on_a_fixed_millisecond_grid(tmp_path):
    mido = pytest.importorskip("mido")
    slots = render.nsynth_slots(pitches=[60, 72], families={"flute": (73,), "organ": (19,)})
    path = tmp_path / "slots.mid"
    render.slots_to_midi(slots, 1.5, path)
    midi = mido.MidiFile(str(path))
    assert midi.ticks_per_beat == 1000
    now, ons, offs, silences, programs = 0, [], [], [], []
    for message in midi.tracks[0]:
        now += message.time  # ticks = ms at tempo 1 s per beat
        if message.type == "note_on" and message.velocity > 0:
            ons.append((now, message.note))
        elif message.type == "note_off":
            offs.append(now)
        elif message.type == "control_change" and message.control == 120 and message.channel == 0:
            silences.append(now)
        elif message.type == "program_change":
            programs.append((now, message.program))
    assert ons == [(0, 60), (2000, 72), (4000, 60), (6000, 72)]  # slot = 1.5 s clip + 0.5 s gap
    assert offs == [1000, 3000, 5000, 7000]  # notes held 1.0 s
    assert silences == [1500, 3500, 5500, 7500]  # all sound off at each clip end
    assert programs == [(0, 73), (2000, 73), (4000, 19), (6000, 19)]


def test_notes_are_cut_at_the_clip_end(tmp_path):
    mido = pytest.importorskip("mido")
    slot = render.Slot("x", [render.NoteEvent(0.5, 10.0, 64, 90), render.NoteEvent(5.0, 1.0, 65, 90)], 0)
    path = tmp_path / "cut.mid"
    render.slots_to_midi([slot], 4.0, path)
    times, now = [], 0
    for message in mido.MidiFile(str(path)).tracks[0]:
        now += message.time
        if message.type in ("note_on", "note_off"):
            times.append((message.type, message.note, now))
    assert times == [("note_on", 64, 500), ("note_off", 64, 4000)]  # the note starting after 4 s is dropped


def test_excerpt_starts_are_disjoint_and_hold_enough_notes():
    notes = [render.NoteEvent(0.25 * k, 0.25, 60 + k % 12, 90) for k in range(120)]  # 30 s of 16th notes
    starts = render.excerpt_starts(notes, 2, 4.0)
    assert starts == [0.0, 25.75]  # first onset, and the last window that still holds notes
    for t in starts:
        assert sum(t <= n.onset < t + 4.0 for n in notes) >= render.MUSIC_MIN_NOTES
    sparse = [render.NoteEvent(3.0 * k, 1.0, 60, 90) for k in range(4)]
    assert render.excerpt_starts(sparse, 2, 4.0) == []  # too few notes per window


def test_music_sources_are_in_a_fixed_order_and_known_corpora():
    pytest.importorskip("music21")
    sources = render.music_sources()
    assert list(sources) == list(render.MUSIC_CORPORA)
    assert all(len(v) >= render.MUSIC_PIECES_PER_CLASS for v in sources.values())
    assert sources == render.music_sources()
    assert all(rel.startswith(f"{name}/") for name, rels in sources.items() for rel in rels)


@pytest.mark.slow
def test_render_is_deterministic_and_notes_have_the_right_pitch(tmp_path):
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed")
    slots = render.nsynth_slots(pitches=[57, 69], families={"flute": (73,), "string": (40,)})
    first = render.build_set("nsynth", tmp_path / "a", slots=slots)
    second = render.build_set("nsynth", tmp_path / "b", slots=slots)
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert [c["sha256"] for c in a["clips"]] == [c["sha256"] for c in b["clips"]]
    assert a["checksum"] == b["checksum"] and a["n_clips"] == 4
    import soundfile as sf

    for clip in a["clips"]:
        wave, rate = sf.read(str(tmp_path / "a" / clip["file"]))
        assert rate == 16000 and len(wave) == 24000
        segment = wave[3200:12800]  # 0.2-0.8 s, while the note is held
        spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
        f0 = 440.0 * 2 ** ((clip["pitch"] - 69) / 12)
        freqs = np.fft.rfftfreq(len(segment), 1 / rate)
        band = (freqs > f0 / 1.5) & (freqs < f0 * 1.5)
        peak = freqs[band][np.argmax(spectrum[band])]
        assert abs(12 * np.log2(peak / f0)) < 0.3  # the fundamental is at the labelled MIDI pitch
        assert np.sqrt(np.mean(wave ** 2)) == pytest.approx(render.CLIP_RMS, rel=0.01)


@pytest.mark.slow
def test_build_skips_an_up_to_date_render(tmp_path):
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed")
    slots = render.nsynth_slots(pitches=[60], families={"flute": (73,)})
    path = render.build_set("nsynth", tmp_path / "n", slots=slots)
    stamp = path.stat().st_mtime_ns
    assert render.build_set("nsynth", tmp_path / "n", slots=slots) == path and path.stat().st_mtime_ns == stamp
