"""Deterministic soundfont renders of the synthetic task sets (``brainlike tasks build``).

Two sets are rendered with fluidsynth from a General MIDI soundfont, following NSynth's recipe for single notes:

* ``nsynth``: single notes, MIDI pitch x GM program (55 programs in 11 NSynth-like instrument families, pitches
  48-79), 1.5 s clips (note held 1.0 s, velocity 100). Labels: ``pitch``, ``family``, ``program``; folds 1-5 by
  program within each family (test instruments are never seen in training, as in NSynth's split).
* ``music-style``: 4 s excerpts of scores from the corpora shipped in the music21 wheel (Bach chorales, Palestrina,
  Ryan's Mammoth fiddle tunes, Monteverdi madrigals, Trecento); label = corpus (composer or collection); folds 1-5
  by piece, every piece played by one of four GM programs assigned in rotation so that timbre is balanced across
  labels.

Every clip of a set is a "slot" of one long MIDI file (1 tick = 1 ms, tempo 60 bpm at 1000 ticks per beat) that is
rendered in one fluidsynth call with reverb and chorus off; each slot ends with "all sound off" so that slots do not
bleed into each other. The render is cut into clips, mixed to mono, scaled to a fixed RMS and written as 16-bit WAV
files with a manifest of sha256 hashes. The same fluidsynth version and soundfont give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from brainlike.errors import BrainlikeError, DataError
from brainlike.integrity import atomic_folder, format_sums, sha256_bytes, sha256_file

__all__ = ["RENDER_VERSION", "SAMPLE_RATE", "CLIP_RMS", "GAP_SECONDS", "SOUNDFONT_CANDIDATES", "NSYNTH_FAMILIES",
           "NSYNTH_PITCHES", "NSYNTH_CLIP_SECONDS", "NSYNTH_NOTE_SECONDS", "NSYNTH_VELOCITY", "MUSIC_CORPORA",
           "MUSIC_PIECES_PER_CLASS", "MUSIC_EXCERPTS_PER_PIECE", "MUSIC_CLIP_SECONDS", "MUSIC_QPM", "MUSIC_PROGRAMS",
           "MUSIC_MIN_NOTES", "NoteEvent", "Slot", "find_soundfont", "fluidsynth_version", "slots_to_midi",
           "render_midi", "render_slots", "nsynth_slots", "music_sources", "score_notes", "excerpt_starts",
           "music_slots", "RENDERED_SETS", "build_set"]

log = logging.getLogger(__name__)

RENDER_VERSION = 1
"""Bumped whenever the rendered audio or labels change (part of the manifest and of embedding cache keys)."""

SAMPLE_RATE = 16000
CLIP_RMS = 0.05
GAP_SECONDS = 0.5
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)
"""Soundfonts tried in order (Debian packages musescore-general-soundfont-small, fluid-soundfont-gm). Task renders
prefer MuseScore General so that the pretraining corpus can render with FluidR3 (a different soundfont)."""

NSYNTH_FAMILIES: dict[str, tuple[int, ...]] = {
    "keyboard": (0, 1, 2, 4, 6),
    "mallet": (8, 9, 11, 12, 13),
    "organ": (16, 17, 18, 19, 21),
    "guitar": (24, 25, 26, 27, 29),
    "bass": (32, 33, 34, 35, 38),
    "string": (40, 41, 42, 44, 48),
    "brass": (56, 57, 58, 60, 61),
    "reed": (64, 65, 66, 68, 71),
    "flute": (72, 73, 74, 75, 79),
    "synth_lead": (80, 81, 82, 84, 87),
    "vocal": (52, 53, 54, 85, 91),
}
"""NSynth's instrument families mapped to five General MIDI programs each (0-based program numbers)."""
NSYNTH_PITCHES = tuple(range(48, 80))
NSYNTH_CLIP_SECONDS = 1.5
NSYNTH_NOTE_SECONDS = 1.0
NSYNTH_VELOCITY = 100

MUSIC_CORPORA = ("bach", "palestrina", "ryansMammoth", "monteverdi", "trecento")
MUSIC_PIECES_PER_CLASS = 60
MUSIC_EXCERPTS_PER_PIECE = 2
MUSIC_CLIP_SECONDS = 4.0
MUSIC_QPM = 120.0
MUSIC_PROGRAMS = (0, 19, 48, 73)  # piano, church organ, string ensemble, flute
MUSIC_MIN_NOTES = 6


@dataclass
class NoteEvent:
    """One note inside a slot: onset and duration in seconds from the slot start."""

    onset: float
    duration: float
    pitch: int
    velocity: int
    channel: int = 0


@dataclass
class Slot:
    """One clip to render: its notes, the GM program of every channel it uses, and its labels."""

    name: str
    notes: list[NoteEvent]
    program: int
    labels: dict[str, object] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------------
# MIDI and fluidsynth


def find_soundfont(path: str | Path | None = None, candidates: Sequence[str] = SOUNDFONT_CANDIDATES) -> Path:
    """Return the soundfont to render with: ``path`` if given, else the first installed of ``candidates``."""
    if path is not None:
        p = Path(path).expanduser().resolve()
        if not p.is_file():
            raise DataError(f"soundfont {p} does not exist")
        return p
    for candidate in candidates:
        if Path(candidate).is_file():
            return Path(candidate).resolve()
    raise DataError(
        "no General MIDI soundfont found; install one with `apt-get install fluidsynth "
        "musescore-general-soundfont-small` (or pass --soundfont PATH)"
    )


def fluidsynth_version() -> str:
    """The installed fluidsynth's version line; raises :class:`DataError` when fluidsynth is missing."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise DataError("fluidsynth is not installed; run `apt-get install fluidsynth` to build rendered task sets")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def slots_to_midi(slots: Sequence[Slot], clip_seconds: float, path: Path) -> None:
    """Write every slot, one after the other, into one type-0 MIDI file (1 tick = 1 ms)."""
    import mido

    slot_ms = int(round((clip_seconds + GAP_SECONDS) * 1000))
    clip_ms = int(round(clip_seconds * 1000))
    events: list[tuple[int, int, mido.Message]] = []  # (time_ms, order, message)
    for index, slot in enumerate(slots):
        start = index * slot_ms
        channels = sorted({n.channel for n in slot.notes}) or [0]
        for ch in channels:
            events.append((start, 0, mido.Message("program_change", program=slot.program, channel=ch)))
        for note in slot.notes:
            on = start + int(round(note.onset * 1000))
            off = min(start + int(round((note.onset + note.duration) * 1000)), start + clip_ms)
            if off <= on or on >= start + clip_ms:
                continue
            events.append((on, 2, mido.Message("note_on", note=note.pitch, velocity=note.velocity, channel=note.channel)))
            events.append((off, 1, mido.Message("note_off", note=note.pitch, velocity=0, channel=note.channel)))
        for ch in range(16):
            events.append((start + clip_ms, 3, mido.Message("control_change", control=120, value=0, channel=ch)))
            events.append((start + clip_ms, 4, mido.Message("control_change", control=121, value=0, channel=ch)))
    events.sort(key=lambda e: (e[0], e[1]))
    midi = mido.MidiFile(type=0, ticks_per_beat=1000)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))
    now = 0
    for time_ms, _, message in events:
        track.append(message.copy(time=time_ms - now))
        now = time_ms
    track.append(mido.MetaMessage("end_of_track", time=slot_ms))
    midi.save(str(path))


def render_midi(midi_path: Path, soundfont: Path, wav_path: Path) -> tuple[np.ndarray, int]:
    """Render a MIDI file with fluidsynth (no reverb/chorus, float output); return the mono waveform."""
    import soundfile as sf

    fluidsynth_version()
    cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.3", "-r", str(SAMPLE_RATE),
           "-O", "float", "-T", "wav", "-F", str(wav_path), str(soundfont), str(midi_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not wav_path.is_file():
        raise BrainlikeError(f"fluidsynth failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[:200]}")
    data, rate = sf.read(str(wav_path), dtype="float64", always_2d=True)
    return data.mean(axis=1), int(rate)


def render_slots(slots: Sequence[Slot], clip_seconds: float, soundfont: Path) -> list[np.ndarray]:
    """Render slots in one fluidsynth call and cut them into float32 mono clips scaled to RMS ``CLIP_RMS``."""
    with tempfile.TemporaryDirectory(prefix="brainlike-render-") as tmp:
        midi_path, wav_path = Path(tmp) / "slots.mid", Path(tmp) / "slots.wav"
        slots_to_midi(slots, clip_seconds, midi_path)
        audio, rate = render_midi(midi_path, soundfont, wav_path)
    slot_n = int(round((clip_seconds + GAP_SECONDS) * rate))
    clip_n = int(round(clip_seconds * rate))
    clips = []
    for index, slot in enumerate(slots):
        clip = audio[index * slot_n: index * slot_n + clip_n]
        if len(clip) < clip_n:
            clip = np.pad(clip, (0, clip_n - len(clip)))
        rms = float(np.sqrt(np.mean(clip ** 2)))
        if rms < 1e-5:
            raise DataError(f"rendered clip {slot.name} is silent (program {slot.program}); check the soundfont")
        scaled = clip * (CLIP_RMS / rms)
        clips.append(np.clip(scaled, -1.0, 32767 / 32768).astype(np.float32))
    return clips


# --------------------------------------------------------------------------------------------------------------------
# The two sets


def nsynth_slots(pitches: Iterable[int] = NSYNTH_PITCHES,
                 families: dict[str, tuple[int, ...]] | None = None) -> list[Slot]:
    """Single-note slots: every (family, program, pitch); fold = 1 + the program's index within its family."""
    families = NSYNTH_FAMILIES if families is None else families
    slots = []
    for family, programs in families.items():
        for k, program in enumerate(programs):
            for pitch in pitches:
                note = NoteEvent(0.0, NSYNTH_NOTE_SECONDS, int(pitch), NSYNTH_VELOCITY)
                labels = {"pitch": int(pitch), "family": family, "program": int(program), "fold": k + 1}
                slots.append(Slot(f"{family}-p{program:03d}-n{pitch:03d}", [note], int(program), labels))
    return slots


def music_sources(corpora: Sequence[str] = MUSIC_CORPORA) -> dict[str, list[str]]:
    """Score files of each corpus in the music21 wheel, as paths relative to the music21 corpus folder, in a fixed
    pseudo-random order (sha256 of the relative path)."""
    from music21 import corpus

    root = _music21_corpus_root()
    out: dict[str, list[str]] = {c: [] for c in corpora}
    for path in corpus.getCorePaths():
        rel = Path(path).resolve().relative_to(root).as_posix()
        top = rel.split("/", 1)[0]
        if top in out:
            out[top].append(rel)
    for name, rels in out.items():
        if not rels:
            raise DataError(f"the music21 corpus has no scores for {name!r}")
        rels.sort(key=sha256_bytes)
    return out


def _music21_corpus_root() -> Path:
    import music21

    return (Path(music21.__file__).parent / "corpus").resolve()


def score_notes(rel_path: str) -> list[NoteEvent]:
    """All notes of a music21 corpus score in seconds at ``MUSIC_QPM`` (ties merged, parts on channels 0..15 but 9)."""
    from music21 import corpus, stream

    parsed = corpus.parse(str(_music21_corpus_root() / rel_path))
    if isinstance(parsed, stream.Opus):
        parsed = parsed.scores[0]
    parsed = parsed.stripTies(inPlace=False)
    parts = list(parsed.parts) or [parsed]
    channels = [c for c in range(16) if c != 9]
    sec_per_ql = 60.0 / MUSIC_QPM
    notes: list[NoteEvent] = []
    for index, part in enumerate(parts):
        channel = channels[index % len(channels)]
        for element in part.flatten().notes:
            duration = float(element.quarterLength) * sec_per_ql
            if duration <= 0:
                continue
            onset = float(element.offset) * sec_per_ql
            for pitch in element.pitches:
                if 0 <= pitch.midi <= 127:
                    notes.append(NoteEvent(onset, duration, int(pitch.midi), 90, channel))
    notes.sort(key=lambda n: (n.onset, n.channel, n.pitch))
    return notes


def excerpt_starts(notes: Sequence[NoteEvent], n: int, clip_seconds: float) -> list[float]:
    """Start times of ``n`` excerpts: the first note onset, then evenly spaced through the piece, each excerpt
    holding at least ``MUSIC_MIN_NOTES`` onsets and not overlapping the previous one."""
    if not notes:
        return []
    first, last = notes[0].onset, max(x.onset for x in notes)
    onsets = np.array([x.onset for x in notes])
    span = max(last - first - clip_seconds, 0.0)
    candidates = [first + span * j / max(n - 1, 1) for j in range(n)]
    candidates += [first + span * j / (4 * n) for j in range(4 * n + 1)]
    starts: list[float] = []
    for t in candidates:
        t = float(onsets[min(np.searchsorted(onsets, t - 1e-9), len(onsets) - 1)])
        if any(abs(t - s) < clip_seconds for s in starts):
            continue
        if np.count_nonzero((onsets >= t) & (onsets < t + clip_seconds)) >= MUSIC_MIN_NOTES:
            starts.append(t)
        if len(starts) == n:
            break
    return sorted(starts)


def music_slots(pieces_per_class: int = MUSIC_PIECES_PER_CLASS,
                corpora: Sequence[str] = MUSIC_CORPORA) -> list[Slot]:
    """Excerpt slots of the music-style set: per corpus, the first ``pieces_per_class`` pieces (in the fixed order of
    :func:`music_sources`) that parse and hold enough notes for every excerpt."""
    from brainlike.progress import task

    sources = music_sources(corpora)
    slots: list[Slot] = []
    with task("parsing music21 scores", total=pieces_per_class * len(corpora)) as advance:
        for label in corpora:
            taken = 0
            for rel in sources[label]:
                if taken == pieces_per_class:
                    break
                try:
                    notes = score_notes(rel)
                except Exception as exc:  # music21 raises many types on odd scores: skip the piece, deterministically
                    log.info("skipping %s: %s", rel, exc)
                    continue
                starts = excerpt_starts(notes, MUSIC_EXCERPTS_PER_PIECE, MUSIC_CLIP_SECONDS)
                if len(starts) < MUSIC_EXCERPTS_PER_PIECE:
                    continue
                program = MUSIC_PROGRAMS[taken % len(MUSIC_PROGRAMS)]
                for k, t0 in enumerate(starts):
                    window = [NoteEvent(x.onset - t0, x.duration, x.pitch, x.velocity, x.channel) for x in notes
                              if t0 <= x.onset < t0 + MUSIC_CLIP_SECONDS]
                    labels = {"style": label, "piece": rel, "program": program, "fold": taken % 5 + 1,
                              "start_s": round(t0, 3)}
                    slots.append(Slot(f"{label}-{taken:03d}-{k}", window, program, labels))
                taken += 1
                advance()
            if taken < pieces_per_class:
                raise DataError(f"only {taken} usable {label} scores in the music21 corpus (need {pieces_per_class})")
    return slots


RENDERED_SETS = {"nsynth": NSYNTH_CLIP_SECONDS, "music-style": MUSIC_CLIP_SECONDS}


def build_set(name: str, dest: Path, *, soundfont: str | Path | None = None, force: bool = False,
              slots: Sequence[Slot] | None = None) -> Path:
    """Render set ``name`` into ``dest`` (``audio/*.wav``, ``labels.csv``, ``SHA256SUMS``, ``manifest.json``).

    Skips the work when ``dest/manifest.json`` already describes the same render (version, soundfont, fluidsynth)
    unless ``force``. ``slots`` overrides the set's slots (tests render a few notes). Returns the manifest path.
    """
    import soundfile as sf

    if name not in RENDERED_SETS:
        raise BrainlikeError(f"unknown rendered set {name!r}; choose from {sorted(RENDERED_SETS)}")
    font = find_soundfont(soundfont)
    header = {"set": name, "render_version": RENDER_VERSION, "sample_rate": SAMPLE_RATE,
              "clip_seconds": RENDERED_SETS[name], "soundfont": font.name, "soundfont_sha256": sha256_file(font),
              "fluidsynth": fluidsynth_version(), "custom_slots": slots is not None}
    manifest_path = dest / "manifest.json"
    if manifest_path.is_file() and not force:
        old = json.loads(manifest_path.read_text())
        if {k: old.get(k) for k in header} == header:
            log.info("%s is up to date (%s)", name, manifest_path)
            return manifest_path
    if slots is None:
        slots = nsynth_slots() if name == "nsynth" else music_slots()
    clips = render_slots(slots, RENDERED_SETS[name], font)
    with atomic_folder(dest, replace=True) as tmp:
        (tmp / "audio").mkdir()
        rows = []
        for slot, clip in zip(slots, clips):
            rel = f"audio/{slot.name}.wav"
            sf.write(str(tmp / rel), clip, SAMPLE_RATE, subtype="PCM_16")
            rows.append({"file": rel, "sha256": sha256_file(tmp / rel), **slot.labels})
        _write_outputs(tmp, header, rows)
    return manifest_path


def _write_outputs(folder: Path, header: dict, rows: list[dict]) -> None:
    import pandas as pd

    table = pd.DataFrame(rows)
    table.drop(columns=["sha256"]).to_csv(folder / "labels.csv", index=False, lineterminator="\n")
    sums = format_sums({r["file"]: r["sha256"] for r in rows})
    (folder / "SHA256SUMS").write_text(sums)
    sources = sorted({str(r["piece"]) for r in rows if "piece" in r})
    manifest = {**header, "n_clips": len(rows), "sources": sources,
                "sources_root": "music21 corpus" if sources else None,
                "checksum": sha256_bytes(sums),
                "clips": rows}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

