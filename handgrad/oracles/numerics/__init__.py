"""The numerical helpers of the oracles: finite differences along coordinates (``fd``) and along a
line (``line_fd``), the Taylor-remainder fits (``taylor``), kink detection (``kinks``), and the
hand and reference linearisations (JVP, HVP) on a case (``linear_hand``, ``linear_reference``).

May import the records and cases only; the oracles import these, never the other way round.
"""
