"""Record tempocnn 0.0.8's own outputs for tests/zoo/test_tempocnn.py (run once, in a throwaway environment).

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 librosa==0.11.0 audioread soundfile
    /tmp/tfenv/bin/pip install --no-deps --target /tmp/ref_tc tempocnn==0.0.8
    python tests/zoo/reference/make_tempocnn_reference.py write-audio /tmp     # in brainlike's environment
    /tmp/tfenv/bin/python tests/zoo/reference/make_tempocnn_reference.py reference /tmp

The package's feature code (librosa) and Keras models give the 256-way tempo softmax of each kept network for a
120 BPM click track (11.8 s) and 2 s of white noise, written as 11,025 Hz float WAV files.
"""

import sys

import numpy as np

NETWORKS = {"tempocnn-cnn": "cnn", "tempocnn-fcn": "fcn", "tempocnn-deeptemp": "deeptemp_k8",
            "tempocnn-deepsquare": "deepsquare_k8", "tempocnn-shallowtemp": "shallowtemp_k6",
            "tempocnn-mazurka": "dt_maz_v_fold0"}
RATE = 11025


def click_track(bpm: float, seconds: float = 11.8, rate: int = RATE) -> np.ndarray:
    """1 kHz blips (5 ms decay, 30 ms long) at ``bpm``, float32."""
    audio = np.zeros(int(seconds * rate), np.float32)
    t = np.arange(int(0.03 * rate)) / rate
    blip = (np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.005)).astype(np.float32)
    for onset in np.arange(0, seconds, 60 / bpm):
        i = int(onset * rate)
        audio[i : i + len(blip)] += blip[: len(audio) - i]
    return audio


def noise() -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(2 * RATE)).astype(np.float32)


if __name__ == "__main__":
    mode, folder = sys.argv[1], sys.argv[2]
    if mode == "write-audio":
        import soundfile as sf

        sf.write(f"{folder}/click120.wav", click_track(120), RATE, subtype="FLOAT")
        sf.write(f"{folder}/noise2s.wav", noise(), RATE, subtype="FLOAT")
    else:
        sys.path.insert(0, "/tmp/ref_tc")
        from tempocnn.classifier import TempoClassifier
        from tempocnn.feature import read_features

        result = {}
        for clip in ("click120", "noise2s"):
            for ours, theirs in NETWORKS.items():
                classifier = TempoClassifier(theirs)
                features = read_features(f"{folder}/{clip}.wav")
                result[f"{clip}/{ours}"] = classifier.estimate(features.copy())[0]
                result[f"{clip}/{ours}/bpm"] = classifier.estimate_tempo(features.copy())
        np.savez_compressed(__file__.replace("make_tempocnn_reference.py", "tempocnn_reference.npz"), **result)
