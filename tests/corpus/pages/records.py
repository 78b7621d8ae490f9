"""The student's records, as a student keeps them beside their page: ``handgrad check
--path tests/corpus/pages/records.py``, ``handgrad page tests/corpus/pages/two_layer.md --path
tests/corpus/pages/records.py``."""

from tests.corpus.pages import two_layer

RECORDS = [
    two_layer.record("two-layer", "two_layer.md"),
    two_layer.record("two-layer-first-attempt", "two_layer_wrong.md"),
    two_layer.record("two-layer-code-slip", "two_layer.md",
                     backward=two_layer.backward_sigma_for_prime),
]
