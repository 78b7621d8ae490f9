"""Pages written from scratch in other people's notations, checked as a new user would: a
student's two-layer network with column vectors, ``W^{[1]}`` and ``\\delta^{(2)}``
(``two_layer.md``, right; ``two_layer_wrong.md``, a first attempt with three mistakes), the
student's NumPy code (``two_layer.py``) and an independent PyTorch reference."""
