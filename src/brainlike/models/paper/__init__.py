"""The models of Pepino et al. (2025) and Tuckute et al. (2023), written in this project.

One module per family (``encodecmae``, ``beats``, ``dasheng``, ``vggish``, ``cochnets``), each registering
``FAMILY:<checkpoint path or hub id>`` and ``FAMILY@random`` plus its sizes; see docs/models-paper.md.
"""

__all__ = ["beats", "cochnets", "dasheng", "encodecmae", "vggish"]
