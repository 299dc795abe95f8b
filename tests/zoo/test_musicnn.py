"""musicnn: the TensorBundle reader on checkpoints written here, the front end against librosa, random twins (default
suite); real checkpoints against the package's own TensorFlow outputs and tags of real music clips (zoo)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from brainlike.models.registry import load_model
from brainlike.models.zoo import musicnn, store
from brainlike.models.zoo.musicnn import CHECKPOINTS, MusicnnModel, labels
from brainlike.models.zoo.tensorbundle import CheckpointError, read_index, read_tensorbundle

REFERENCE = Path(__file__).parent / "reference"
STIMULI = Path("/work/shared/data/natsound165/stimuli/wav")
ZOO_ROOT = store.zoo_root()


# ------------------------------------------------------------------ a minimal TensorBundle writer (test side only)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(payload)
    return key + _varint(len(payload)) + payload


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """An SSTable block with prefix-compressed keys and a single restart point."""
    out, previous = bytearray(), b""
    for key, value in entries:
        shared = 0
        while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
            shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    return bytes(out) + struct.pack("<II", 0, 1)


def write_bundle(prefix: Path, tensors: dict[str, np.ndarray], dtypes: dict[type, int], per_block: int = 2) -> None:
    """Write ``prefix.index`` / ``prefix.data-00000-of-00001`` the way TensorFlow lays them out."""
    data, entries = bytearray(), [(b"", _field(1, 0, 1))]  # BundleHeaderProto: num_shards = 1
    for name in sorted(tensors):
        array = np.require(tensors[name], requirements="C")  # keeps 0-d arrays 0-d
        shape = b"".join(_field(2, 2, _field(1, 0, d)) for d in array.shape)
        entry = (_field(1, 0, dtypes[array.dtype.type]) + _field(2, 2, shape) + _field(4, 0, len(data))
                 + _field(5, 0, array.nbytes))
        entries.append((name.encode(), entry))
        data += array.astype(array.dtype.newbyteorder("<")).tobytes()
    index, handles = bytearray(), []
    for start in range(0, len(entries), per_block):
        chunk = entries[start : start + per_block]
        body = _block(chunk)
        handles.append((chunk[-1][0], _varint(len(index)) + _varint(len(body))))
        index += body + b"\x00\x00\x00\x00\x00"  # type 0 (uncompressed) + crc (not checked)
    meta = _block([])
    meta_handle = _varint(len(index)) + _varint(len(meta))
    index += meta + b"\x00" * 5
    top = _block(handles)
    top_handle = _varint(len(index)) + _varint(len(top))
    index += top + b"\x00" * 5
    footer = (meta_handle + top_handle).ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(index) + footer)
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))


def test_tensorbundle_reader_on_a_written_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "conv2d/kernel": rng.standard_normal((7, 38, 1, 4)).astype(np.float32),
        "conv2d/bias": rng.standard_normal(4).astype(np.float32),
        "conv2d_1/kernel": rng.standard_normal((3, 3, 4, 2)).astype(np.float16),
        "global_step": np.array(123456789012, dtype=np.int64),
        "batch_normalization_10/gamma": rng.standard_normal(200).astype(np.float64),
    }
    write_bundle(tmp_path / "model", tensors, {np.float32: 1, np.float16: 19, np.int64: 9, np.float64: 2})
    entries = read_index(tmp_path / "model.index")
    assert sorted(entries) == sorted(tensors)
    assert entries["conv2d/kernel"]["shape"] == [7, 38, 1, 4] and entries["global_step"]["shape"] == []
    loaded = read_tensorbundle(tmp_path / "model.index", tmp_path / "model.data-00000-of-00001")
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded[name], value)
    only = read_tensorbundle(tmp_path / "model.index", tmp_path / "model.data-00000-of-00001", ["conv2d/bias"])
    assert list(only) == ["conv2d/bias"]


def test_tensorbundle_reader_rejects_bad_files(tmp_path):
    write_bundle(tmp_path / "m", {"w": np.zeros(1000, np.float32)}, {np.float32: 1})
    data = tmp_path / "m.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])  # truncated data file
    with pytest.raises(CheckpointError, match="byte range"):
        read_tensorbundle(tmp_path / "m.index", data)
    with pytest.raises(CheckpointError, match="no tensor named"):
        read_tensorbundle(tmp_path / "m.index", data, ["missing"])
    (tmp_path / "bad.index").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="magic"):
        read_index(tmp_path / "bad.index")


def test_log_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    torch = pytest.importorskip("torch")
    x = (0.1 * np.random.default_rng(1).standard_normal(32000)).astype(np.float32)
    ours = musicnn.log_mel(torch.from_numpy(x)[None])[0].numpy()
    mel = librosa.feature.melspectrogram(y=x, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    theirs = np.log10(10000 * mel.astype(np.float16) + 1)
    assert ours.shape == theirs.shape == (126, 96)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)  # float16 rounding of near-tie values


def test_checkpoint_loading_roundtrip(tmp_path):
    """A twin's weights written as a TensorFlow checkpoint (TF layouts) load back into identical outputs."""
    torch = pytest.importorskip("torch")
    twin = load_model("musicnn-mtt@random")
    tensors = {}
    for scope, layer in twin.module.tf.items():
        if isinstance(layer, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            pairs = {"gamma": layer.weight, "beta": layer.bias, "moving_mean": layer.running_mean,
                     "moving_variance": layer.running_var}
        elif isinstance(layer, torch.nn.Conv2d):
            pairs = {"kernel": layer.weight.permute(2, 3, 1, 0), "bias": layer.bias}
        else:
            pairs = {"kernel": layer.weight.T, "bias": layer.bias}
        tensors.update({f"{scope}/{k}": v.detach().numpy().copy() for k, v in pairs.items()})
    tensors["beta1_power"] = np.array(0.9, np.float32)  # optimiser state is ignored
    write_bundle(tmp_path / "model", tensors, {np.float32: 1}, per_block=7)
    loaded = MusicnnModel("musicnn-mtt", tmp_path / "model.data-00000-of-00001")
    clip = (0.1 * np.random.default_rng(2).standard_normal((1, 20000))).astype(np.float32)
    ours, theirs = twin(clip), loaded(clip)
    for layer in twin.layers:
        np.testing.assert_allclose(theirs[layer], ours[layer], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_random_twin_shapes_determinism_batching(name):
    model = load_model(name + "@random")
    assert model.weights_id == "random:0" and model.sample_rate == 16000
    clips = (0.1 * np.random.default_rng(3).standard_normal((2, 32000))).astype(np.float32)
    out = model(clips)
    if "vgg" in name:
        expected = {"pool1": (2, 62, 6144), "pool2": (2, 31, 3072), "pool3": (2, 16, 1536), "pool4": (2, 8, 768),
                    "pool5": (2, 2, 128), "taggram": (2, 1, 50)}
        assert model(np.tile(clips[:1], (1, 3)))["taggram"].shape == (1, 3, 50)  # 6 s -> 3 patches of 187 frames
    else:
        expected = {"timbral": (2, 126, 408), "temporal": (2, 126, 153), "cnn1": (2, 126, 64),
                    "cnn3": (2, 126, 64), "max_pool": (2, 1, 753), "penultimate": (2, 1, 200), "taggram": (2, 1, 50)}
    for layer, shape in expected.items():
        assert out[layer].shape == shape, layer
    assert ((out["taggram"] > 0) & (out["taggram"] < 1)).all()
    single = load_model(name + "@random")(clips[1:])
    for layer in model.layers:
        np.testing.assert_allclose(single[layer][0], out[layer][1], rtol=1e-4, atol=1e-5)


def pretrained(name: str) -> MusicnnModel:
    if not store.is_installed(name, root=ZOO_ROOT):
        pytest.skip(f"{name} not installed (brainlike zoo install {name})")
    return MusicnnModel(name, store.weights_path(name, root=ZOO_ROOT), store.weights_sha256(name, root=ZOO_ROOT))


@pytest.mark.zoo
@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_pretrained_matches_the_package(name):
    """Taggram and features equal musicnn 0.1.0's own (TensorFlow 2.15 + librosa) outputs, recorded by
    reference/make_musicnn_reference.py on a 187-frame clip of two NH2015 stimuli."""
    if not STIMULI.is_dir():
        pytest.skip("NH2015 stimuli not found")
    model = pretrained(name)
    sys.path.insert(0, str(REFERENCE))
    from make_musicnn_reference import FRAME_STEP, clip

    reference = np.load(REFERENCE / "musicnn_reference.npz")
    out = model(clip()[None])
    for key in [k for k in reference.files if k.startswith(name + "/")]:
        layer, expected = key.split("/")[1], reference[key]
        ours = out[layer][0]
        if layer.startswith("pool"):  # brainlike: channel-major (channels x bins); musicnn: (time, bins, channels)
            ours = ours.reshape(ours.shape[0], 128, -1).transpose(0, 2, 1)
        if layer in ("timbral", "temporal", "cnn3"):
            ours = ours[::FRAME_STEP]
        scale = np.abs(expected).max()
        np.testing.assert_allclose(ours.reshape(expected.shape), expected, atol=1e-4 * scale)


TAGS = {  # clip -> tags expected among the top 3 of the clip's taggram
    "musicnn-mtt": {"piano": ["piano", "classical"], "violin": ["violin", "classical"], "techno": ["techno"]},
    "musicnn-vgg-mtt": {"piano": ["piano", "classical"], "violin": ["violin", "classical"], "techno": ["techno"]},
    "musicnn-msd": {"techno": ["electronic", "dance"], "heavy_metal": ["rock"]},
    "musicnn-vgg-msd": {"techno": ["electronic"]},
}


@pytest.mark.zoo
@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_pretrained_tags_real_music(name):
    from brainlike.data.audio import read_audio, resample

    if not STIMULI.is_dir():
        pytest.skip("NH2015 stimuli not found")
    model = pretrained(name)
    for stimulus, expected in TAGS[name].items():
        audio, rate = read_audio(next(STIMULI.glob(f"*_{stimulus}*.wav")))
        taggram = model(resample(audio, rate, 16000)[None])["taggram"][0].mean(0)
        top = [labels(name)[i] for i in np.argsort(-taggram)[:3]]
        print(name, stimulus, top)
        assert set(expected) <= set(top), (stimulus, top)
