"""Run an exported mjx-reach policy (``actor.onnx``) on the real xArm7, or on its digital twin.

Numpy + onnxruntime + the xArm SDK + pyrealsense2 only: nothing here imports JAX, MuJoCo, Flax or
an ``mjx_reach`` module other than the numpy-only camera model (``mjx_reach.camera``). The twin
(``--twin``) is the one exception, imported lazily from ``mjx_reach.twin``.

Modules: ``policy`` (onnxruntime session, metadata contract), ``safety`` (box/step limits, the view
and drift guards), ``arm`` (xArm SDK edge: the only place with millimetres and degrees),
``camera`` (RealSense), ``loop`` (episodes and their logs), ``errors``; ``python -m deploy --help``.
"""
