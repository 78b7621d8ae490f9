"""The grader: a class of submissions checked against the staff's records, each submission's code
in a process of its own that sees only its own copy.

``grader``      the run: staff records loaded once, one contained process per submission, the rows
``staff``       the staff's files read and loaded once, before any submission; their fingerprints
``bubblewrap``  the OS sandbox each submission's process starts in (``bwrap``)
``sandbox``     the submission's side, started as a script (standard library and NumPy only)
``remote``      the channel to it: requests, answers unpickled with an allow-list, the caps
``proxies``     the submission's modules made to look local to the staff's records
``formats``     scores and the output formats (table, JSON, CSV, Gradescope, HTML pages)
``cli``         ``handgrad grade``

May import the records and cases, the oracles, the checking and the views; nothing below it
imports the grader.
"""

from handgrad.grade.grader import Graded, Options, grade, grade_one, load_points, undumpable

__all__ = ["Graded", "Options", "grade", "grade_one", "load_points", "undumpable"]
