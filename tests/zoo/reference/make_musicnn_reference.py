"""Record musicnn 0.1.0's own outputs for tests/zoo/test_musicnn.py (run once, in a throwaway environment).

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 librosa==0.11.0 soundfile
    /tmp/tfenv/bin/pip install --no-deps --target /tmp/ref_mn musicnn==0.1.0
    python tests/zoo/reference/make_musicnn_reference.py write-audio /tmp     # in brainlike's environment
    /tmp/tfenv/bin/python tests/zoo/reference/make_musicnn_reference.py reference /tmp

The clip is 2.976 s at 16 kHz (47,616 samples = exactly one 187-frame patch, so the package drops nothing): the
NH2015 piano stimulus followed by the violin stimulus. Saved: the taggram and some features of each checkpoint.
"""

import sys
from pathlib import Path

import numpy as np

CHECKPOINTS = {"musicnn-mtt": "MTT_musicnn", "musicnn-msd": "MSD_musicnn", "musicnn-vgg-mtt": "MTT_vgg",
               "musicnn-vgg-msd": "MSD_vgg"}
STIMULI = Path("/work/shared/data/natsound165/stimuli/wav")
N_SAMPLES = 47616
FRAME_STEP = 6
"""Frame-level features are kept every 6th frame (file size)."""
KEPT = {"musicnn": ["timbral", "temporal", "cnn3", "max_pool", "penultimate"], "vgg": ["pool3", "pool5"]}


def clip(stimuli: Path = STIMULI) -> np.ndarray:
    """Piano then violin stimulus at 16 kHz, cut to 47,616 samples (brainlike's reader and resampler)."""
    from brainlike.data.audio import read_audio, resample

    parts = []
    for name in ("stim268_piano.wav", "stim394_violin.wav"):
        audio, rate = read_audio(stimuli / name)
        parts.append(resample(audio, rate, 16000))
    return np.concatenate(parts)[:N_SAMPLES].astype(np.float32)


if __name__ == "__main__":
    mode, folder = sys.argv[1], sys.argv[2]
    if mode == "write-audio":
        import soundfile as sf

        sf.write(f"{folder}/piano_violin.wav", clip(), 16000, subtype="FLOAT")
    else:
        sys.path.insert(0, "/tmp/ref_mn")
        from musicnn.extractor import extractor

        result = {}
        for ours, theirs in CHECKPOINTS.items():
            taggram, _, features = extractor(f"{folder}/piano_violin.wav", model=theirs, input_length=3)
            result[f"{ours}/taggram"] = taggram
            for key in KEPT["vgg" if "vgg" in ours else "musicnn"]:
                value = features[key]
                result[f"{ours}/{key}"] = value[::FRAME_STEP] if key in ("timbral", "temporal", "cnn3") else value
        np.savez_compressed(__file__.replace("make_musicnn_reference.py", "musicnn_reference.npz"), **result)
