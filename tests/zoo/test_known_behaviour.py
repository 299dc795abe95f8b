"""Known behaviour of the real zoo weights (need `brainlike zoo install ...` and espeak-ng): the weights are real.

Run with ``python -m pytest -m zoo tests/zoo``.
"""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.data.audio import resample
from brainlike.models.registry import load_model

pytestmark = pytest.mark.zoo


@pytest.mark.parametrize("name", ["whisper-tiny.en", "whisper-base"])
def test_whisper_decodes_the_espeak_sentence(real_zoo, speech_clip, name):
    from brainlike.models.zoo import whisper

    real_zoo(name)
    text = whisper.transcribe(name, speech_clip)
    words = text.lower().strip(" .").split()
    # espeak's "jumps" is heard as "jump" by both models (as in zoo-architectures.md); every other word must match
    expected = "the quick brown fox jump over the lazy dog".split()
    assert len(words) == len(expected), text
    assert sum(w.startswith(e) for w, e in zip(words, expected)) >= 8, text
    assert words[3] == "fox" and words[-1] == "dog", text


@pytest.mark.parametrize("name,d,blocks", [("whisper-tiny.en", 384, 4), ("whisper-base", 512, 6)])
def test_whisper_pretrained_layers(real_zoo, tone, name, d, blocks):
    from brainlike.models.zoo import store

    real_zoo(name)
    model = load_model(name)
    assert model.weights_id == store.weights_sha256(name)
    out = model(tone[None])
    assert out["conv1"].shape == (1, 200, d) and out[f"blocks.{blocks - 1}"].shape == (1, 100, d)
    twin = load_model(name + "@random")(tone[None])
    assert np.abs(out["ln_post"] - twin["ln_post"]).mean() > 0.1


def test_yamnet_top_class_is_speech(real_zoo, speech_clip, tone):
    from brainlike.models.zoo import yamnet

    real_zoo("yamnet")
    names = yamnet.class_names()
    assert len(names) == 521 and names[0] == "Speech"
    model = load_model("yamnet")
    speech = model(speech_clip[None])["logits"][0].mean(0)
    assert names[int(speech.argmax())] == "Speech" and speech[0] > 2.0
    beep = model(tone[None])["logits"][0].mean(0)
    assert names[int(beep.argmax())] != "Speech" and beep[0] < speech[0] - 3.0


def test_yamnet_float_network_is_the_same_architecture(real_zoo, speech_clip):
    """The float torch MobileNet (the twin's architecture) with the export's BN-folded float weights agrees with
    the quantised ONNX graph up to quantisation noise, and also says "Speech"."""
    import torch

    from brainlike.models.zoo import store, yamnet

    real_zoo("yamnet")
    onnx_model = yamnet.load_onnx_model(store.weights_path("yamnet"))
    net = yamnet.build_torch_mobilenet()
    net.load_state_dict(yamnet.torch_state_from_onnx(onnx_model))
    patches = yamnet.log_mel_patches(speech_clip)
    with torch.inference_mode():
        ours = {k: v.numpy() for k, v in net.eval()(torch.from_numpy(patches[:, None])).items()}
    theirs = load_model("yamnet")._run_onnx(patches)
    assert np.corrcoef(ours["layer1"].ravel(), theirs["layer1"].ravel())[0, 1] > 0.999
    assert np.corrcoef(ours["embedding"].ravel(), theirs["embedding"].ravel())[0, 1] > 0.8
    assert int(ours["logits"].mean(0).argmax()) == 0


def test_basic_pitch_gives_midi_69_on_a_440_hz_tone(real_zoo, tone):
    real_zoo("basic-pitch")
    model = load_model("basic-pitch")
    out = model(resample(tone, 16000, 22050)[None])
    assert out["note"].shape == (1, 173, 88) and out["note_hidden"].shape == (1, 173, 32 * 88)
    midi = out["note"][0].argmax(-1) + 21
    assert np.all(midi == 69)
    contour_bin = int(out["contour"][0].mean(0).argmax())
    assert abs(27.5 * 2 ** ((contour_bin - 1) / 36) - 440) / 440 < 0.02


def test_basic_pitch_twin_keeps_the_cqt_and_redraws_the_rest(real_zoo, tone):
    real_zoo("basic-pitch")
    clip = resample(tone, 16000, 22050)[None]
    trained, twin = load_model("basic-pitch")(clip), load_model("basic-pitch@random")(clip)
    np.testing.assert_allclose(twin["log_cqt"], trained["log_cqt"], atol=1e-6)  # fixed front end
    assert np.abs(twin["note"] - trained["note"]).max() > 0.1
    assert not np.all(twin["note"][0].argmax(-1) + 21 == 69)
    np.testing.assert_array_equal(load_model("basic-pitch@random")(clip)["onset"], twin["onset"])


def test_silero_vad_speech_and_tone(real_zoo, speech_clip, tone):
    from brainlike.models.zoo import silero_vad, store
    from safetensors.numpy import load_file

    real_zoo("silero-vad")
    model = load_model("silero-vad")
    speech, beep = model.speech_probability(speech_clip), model.speech_probability(tone)
    assert speech.mean() > 0.5 and (speech > 0.5).mean() > 0.7
    assert beep.max() < 0.1
    stored = load_file(str(store.weights_path("silero-vad")))["stft_conv.weight"]
    np.testing.assert_allclose(stored, silero_vad.dft_basis(), atol=1e-6)
