"""Pretraining corpora: building, manifests, loading, and the leakage check.

A corpus is a folder::

    corpus.json        name, domain, sample rate, budget, total seconds, per-source seconds, manifest sha256, leakage
    manifest.jsonl     one row per clip: file, sha256, seconds, domain, source, source_sha256 (deterministic order)
    audio/*.wav        16 kHz mono PCM16 clips

``build_corpus`` draws real recordings from Debian packages (installed by ``brainlike corpus setup``; see
``SOURCES``), tops up speech with ``espeak-ng`` and music with fluidsynth renders of music21 scores (FluidR3, none of
them a music-style task score) when installed, and stops at an exact duration budget (the last clip is
cut), so every domain gets the same amount of audio; ``mixture`` takes equal thirds of the three domains. Every build
ends with :func:`check_leakage` against the evaluation audio (the 165 stimuli and the downstream sets): an exact file
hash match or a near-duplicate audio fingerprint (Haitsma-Kalker style 32-bit sub-fingerprints; bit error rate < 0.35
over 3 s, < 0.25 over 1 s, < 0.15 over shorter reference clips). By default matching source clips are dropped before
they are taken (and listed in corpus.json); the final check of the written corpus raises :class:`LeakageError` and
nothing is written if anything still matches (``strict``: the first match stops the build).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from brainlike.config import cache_root, data_root
from brainlike.data.audio import read_audio, resample
from brainlike.errors import AudioError, DataError
from brainlike.integrity import atomic_folder, atomic_write_bytes, sha256_bytes, sha256_file

__all__ = ["CORPUS_RATE", "AUDIO_EXTENSIONS", "DOMAINS", "DEFAULT_BUDGET_SECONDS", "MAX_CLIP_SECONDS", "LeakageError",
           "Source", "SOURCES", "SETUP_PACKAGES", "Corpus", "corpora_root", "resolve_corpus", "load_corpus",
           "read_manifest", "scan_folder", "manifest_sha256", "synthetic_clip", "build_synthetic", "setup_command",
           "run_setup", "package_files", "source_files", "candidate_clips", "TTS_SENTENCES", "TTS_VOICES", "tts_clips",
           "SCORE_CORPORA", "RENDER_PROGRAMS", "RENDER_SOUNDFONTS", "RENDER_BATCH", "score_sources", "render_clips",
           "build_corpus", "leak_filter", "collect_clips", "take_budget", "write_corpus", "FP_RATE", "FP_FRAME",
           "FP_HOP", "FP_BANDS", "BER_THRESHOLDS", "MIN_OVERLAP", "MIN_FRAMES", "fingerprint", "bit_error_rate",
           "FingerprintIndex", "max_ber", "reference_files", "rendered_task_files", "reference_index", "check_leakage",
           "KNOWN_HIDDEN_LEAKS"]

CORPUS_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".ogg", ".flac", ".mp3", ".oga")
DOMAINS = ("speech", "music", "environmental")
DEFAULT_BUDGET_SECONDS = 3600.0
MAX_CLIP_SECONDS = 30.0
"""Each source file contributes at most its first 30 s, so long music tracks do not eat a domain's budget."""


class LeakageError(DataError):
    """A pretraining corpus contains audio from an evaluation set."""


@dataclass(frozen=True)
class Source:
    """Audio files of one Debian package for one domain (paths filtered by regular expressions)."""

    package: str
    include: str = ""
    exclude: str = r"$^"


KNOWN_HIDDEN_LEAKS = r"/archmage_attack(4|8|13)\.wav$"
"""megaglest files that contain the recording of stim368_thunder but pass the fingerprint check (no exact
sub-fingerprint hit proposes the alignment; whole-overlap bit error rate 0.30-0.32): their sibling
``archmage_attack3.wav`` is caught (0.25). Aligned 44 ms apart, each of the four waveforms correlates 0.35-0.46 with
the stimulus overall and 0.91-0.99 in every 250 ms segment after the spell sound mixed over its first 0.75-1 s
(README, "Pretraining"). Left out of the sources."""

SOURCES: dict[str, list[Source]] = {
    "speech": [Source(f"asterisk-core-sounds-{lang}-wav") for lang in ("en", "es", "fr", "it", "ru")]
    + [Source("klettres-data"), Source("ktuberling-data")],
    "music": [Source("wesnoth-1.16-music"), Source("hydrogen-drumkits"), Source("lincity-ng-data", r"/music/"),
              Source("widelands-data", r"/music/"), Source("megaglest-data", r"/music/"),
              Source("supertux-data", r"/music/")],
    "environmental": [Source("lincity-ng-data", r"/sounds/"), Source("widelands-data", r"/sound/", r"/music/"),
                      Source("megaglest-data", r"/(tilesets/[^/]+/sounds|water_sounds|commondata/sounds)/",
                             r"/music/|" + KNOWN_HIDDEN_LEAKS)],
}
"""Per-domain sources from audio-corpora.md. Packages that are not installed are skipped (and reported)."""

SETUP_PACKAGES = sorted({s.package for sources in SOURCES.values() for s in sources} | {"espeak-ng"})


# ------------------------------------------------------------------------------------------------------------- loading
@dataclass
class Corpus:
    """A loaded corpus: clips at one rate, in manifest order, and the manifest's hash."""

    path: Path
    clips: list[np.ndarray]
    sample_rate: int
    manifest_sha256: str

    @property
    def seconds(self) -> float:
        return sum(len(c) for c in self.clips) / self.sample_rate


def corpora_root() -> Path:
    """Where named corpora live: ``$BRAINLIKE_CACHE/corpora``."""
    return cache_root() / "corpora"


def resolve_corpus(name_or_dir: str | Path) -> Path:
    """A corpus folder from a path or a name built by ``brainlike corpus build`` (``synthetic`` is built on demand)."""
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path.resolve()
    named = corpora_root() / str(name_or_dir)
    if named.is_dir():
        return named
    if str(name_or_dir) == "synthetic":
        return build_synthetic(named)
    raise DataError(f"no corpus {name_or_dir!r}: not a folder and not in {corpora_root()} "
                    f"(build it with `brainlike corpus build {name_or_dir}`)")


def load_corpus(name_or_dir: str | Path, sample_rate: int = CORPUS_RATE) -> Corpus:
    """Read every clip of a corpus (manifest order) as float32 at ``sample_rate``.

    A folder without ``manifest.jsonl`` is read as all its audio files in sorted path order.
    """
    path = resolve_corpus(name_or_dir)
    rows = read_manifest(path) if (path / "manifest.jsonl").is_file() else scan_folder(path)
    if not rows:
        raise DataError(f"corpus {path} holds no audio")
    clips = []
    for row in rows:
        waveform, rate = read_audio(path / row["file"], allow_silent=True)
        clips.append(resample(waveform, rate, sample_rate, method="soxr") if rate != sample_rate else waveform)
    return Corpus(path, clips, sample_rate, manifest_sha256(rows))


def read_manifest(path: Path) -> list[dict]:
    """Rows of ``manifest.jsonl``; checks every file's sha256 against the manifest."""
    rows = [json.loads(line) for line in (path / "manifest.jsonl").read_text().splitlines() if line.strip()]
    for row in rows:
        actual = sha256_file(path / row["file"])
        if actual != row["sha256"]:
            raise DataError(f"corpus file {path / row['file']} does not match its manifest sha256")
    return rows


def scan_folder(path: Path) -> list[dict]:
    """Manifest rows for a plain folder of audio files (sorted relative paths)."""
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    return [{"file": str(p.relative_to(path)), "sha256": sha256_file(p)} for p in files]


def manifest_sha256(rows: Sequence[dict]) -> str:
    """sha256 over the ordered (file, sha256) pairs: identifies a corpus's content and order."""
    return sha256_bytes("".join(f"{row['file']}\t{row['sha256']}\n" for row in rows))


# ----------------------------------------------------------------------------------------------------------- synthetic
def synthetic_clip(rng: np.random.Generator, seconds: float, rate: int = CORPUS_RATE) -> np.ndarray:
    """A deterministic synthetic clip: harmonic tones with glides, amplitude-modulated noise bands and clicks."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    clip = np.zeros(n)
    for _ in range(rng.integers(1, 4)):  # harmonic complexes with a glide
        f0 = rng.uniform(80, 600) * 2 ** (rng.uniform(-1, 1) * t / seconds)
        phase = 2 * np.pi * np.cumsum(f0) / rate
        tone = sum(np.sin(h * phase) / h for h in range(1, rng.integers(2, 8)))
        onset, length = rng.uniform(0, seconds / 2), rng.uniform(seconds / 4, seconds)
        clip += tone * ((t >= onset) & (t < onset + length)) * rng.uniform(0.2, 1.0)
    noise = rng.standard_normal(n)
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    centre, width = rng.uniform(300, 6000), rng.uniform(100, 2000)
    band = np.fft.irfft(spectrum * np.exp(-0.5 * ((freqs - centre) / width) ** 2), n)
    clip += band / (np.std(band) + 1e-9) * rng.uniform(0.05, 0.5) * (1 + np.sin(2 * np.pi * rng.uniform(1, 8) * t))
    clicks = rng.integers(0, n, rng.integers(0, 6))
    clip[clicks] += rng.uniform(-1, 1, len(clicks))
    return (0.1 * clip / (np.sqrt(np.mean(clip ** 2)) + 1e-9)).astype(np.float32)


def build_synthetic(out: str | Path, n_clips: int = 48, seconds: float = 4.0, seed: int = 0) -> Path:
    """Write a synthetic corpus (tones, noise bands, clicks) with its manifest; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    clips = [(f"synth{i:04d}", synthetic_clip(rng, seconds), "synthetic") for i in range(n_clips)]
    return write_corpus(Path(out), clips, name=Path(out).name, domain="synthetic", budget=None, check=None)


# ---------------------------------------------------------------------------------------------------------- debian
def setup_command() -> list[str]:
    """The apt-get command that installs every corpus source package (about 1 GB)."""
    return ["apt-get", "install", "-y", "--no-install-recommends", *SETUP_PACKAGES]


def run_setup(dry_run: bool = False) -> list[str]:
    """Install the corpus packages with apt-get (needs root); returns the command."""
    command = setup_command()
    if dry_run:
        return command
    if shutil.which("apt-get") is None:
        raise DataError("apt-get not found: install these Debian packages by hand: " + " ".join(SETUP_PACKAGES))
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    result = subprocess.run(prefix + command, check=False)
    if result.returncode != 0:
        raise DataError(f"`{' '.join(prefix + command)}` failed with exit status {result.returncode}")
    return command


def package_files(package: str) -> list[Path] | None:
    """Installed files of a Debian package (``dpkg -L``), or None if it is not installed."""
    if shutil.which("dpkg") is None:
        return None
    result = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return [Path(line) for line in result.stdout.splitlines() if line.startswith("/")]


def source_files(source: Source) -> list[Path] | None:
    """Audio files of a source (sorted), or None if its package is not installed."""
    files = package_files(source.package)
    if files is None:
        return None
    include, exclude = re.compile(source.include), re.compile(source.exclude)
    return sorted(p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS and include.search(str(p))
                  and not exclude.search(str(p)) and p.is_file())


def candidate_clips(domain: str) -> tuple[list[tuple[str, Path]], list[str]]:
    """(source label, file) pairs for a domain, interleaved round-robin over sources; and the missing packages."""
    per_source, missing = [], []
    for source in SOURCES[domain]:
        files = source_files(source)
        if files is None:
            missing.append(source.package)
        elif files:
            per_source.append([(source.package, f) for f in files])
    interleaved = [item for group in _round_robin(per_source) for item in group]
    return interleaved, missing


def _round_robin(groups: list[list]) -> Iterable[list]:
    for i in range(max((len(g) for g in groups), default=0)):
        yield [g[i] for g in groups if i < len(g)]


# --------------------------------------------------------------------------------------------------------------- TTS
TTS_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore.",
    "A journey of a thousand miles begins with a single step.", "Please call Stella and ask her to bring these things.",
    "The rain in Spain stays mainly in the plain.", "How much wood would a woodchuck chuck?",
    "Every morning the baker opens the shop before sunrise.", "Numbers one two three four five six seven eight nine.",
)
TTS_VOICES = ("en", "en-us", "de", "fr", "es", "it", "nl", "pl", "pt", "ru", "sv", "cs")


def tts_clips(seconds_needed: float, workdir: Path) -> list[tuple[str, np.ndarray, str]]:
    """Speech top-up with espeak-ng (voices x sentences, deterministic); empty if espeak-ng is not installed."""
    if shutil.which("espeak-ng") is None or seconds_needed <= 0:
        return []
    clips, total = [], 0.0
    for voice in TTS_VOICES:
        for i, sentence in enumerate(TTS_SENTENCES):
            wav = workdir / f"tts_{voice}_{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), sentence], check=True, capture_output=True)
            waveform, rate = read_audio(wav)
            waveform = resample(waveform, rate, CORPUS_RATE, method="soxr")
            clips.append((f"tts-{voice}-{i}", waveform, f"espeak-ng:{voice}"))
            total += len(waveform) / CORPUS_RATE
            if total >= seconds_needed:
                return clips
    return clips


# ------------------------------------------------------------------------------------------------ soundfont renders
SCORE_CORPORA = ("beethoven", "mozart", "haydn", "schumann_robert", "schumann_clara", "josquin", "oneills1850",
                 "essenFolksong", "airdsAirs", "chopin", "corelli", "cpebach", "handel", "joplin", "schubert", "verdi",
                 "weber", "beach", "johnson_j_r", "liliuokalani")
"""music21 collections rendered for the music top-up. None of them is a music-style task class (those are
``brainlike.downstream.render.MUSIC_CORPORA``), and score files equal in content to a task score are skipped too."""
RENDER_PROGRAMS = (46, 7, 70, 22, 105, 14, 59, 15, 107, 10)
"""GM programs cycled over the rendered pieces: harp, clavinet, bassoon, harmonica, banjo, tubular bells, muted trumpet,
dulcimer, koto, music box. None of them is an nsynth task program (``NSYNTH_FAMILIES``): General MIDI soundfonts
share instrument samples (MuseScore General grew out of FluidR3), and a sustained note of a task program inside a render
is caught by the leakage check (a FluidR3 string-ensemble render matched the MuseScore task note string-p048-n067)."""
RENDER_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
                     "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "/usr/share/sounds/sf3/MuseScore_General.sf3")
"""Soundfonts for corpus renders, FluidR3 first: task sets render with MuseScore General, so the pretraining music
does not share the task's instrument samples when both are installed."""
RENDER_BATCH = 8


def score_sources() -> list[Path]:
    """Score files of ``SCORE_CORPORA`` in the music21 wheel (fixed pseudo-random order by sha256 of the relative
    path), minus the music-style task's source scores by path and by content hash."""
    from music21 import corpus as m21corpus

    from brainlike.downstream.render import _music21_corpus_root
    from brainlike.downstream.tasks import rendered_sources

    root = _music21_corpus_root()
    task_pieces = set(rendered_sources())
    task_hashes = {sha256_file(root / rel) for rel in task_pieces}
    rels = [Path(p).resolve().relative_to(root).as_posix() for p in m21corpus.getCorePaths()]
    chosen = sorted((r for r in rels if r.split("/", 1)[0] in SCORE_CORPORA and r not in task_pieces),
                    key=sha256_bytes)
    return [root / r for r in chosen if sha256_file(root / r) not in task_hashes]


def render_clips(seconds_needed: float, soundfont: str | Path | None = None) -> Iterable[tuple[str, np.ndarray, str]]:
    """Music top-up: the first ``MAX_CLIP_SECONDS`` of music21 scores rendered with fluidsynth (deterministic).

    Yields (clip id, 16 kHz float32 waveform scaled to the task renders' RMS, source) lazily, in batches of
    ``RENDER_BATCH`` pieces, until ``seconds_needed`` is covered or the scores run out. Each clip ends half a second
    after its last note. Yields nothing if fluidsynth is not installed.
    """
    from brainlike.downstream import render

    if shutil.which("fluidsynth") is None or seconds_needed <= 0:
        return
    font = render.find_soundfont(soundfont, RENDER_SOUNDFONTS)
    batch, n_pieces, produced = [], 0, 0.0
    for index, path in enumerate(score_sources()):
        try:
            notes = render.score_notes(str(path))
        except Exception:  # music21 raises many types on odd scores: skip the piece, deterministically
            continue
        window = [n for n in notes if n.onset - notes[0].onset < MAX_CLIP_SECONDS] if notes else []
        if len(window) < render.MUSIC_MIN_NOTES:
            continue
        t0 = window[0].onset
        events = [render.NoteEvent(n.onset - t0, n.duration, n.pitch, n.velocity, n.channel) for n in window]
        end = min(MAX_CLIP_SECONDS, max(n.onset + n.duration for n in events) + 0.5)
        program = RENDER_PROGRAMS[n_pieces % len(RENDER_PROGRAMS)]
        batch.append((render.Slot(f"score-{index:04d}", events, program), end, path))
        n_pieces += 1
        if len(batch) == RENDER_BATCH:
            for item in _render_batch(batch, font):
                produced += len(item[1]) / CORPUS_RATE
                yield item
            if produced >= seconds_needed:
                return
            batch = []
    yield from _render_batch(batch, font)


def _render_batch(pieces: Sequence[tuple], font: Path) -> list[tuple[str, np.ndarray, str]]:
    """Render (slot, end seconds, score path) pieces in one fluidsynth call: clips cut at their end, at 16 kHz."""
    from brainlike.downstream import render

    if not pieces:
        return []
    root = render._music21_corpus_root()
    clips = render.render_slots([slot for slot, _, _ in pieces], MAX_CLIP_SECONDS, font)
    out = []
    for (slot, end, path), clip in zip(pieces, clips):
        clip = clip[: int(round(end * render.SAMPLE_RATE))]  # the tail after the last note is silence
        if render.SAMPLE_RATE != CORPUS_RATE:
            clip = resample(clip, render.SAMPLE_RATE, CORPUS_RATE, method="soxr")
        clip = np.clip(clip * (render.CLIP_RMS / np.sqrt(np.mean(clip ** 2))), -1.0, 32767 / 32768).astype(np.float32)
        rel = path.relative_to(root).as_posix()
        clip_id = f"render-p{slot.program:03d}-{sha256_bytes(rel)[:12]}"
        out.append((clip_id, clip, f"fluidsynth/{font.name}:{path}"))
    return out


# ------------------------------------------------------------------------------------------------------------ building
def build_corpus(domain: str, out: str | Path, *, budget_seconds: float = DEFAULT_BUDGET_SECONDS,
                 references: Sequence[Path] | None = None, drop_leaks: bool = True, progress: bool = True,
                 top_up: bool = True, soundfont: str | Path | None = None) -> Path:
    """Build a domain corpus (``speech``, ``music``, ``environmental``) or ``mixture`` (equal thirds).

    Clips come from the installed source packages (round-robin over sources, sorted paths), are decoded, resampled to
    16 kHz mono and taken until ``budget_seconds`` is reached exactly (the last clip is cut). Speech is topped up with
    espeak-ng and music with soundfont renders of music21 scores (:func:`render_clips`) when the recordings fall short
    (``top_up=False`` turns both off). Candidate clips that match evaluation audio are skipped (listed in corpus.json
    under ``dropped_for_leakage``) and the next candidates fill the budget; the final check still runs. With
    ``drop_leaks=False`` (``--strict``) a matching clip raises :class:`LeakageError` instead (nothing is written).
    Raises :class:`DataError` when a domain cannot fill its budget.
    """
    if domain not in DOMAINS + ("mixture",):
        raise DataError(f"unknown corpus domain {domain!r}; choose from {', '.join(DOMAINS + ('mixture',))}")
    refs = reference_files() if references is None else list(references)
    dropped: list[dict] = []
    skip = leak_filter(refs, dropped, progress) if drop_leaks else None
    parts = DOMAINS if domain == "mixture" else (domain,)
    clips = []
    for part in parts:
        clips += collect_clips(part, budget_seconds / len(parts), progress=progress, skip=skip, top_up=top_up,
                               soundfont=soundfont)
    try:
        return write_corpus(Path(out), clips, name=Path(out).name, domain=domain, budget=budget_seconds,
                            check=refs, progress=progress, extra={"dropped_for_leakage": dropped} if drop_leaks else None)
    except LeakageError as exc:
        if drop_leaks:
            raise
        raise LeakageError(f"{exc}; without --strict such clips are dropped and listed") from None


def leak_filter(references: Sequence[Path], dropped: list[dict], progress: bool = True):
    """A predicate for :func:`take_budget` that rejects (and records in ``dropped``) clips matching references."""
    hashes, index = reference_index(references, progress=progress)

    def leaks(clip_id: str, waveform: np.ndarray, source: str) -> bool:
        path = Path(source.split(":", 1)[-1])
        reasons = [f"copy of {hashes[h]}" for h in [sha256_file(path) if path.is_file() else None] if h in hashes]
        reasons += [f"contains {label} (bit error rate {ber:.2f})"
                    for label, ber, _ in index.matches(fingerprint(waveform, CORPUS_RATE))]
        if reasons:
            dropped.append({"source": source, "reason": "; ".join(reasons)})
        return bool(reasons)

    return leaks


def collect_clips(domain: str, budget_seconds: float, *, progress: bool = True,
                  skip: Callable[[str, np.ndarray, str], bool] | None = None, top_up: bool = True,
                  soundfont: str | Path | None = None) -> list[tuple[str, np.ndarray, str]]:
    """Decode candidate clips of a domain up to an exact budget: [(clip id, waveform 16 kHz, source)].

    Recordings come first; speech is topped up with espeak-ng and music with soundfont renders when ``top_up``.
    """
    candidates, missing = candidate_clips(domain)
    budget = int(round(budget_seconds * CORPUS_RATE))
    clips = take_budget(_decode(candidates), budget, f"collecting {domain}", progress, skip=skip)
    total = sum(len(c[1]) for c in clips)
    if total < budget and top_up and domain == "speech":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            clips += take_budget(iter(tts_clips((budget - total) / CORPUS_RATE, Path(tmp))), budget - total,
                                 "speech synthesis", progress, skip=skip)
        total = sum(len(c[1]) for c in clips)
    if total < budget and top_up and domain == "music":
        clips += take_budget(render_clips((budget - total) / CORPUS_RATE, soundfont), budget - total,
                             "rendering scores", progress, skip=skip)
        total = sum(len(c[1]) for c in clips)
    if total < budget:
        hint = f"; not installed: {', '.join(missing)} (run `brainlike corpus setup`)" if missing else ""
        if domain in ("speech", "music") and not top_up:
            hint += "; --no-top-up is set"
        raise DataError(f"{domain} sources give {total / CORPUS_RATE:.0f} s, less than the budget of "
                        f"{budget_seconds:.0f} s{hint}")
    return clips


def _decode(candidates: Sequence[tuple[str, Path]]) -> Iterable[tuple[str, np.ndarray, str]]:
    """Decode (package, path) candidates lazily to 16 kHz, skipping silent or unreadable files."""
    for package, path in candidates:
        try:
            waveform, rate = read_audio(path)
        except AudioError:
            continue  # silent or unreadable game asset
        waveform = resample(waveform[: int(MAX_CLIP_SECONDS * rate)], rate, CORPUS_RATE, method="soxr")
        yield _clip_id(package, path), waveform[: int(MAX_CLIP_SECONDS * CORPUS_RATE)], f"{package}:{path}"


def take_budget(clips: Iterable[tuple[str, np.ndarray, str]], budget_samples: int, description: str = "collecting",
                progress: bool = True, skip: Callable[[str, np.ndarray, str], bool] | None = None
                ) -> list[tuple[str, np.ndarray, str]]:
    """Take clips in order until exactly ``budget_samples`` samples (the last clip is cut); fewer if they run out.

    ``skip(clip_id, waveform, source)`` returning True leaves a clip out (checked on the part that would be taken).
    """
    from brainlike.progress import task

    taken, total = [], 0
    with task(description, total=budget_samples, show=progress) as advance:
        for clip_id, waveform, source in clips:
            if total >= budget_samples:
                break
            waveform = waveform[: budget_samples - total]
            if skip is not None and skip(clip_id, waveform, source):
                continue
            taken.append((clip_id, waveform, source))
            total += len(waveform)
            advance(len(waveform))
    return taken


def _clip_id(package: str, path: Path) -> str:
    return f"{package}-{sha256_bytes(str(path))[:12]}"


def write_corpus(out: Path, clips: Sequence[tuple[str, np.ndarray, str]], *, name: str, domain: str,
                 budget: float | None, check: Sequence[Path] | None, progress: bool = True,
                 extra: dict | None = None) -> Path:
    """Write clips, manifest and corpus.json into a temporary folder, run the leakage check, then rename into place."""
    import soundfile as sf

    if out.exists():
        raise DataError(f"{out} already exists; remove it or choose another --out")
    with atomic_folder(out) as tmp:
        (tmp / "audio").mkdir()
        rows, per_source = [], {}
        for clip_id, waveform, source in clips:
            relative = f"audio/{clip_id}.wav"
            sf.write(str(tmp / relative), np.clip(waveform, -1, 1), CORPUS_RATE, subtype="PCM_16")
            seconds = len(waveform) / CORPUS_RATE
            rows.append({"file": relative, "sha256": sha256_file(tmp / relative), "seconds": round(seconds, 6),
                         "domain": domain, "source": source})
            key = source.split(":", 1)[0]
            per_source[key] = round(per_source.get(key, 0.0) + seconds, 3)
        (tmp / "manifest.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        summary = {"name": name, "domain": domain, "sample_rate": CORPUS_RATE, "budget_seconds": budget,
                   "seconds": round(sum(r["seconds"] for r in rows), 6), "n_clips": len(rows),
                   "seconds_per_source": per_source, "manifest_sha256": manifest_sha256(rows), **(extra or {})}
        if check is not None:
            summary["leakage_check"] = check_leakage(tmp, check, progress=progress)
        (tmp / "corpus.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return out


# ------------------------------------------------------------------------------------------------------ fingerprints
FP_RATE = 5512
FP_FRAME = 2048
FP_HOP = 64
FP_BANDS = np.geomspace(300.0, 2000.0, 34)
BER_THRESHOLDS = ((256, 0.35), (86, 0.25), (20, 0.15))
"""(minimum overlap in frames, bit error rate below which it is a match): 0.35 over 3 s as in Haitsma & Kalker 2002;
shorter overlaps (short reference clips) need a lower error rate, since chance matches get likelier."""
MIN_OVERLAP = 86  # frames: 1 s at the 11.6 ms hop
MIN_FRAMES = 20


def fingerprint(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Haitsma-Kalker 32-bit sub-fingerprints (one per 11.6 ms), invariant to gain and robust to resampling.

    Bit m of frame n is the sign of ``(E[n, m] - E[n, m+1]) - (E[n-1, m] - E[n-1, m+1])`` for the energies ``E``
    of 33 log-spaced bands between 300 and 2000 Hz (0.37 s Hann frames of audio resampled to 5512 Hz).

    Returns
    -------
    ndarray, shape (frames - 1,), uint32 (empty for clips shorter than two frames)
    """
    x = resample(np.asarray(waveform, np.float32), sample_rate, FP_RATE, method="soxr")
    if len(x) < FP_FRAME + FP_HOP:
        return np.zeros(0, np.uint32)
    freqs = np.fft.rfftfreq(FP_FRAME, 1 / FP_RATE)
    band_of_bin = np.searchsorted(FP_BANDS, freqs, side="right") - 1  # (n_freq,), -1 / 33 outside
    valid = (band_of_bin >= 0) & (band_of_bin < 33)
    window = np.hanning(FP_FRAME).astype(np.float32)
    n_frames = 1 + (len(x) - FP_FRAME) // FP_HOP
    energies = np.empty((n_frames, 33), np.float64)
    for start in range(0, n_frames, 2048):  # chunks bound the memory of the frame matrix
        idx = np.arange(start, min(n_frames, start + 2048))
        frames = np.lib.stride_tricks.sliding_window_view(x, FP_FRAME)[idx * FP_HOP] * window  # (chunk, frame)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (chunk, n_freq)
        energies[idx] = np.stack([power[:, valid & (band_of_bin == b)].sum(1) for b in range(33)], axis=1)
    band_diff = energies[:, :-1] - energies[:, 1:]  # (frames, 32)
    bits = (band_diff[1:] - band_diff[:-1]) > 0  # (frames - 1, 32)
    return (bits.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(1).astype(np.uint32)


def bit_error_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of differing bits between two equal-length uint32 fingerprint blocks."""
    xor = np.bitwise_xor(a, b)
    return float(np.unpackbits(xor.view(np.uint8)).sum()) / (32 * len(a))


class FingerprintIndex:
    """Lookup of reference fingerprints: exact sub-fingerprint hits propose alignments, bit error rate confirms."""

    def __init__(self, labels: list[str], prints: list[np.ndarray], max_hits: int = 20) -> None:
        self.labels, self.prints = labels, prints
        values = np.concatenate(prints) if prints else np.zeros(0, np.uint32)
        owner = np.repeat(np.arange(len(prints)), [len(p) for p in prints])
        frame = np.concatenate([np.arange(len(p)) for p in prints]) if prints else np.zeros(0, int)
        order = np.argsort(values, kind="stable")
        self.values, self.owner, self.frame = values[order], owner[order], frame[order]
        unique, counts = np.unique(self.values, return_counts=True)
        self.stop = set(unique[counts > max_hits].tolist())  # uninformative (silence-like) values

    def matches(self, query: np.ndarray, max_candidates: int = 20) -> list[tuple[str, float, int]]:
        """[(reference label, bit error rate, overlap frames)] of references that the query contains or overlaps."""
        if len(query) < MIN_FRAMES or len(self.values) == 0:
            return []
        left = np.searchsorted(self.values, query, "left")
        right = np.searchsorted(self.values, query, "right")
        keep = (right > left) & ~np.isin(query, list(self.stop))
        counts = (right - left)[keep]
        q_frame = np.repeat(np.nonzero(keep)[0], counts)  # (hits,) query frame of each hit
        if len(q_frame) == 0:
            return []
        within = np.arange(len(q_frame)) - np.repeat(np.cumsum(counts) - counts, counts)
        hits = np.repeat(left[keep], counts) + within  # (hits,) positions in the sorted reference values
        pairs = np.stack([self.owner[hits], self.frame[hits] - q_frame], axis=1)  # (hits, 2): reference, offset
        candidates, votes = np.unique(pairs, axis=0, return_counts=True)
        found = {}
        for ref, offset in candidates[np.argsort(-votes, kind="stable")[:max_candidates]]:
            result = self._verify(query, int(ref), int(offset))
            if result is not None and (ref not in found or result[0] < found[ref][0]):
                found[ref] = result
        return [(self.labels[r], ber, overlap) for r, (ber, overlap) in sorted(found.items())]

    def _verify(self, query: np.ndarray, ref: int, offset: int) -> tuple[float, int] | None:
        reference = self.prints[ref]
        q_start, r_start = max(0, -offset), max(0, offset)
        overlap = min(len(query) - q_start, len(reference) - r_start)
        q_part, r_part = query[q_start:q_start + overlap], reference[r_start:r_start + overlap]
        # Digital silence fingerprints as all-zero frames on both sides; such frames agree whatever the audio, so
        # they are left out (two unrelated clips with silent tails would otherwise look alike).
        informative = (q_part != 0) | (r_part != 0)
        n = int(np.count_nonzero(informative))
        needed = min(MIN_OVERLAP, int(np.count_nonzero(query)), int(np.count_nonzero(reference)))
        if n < max(needed, MIN_FRAMES):
            return None
        ber = bit_error_rate(q_part[informative], r_part[informative])
        return (ber, n) if ber < max_ber(n) else None


def max_ber(overlap: int) -> float:
    """Bit error rate threshold for an alignment of ``overlap`` frames (0 below ``MIN_FRAMES``)."""
    return next((ber for frames, ber in BER_THRESHOLDS if overlap >= frames), 0.0)


def reference_files(root: Path | None = None) -> list[Path]:
    """Evaluation audio that must not leak into a corpus: the 165 stimuli and every downstream set's audio."""
    root = data_root() if root is None else root
    files = sorted((root / "natsound165" / "stimuli" / "wav").glob("*.wav"))
    downstream = root / "downstream"
    if downstream.is_dir():
        files += sorted(p for p in downstream.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    files += rendered_task_files(set(files))
    if not files:
        raise DataError(f"no evaluation audio under {root} to check leakage against (set BRAINLIKE_DATA)")
    return files


def rendered_task_files(known: set[Path]) -> list[Path]:
    """Task clips outside the data folder (sets rendered into the cache, e.g. nsynth-pitch), when present."""
    from brainlike.downstream.tasks import task_audio_files

    return sorted(p for p in task_audio_files() if p not in known and p.is_file())


def reference_index(files: Sequence[Path], *, progress: bool = True) -> tuple[dict[str, str], FingerprintIndex]:
    """({sha256: reference label}, fingerprint index) of reference files, cached under ``$BRAINLIKE_CACHE/leakage``."""
    from brainlike.progress import task

    hashes = {}
    for path in files:
        hashes.setdefault(sha256_file(path), _label(path))
    key = sha256_bytes("".join(sorted(hashes)) + f"{FP_RATE}/{FP_FRAME}/{FP_HOP}")
    cache = cache_root() / "leakage" / f"reference-{key[:24]}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            lengths, values, labels = data["lengths"], data["values"], [str(s) for s in data["labels"]]
        prints = np.split(values, np.cumsum(lengths)[:-1]) if len(lengths) else []
        return hashes, FingerprintIndex(labels, list(prints))
    labels, prints = [], []
    with task("fingerprinting evaluation audio", total=len(files)) as advance:
        for path in files:
            waveform, rate = read_audio(path, allow_silent=True)
            labels.append(_label(path))
            prints.append(fingerprint(waveform, rate))
            advance()
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cache, lambda handle: np.savez(
        handle, lengths=np.array([len(p) for p in prints]), labels=np.array(labels),
        values=np.concatenate(prints) if prints else np.zeros(0, np.uint32)))
    return hashes, FingerprintIndex(labels, prints)


def _label(path: Path) -> str:
    parts = path.parts
    for anchor in ("natsound165", "downstream"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor):])
    return str(path)


def check_leakage(corpus_dir: str | Path, references: Sequence[Path], *, progress: bool = True) -> dict:
    """Fail loudly (:class:`LeakageError`) if any corpus clip duplicates a reference file or contains its audio.

    Checks the sha256 of every corpus file and of every original source file named in the manifest, then the audio
    fingerprints. Returns a summary (counts, thresholds) recorded in corpus.json.
    """
    from brainlike.progress import task

    corpus_dir = Path(corpus_dir)
    rows = read_manifest(corpus_dir) if (corpus_dir / "manifest.jsonl").is_file() else scan_folder(corpus_dir)
    hashes, index = reference_index(references, progress=progress)
    problems = []
    with task("leakage check", total=len(rows)) as advance:
        for row in rows:
            source_path = Path(row.get("source", "").split(":", 1)[-1])
            source_hash = sha256_file(source_path) if source_path.is_file() else None
            for digest in (row["sha256"], source_hash):
                if digest in hashes:
                    problems.append(f"{row['file']} is a copy of {hashes[digest]} (same sha256)")
            waveform, rate = read_audio(corpus_dir / row["file"], allow_silent=True)
            for label, ber, overlap in index.matches(fingerprint(waveform, rate)):
                problems.append(f"{row['file']} contains {label} (fingerprint bit error rate {ber:.2f} over "
                                f"{overlap * FP_HOP / FP_RATE:.1f} s)")
            advance()
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise LeakageError(f"corpus {corpus_dir.name} leaks evaluation audio: {'; '.join(problems[:3])}{more}")
    return {"references": len(references), "clips": len(rows), "ber_thresholds": BER_THRESHOLDS,
            "min_overlap_seconds": round(MIN_OVERLAP * FP_HOP / FP_RATE, 2), "result": "clean"}
