"""The spectrotemporal baseline and its cochleagram front end against spectrotemporal.md (shared reference).

Known answers: the verification table of section 4 (reference output of the published code for three NH2015 sounds),
the self-checks of section 4, the synthetic-ripple direction check of pitfall 8, the numbers of sections 2.1 / 2.4,
and the full complex fft2 / ifft2 route of section 3.6 as the reference for the faster routes.
"""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.config import data_root
from brainlike.errors import AudioError, ModelError
from brainlike.models import cochleagram as coch
from brainlike.models import spectrotemporal as st
from brainlike.models.registry import load_model

SOUNDS = ["stim5_alarm_clock", "stim38_boy_speaking", "stim268_piano"]

# Section 4 of spectrotemporal.md, one tuple per sound (same order as SOUNDS).
TABLE = {
    "filter0": (2.01949, 2.93685, 3.30993),
    "mean": (0.216270, 0.274469, 0.196091),
    "max": (7.8628, 6.39454, 8.37224),
    "mean_G55": (0.0098194, 0.00686691, 0.0181747),
    "mean_G110": (0.0460425, 0.0338391, 0.0389401),
    "G9_100": (0.110338, 0.00626824, 0.0383692),
    "G63_100": (0.0339614, 0.0261076, 0.0213358),
    "G55_100": (0.000555539, 0.00360414, 0.00460365),
    "G110_100": (0.0183099, 0.0480173, 0.065321),
    "coch_ch0": (0.0465662, 0.0731161, 0.104735),
    "coch_ch100": (0.0688809, 0.105543, 0.12999),
    "coch_ch210": (0.0136873, 0.0504614, 0.0135092),
    "coch_mean": (0.0852655, 0.102823, 0.109159),
}
ARGMAX = (5814, 6174, 1931)


def _spec_tolerance(value: float) -> float:
    """Section 4: float64 vs the float32 reference, max relative error 1.1e-3 above 1e-3, 5.7e-3 above 1e-6."""
    return 1.1e-3 if abs(value) > 1e-3 else 5.7e-3


def _load_reference_input(name: str) -> np.ndarray:
    """Steps 1.1-1.3: scipy wavfile, int16 -> float32 unscaled, first 88200 samples, resample_poly(20000, 44100)."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    path = data_root() / "natsound165" / "stimuli" / "wav" / f"{name}.wav"
    if not path.exists():
        pytest.skip(f"NH2015 stimuli not found under BRAINLIKE_DATA ({path})")
    rate, samples = wavfile.read(path)
    assert rate == 44100
    x = samples.astype(np.float32)
    x = x.mean(axis=1, dtype=np.float32) if x.ndim == 2 else x
    return resample_poly(x[:88200], 20000, 44100)


@pytest.fixture(scope="module")
def reference_run() -> dict[str, np.ndarray]:
    waveforms = np.stack([_load_reference_input(name) for name in SOUNDS])
    prepared = st.prepare_waveforms(waveforms)
    cochleagrams = coch.cochleagram(prepared)
    model = load_model("spectrotemporal")
    features = model(waveforms)["avgpool"][:, 0, :]  # float32, as a user gets them
    return {"waveforms": waveforms, "cochleagrams": cochleagrams, "v": features,
            "G": st.spectrotemporal_features(cochleagrams)}


# ---------------------------------------------------------------- section 4: the verification table


@pytest.mark.parametrize("quantity", sorted(TABLE))
def test_verification_table(reference_run: dict[str, np.ndarray], quantity: str) -> None:
    v, G, c = reference_run["v"].astype(np.float64), reference_run["G"], reference_run["cochleagrams"]
    mine = {
        "filter0": v[:, 0:5].mean(axis=1), "mean": v.mean(axis=1), "max": v.max(axis=1),
        "mean_G55": G[:, 55].mean(axis=1), "mean_G110": G[:, 110].mean(axis=1),
        "G9_100": G[:, 9, 100], "G63_100": G[:, 63, 100],
        "G55_100": G[:, 55, 100], "G110_100": G[:, 110, 100],
        "coch_ch0": c[:, 0].mean(axis=1), "coch_ch100": c[:, 100].mean(axis=1),
        "coch_ch210": c[:, 210].mean(axis=1), "coch_mean": c.mean(axis=(1, 2)),
    }[quantity]
    for got, want in zip(mine, TABLE[quantity]):
        assert got == pytest.approx(want, rel=_spec_tolerance(want)), quantity


def test_table_indices_and_layout(reference_run: dict[str, np.ndarray]) -> None:
    v, G = reference_run["v"], reference_run["G"]
    assert v.shape == (3, 23421) and v.dtype == np.float32
    assert tuple(np.argmax(v, axis=1)) == ARGMAX
    # the table's flat indices: v[1,999] is G[9,100] (211 * 9 + 100 = 1999), v[23,310] is G[110,100]
    np.testing.assert_allclose(v[:, 1999], G[:, 9, 100], rtol=1e-6)
    np.testing.assert_allclose(v[:, 13393], G[:, 63, 100], rtol=1e-6)
    np.testing.assert_allclose(v[:, 11705], G[:, 55, 100], rtol=1e-6)
    np.testing.assert_allclose(v[:, 23310], G[:, 110, 100], rtol=1e-6)
    np.testing.assert_allclose(v.reshape(3, 111, 211), G, rtol=1e-6, atol=1e-12)  # filter-major ravel


def test_table_agreement_is_tight(reference_run: dict[str, np.ndarray]) -> None:
    """Beyond the spec's worst case: the six-digit table values are met to ~1e-5 relative."""
    v, G = reference_run["v"].astype(np.float64), reference_run["G"]
    np.testing.assert_allclose(v.mean(axis=1), TABLE["mean"], rtol=2e-5)
    np.testing.assert_allclose(G[:, 110].mean(axis=1), TABLE["mean_G110"], rtol=2e-5)
    np.testing.assert_allclose(G[:, 63, 100], TABLE["G63_100"], rtol=2e-5)


def test_self_checks(reference_run: dict[str, np.ndarray]) -> None:
    G, c = reference_run["G"], reference_run["cochleagrams"]
    expected = (100 * c.mean(axis=(1, 2)) * 211 * 390 / (422 * 1170)) ** 2
    np.testing.assert_allclose(G[:, 0, :], np.repeat(expected[:, None], 211, axis=1), rtol=1e-12)
    np.testing.assert_allclose(G[:, 1:9, :], np.repeat(G[:, 1:9, :1], 211, axis=2), rtol=1e-10)
    assert np.all(G >= st.OUTPUT_FLOOR)
    # pitfall 1: floor values occur only in the rate-0, scale > 0 filters
    floored = np.argwhere(G <= st.OUTPUT_FLOOR * (1 + 1e-9))
    assert set(floored[:, 1]) <= {9, 18, 27, 36, 45, 54}


# ---------------------------------------------------------------- routes


def test_routes_agree_with_full_complex_fft(reference_run: dict[str, np.ndarray]) -> None:
    """Section 3.6 (full complex fft2/ifft2) is the reference; the half-plane routes match it to <= 1e-9."""
    c = reference_run["cochleagrams"][:1]
    full = st.spectrotemporal_features(c, route="fft2")
    for route in ("rfft2", "factorised"):
        other = st.spectrotemporal_features(c, route=route)
        assert np.max(np.abs(other - full) / full) <= 1e-9, route


def test_torch_fft_path_equals_pocketfft_path(reference_run: dict[str, np.ndarray],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU tensors use scipy/numpy FFTs; other devices use torch.fft: the two paths agree (checked here on CPU)."""
    prepared = st.prepare_waveforms(reference_run["waveforms"][1:2])
    fast = st.clip_features(prepared[0])
    monkeypatch.setattr(coch, "POCKETFFT_ON_CPU", False)
    slow_coch = coch.cochleagram(prepared)
    slow = st.clip_features(prepared[0])
    np.testing.assert_allclose(slow_coch, reference_run["cochleagrams"][1:2], rtol=1e-10)
    assert np.max(np.abs(slow - fast) / fast) <= 1e-9


def test_unknown_route_is_rejected() -> None:
    with pytest.raises(ModelError, match="route"):
        st.spectrotemporal_features(np.zeros((1, 211, 390)), route="fft3")
    with pytest.raises(ModelError, match="211, 390"):
        st.spectrotemporal_features(np.zeros((1, 210, 390)))


# ---------------------------------------------------------------- filters (sections 3.2-3.5)


def test_filter_order_and_labels() -> None:
    specs = st.filter_specs()
    assert len(specs) == st.N_FILTERS == 111
    labels = {k: specs[k].label for k in (0, 1, 8, 9, 54, 55, 62, 63, 110)}
    assert labels == {0: (0.0, 0.0), 1: (-0.5, 0.0), 8: (-64.0, 0.0), 9: (0.0, 0.0625), 54: (0.0, 2.0),
                      55: (-0.5, 2.0), 62: (-64.0, 2.0), 63: (0.5, 0.0625), 110: (64.0, 2.0)}
    assert len({s.label for s in specs}) == 111


def test_transfer_functions_are_hermitian_and_peak_at_one() -> None:
    for spec in st.filter_specs():
        h = st.transfer_function(spec)
        mirror = np.conj(h[(-np.arange(422)) % 422][:, (-np.arange(1170)) % 1170])
        np.testing.assert_allclose(h, mirror, atol=1e-12, err_msg=str(spec))
    for rate in st.RATES:
        assert np.abs(st.temporal_transfer(rate)).max() == pytest.approx(1.0)
    for scale in st.SCALES:
        assert st.spectral_transfer(scale).max() == pytest.approx(1.0)


def test_high_pass_fills() -> None:
    """Section 3.2: only 64 Hz is filled with 1 from the positive-half peak p up to (excluding) the negative-half peak
    q; section 3.3: only scale 2 is filled from its peak through index 211."""
    tau = np.arange(390) / 200 * 64.0
    impulse = np.sin(2 * np.pi * tau) * tau**2 * np.exp(-3.5 * tau)
    magnitude = np.abs(np.fft.fft(impulse - impulse.mean(), 1170))
    magnitude /= magnitude.max()
    p, q = int(np.argmax(magnitude[:586])), 586 + int(np.argmax(magnitude[586:]))
    a64 = np.abs(st.temporal_transfer(64.0))
    assert p < 585 < q
    np.testing.assert_allclose(a64[p:q], 1.0, rtol=1e-15)
    np.testing.assert_allclose(a64[:p], magnitude[:p], atol=1e-14)
    np.testing.assert_allclose(a64[q:], magnitude[q:], atol=1e-14)
    assert np.abs(st.temporal_transfer(32.0))[585] < 0.5  # band-pass rates get no fill
    s2 = st.spectral_transfer(2.0)
    assert np.all(s2[int(np.argmax(s2)):212] == 1.0) and s2[0] == 0.0
    assert st.spectral_transfer(0.5)[211] < 1e-6


def test_quadrant_keep_never_drops_dc_or_nyquist() -> None:
    for direction in (-1, +1):
        keep = st.quadrant_keep(direction)
        assert keep[0].all() and keep[:, 0].all() and keep[211].all() and keep[:, 585].all()
        assert keep.mean() == pytest.approx(0.5, abs=0.01)
    assert not np.any(st.quadrant_keep(-1)[1:211, 1:585] & st.quadrant_keep(+1)[1:211, 1:585])


def test_direction_on_synthetic_ripple() -> None:
    """Pitfall 8: 0.01 cos(2 pi (4 t / 200 + 0.25 ch / 6)) moves down in frequency; (+4 Hz, 0.25) gives 0.41 and
    (-4 Hz, 0.25) gives 5e-4; the mirror ripple (moving up) swaps them."""
    ch, t = np.arange(211)[:, None], np.arange(390)[None, :]
    down = 0.01 * np.cos(2 * np.pi * (4 * t / 200 + 0.25 * ch / 6))
    up = 0.01 * np.cos(2 * np.pi * (4 * t / 200 - 0.25 * ch / 6))
    features = st.spectrotemporal_features(np.stack([down, up]))
    index = {s.label: s.index for s in st.filter_specs()}
    plus, minus = index[(4.0, 0.25)], index[(-4.0, 0.25)]
    assert features[0, plus].mean() == pytest.approx(0.41, abs=0.005)
    assert features[0, minus].mean() == pytest.approx(5e-4, abs=0.5e-4)
    assert features[1, minus].mean() == pytest.approx(0.41, abs=0.005)
    assert features[1, plus].mean() == pytest.approx(5e-4, rel=0.2)


# ---------------------------------------------------------------- cochleagram (section 2)


def test_erb_grid_numbers() -> None:
    assert coch.hz_to_erb(50.0) == pytest.approx(1.8308637, abs=1e-7)
    assert coch.hz_to_erb(10000.0) == pytest.approx(35.2062578, abs=1e-7)
    f = np.array([0.0, 50.0, 1234.5, 10000.0])
    np.testing.assert_allclose(coch.erb_to_hz(coch.hz_to_erb(f)), f, rtol=1e-13, atol=1e-10)
    bank = coch.erb_filterbank()
    assert bank.filters.shape == (211, 20001)
    assert bank.centers_hz[4] == pytest.approx(54.97, abs=0.005)
    assert bank.centers_hz[206] == pytest.approx(9820.96, abs=0.005)
    assert np.all(np.diff(bank.centers_hz[4:207]) > 0)  # band-pass centres ascend


def test_filterbank_shape_rules() -> None:
    bank = coch.erb_filterbank()
    filters, hz = bank.filters, bank.bin_hz
    np.testing.assert_array_equal(filters[:4, 0], 0.5)  # low-pass DC
    assert np.all(filters[4:, 0] == 0.0)
    assert filters.max() == pytest.approx(0.5) and filters.min() == 0.0
    # band-pass channel i + 4 is cos(pi (e - c) / (8 delta)) / 2 inside |e - c| < 4 delta
    delta = (coch.hz_to_erb(10000.0) - coch.hz_to_erb(50.0)) / 204
    assert delta == pytest.approx(0.16360487, abs=1e-8)
    e, c = coch.hz_to_erb(hz), coch.hz_to_erb(bank.centers_hz[100])
    inside = np.abs(e - c) < 4 * delta
    np.testing.assert_allclose(filters[100, inside], np.cos(np.pi * (e[inside] - c) / (8 * delta)) / 2, rtol=1e-12)
    assert np.all(filters[100, ~inside] == 0.0)
    # low-pass channel 0 stops below f(c_0); high-pass channel 210 starts above f(c_202)
    assert np.all(filters[0, hz >= bank.centers_hz[0]] == 0.0)
    assert np.all(filters[210, hz <= bank.centers_hz[210]] == 0.0) and filters[210, -1] > 0.0
    assert not bank.filters.flags.writeable


def test_downsample_kernel_and_polyphase() -> None:
    import torch

    g = coch.downsample_kernel()
    assert g.shape == (1001,) and g.sum() == pytest.approx(1.00094, abs=1e-5)
    assert np.argmax(g) in (500, 501) and g[0] != g[-1]  # half-sample offset: slightly asymmetric
    rng = np.random.default_rng(0)
    env = rng.random((2, 40000))
    direct = np.stack([[g @ row[100 * m: 100 * m + 1001] for m in range(390)] for row in env])  # correlation
    _, polyphase = coch._torch_constants(40000, 20000, torch.float64, "cpu")
    fast = coch._downsample(torch.from_numpy(env), polyphase).numpy()
    np.testing.assert_allclose(fast, direct, rtol=1e-12, atol=1e-14)
    assert coch.n_frames() == 390


def test_cochleagram_matches_a_literal_numpy_transcription() -> None:
    """Section 2.3-2.5 written out in plain numpy (one channel at a time) on a short noise burst."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4000)
    x[:1000] *= 1e-3  # a quiet stretch: envelopes near the floor
    bank = coch.erb_filterbank(4000).filters
    g = coch.downsample_kernel()
    spectrum = np.fft.rfft(x)
    frames = coch.n_frames(4000)
    assert frames == 30
    expected = np.empty((211, frames))
    for ch in range(211):
        two_sided = np.concatenate([spectrum * bank[ch], np.zeros(4000 - 2001)])
        a = np.fft.ifft(two_sided)
        env = np.sqrt(np.maximum(a.real**2 + a.imag**2, 1e-16))
        d = np.array([g @ env[100 * m: 100 * m + 1001] for m in range(frames)])
        expected[ch] = (np.maximum(d, 0) + 1e-8) ** 0.3
    got = coch.cochleagram(x)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_cochleagram_bad_input() -> None:
    with pytest.raises(AudioError, match="20000 Hz"):
        coch.cochleagram(np.zeros(40000), sample_rate=16000)
    with pytest.raises(AudioError, match="at least 1001"):
        coch.cochleagram(np.zeros(500))
    with pytest.raises(AudioError, match="batch, samples"):
        coch.cochleagram(np.zeros((1, 2, 40000)))


# ---------------------------------------------------------------- the model (protocol, steps 1.4 and cropping)


def test_model_protocol() -> None:
    model = load_model("spectrotemporal")
    assert model.layers == ["avgpool"] and model.sample_rate == 20000 and model.weights_id == "none"
    from brainlike.models.registry import MODELS, parse_spec

    assert MODELS["spectrotemporal"].has_random_twin is False
    with pytest.raises(Exception, match="random"):
        parse_spec("spectrotemporal@random")


def test_crop_pad_level_and_batch_independence(reference_run: dict[str, np.ndarray]) -> None:
    model = load_model("spectrotemporal")
    x = reference_run["waveforms"][0]
    rng = np.random.default_rng(2)
    longer = np.concatenate([x * 8.0, rng.standard_normal(10000).astype(np.float32)])  # level is irrelevant
    out = model(np.stack([longer]))["avgpool"][0, 0]
    np.testing.assert_allclose(out, reference_run["v"][0], rtol=1e-6, atol=1e-9)
    # shorter clips: normalised over their own samples, then zero-padded to 2 s
    short = x[:30000]
    prepared = st.prepare_waveforms(short[None])[0]
    assert np.all(prepared[30000:] == 0.0)
    assert np.sqrt(np.mean(prepared[:30000].astype(np.float64) ** 2)) == pytest.approx(0.1, rel=1e-6)
    assert abs(prepared[:30000].astype(np.float64).mean()) < 1e-8
    silent = st.prepare_waveforms(np.zeros((1, 40000), dtype=np.float32))
    assert np.all(silent == 0.0)
    with pytest.raises(AudioError, match="empty"):
        st.prepare_waveforms(np.zeros((1, 0), dtype=np.float32))
