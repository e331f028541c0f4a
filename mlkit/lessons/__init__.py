"""The lessons' UI: ipywidgets dashboards, matplotlib figures, and the NumPy maths written by hand.

One module per group of lessons: :mod:`~mlkit.lessons.training` (00, 05-07),
:mod:`~mlkit.lessons.explorers` (02-04, with :mod:`~mlkit.lessons.byhand`),
:mod:`~mlkit.lessons.inference` (08-11), :mod:`~mlkit.lessons.vision` (14) and
:mod:`~mlkit.lessons.text` (15); :mod:`~mlkit.lessons.widgets` and
:mod:`~mlkit.lessons.plots` are what they are built from. Nothing outside this
package imports it, so a script or a server never loads ipywidgets or matplotlib.
"""
