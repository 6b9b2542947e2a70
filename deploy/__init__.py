"""Run an exported mjx-reach policy (``actor.onnx``) on the real xArm7, or on its digital twin.

Numpy + onnxruntime + the xArm SDK + pyrealsense2 only: nothing here imports JAX, MuJoCo, Flax or
an ``mjx_reach`` module other than the numpy-only camera model (``mjx_reach.camera``) and the deploy
contract (``mjx_reach.contract``: metadata key, schema, names, tolerances, error types). The twin
(``--twin``) is the one exception, imported lazily from ``mjx_reach.standins.twin``.

Modules: ``policy`` (onnxruntime session, parsed metadata), ``bench`` (the bench file and the
model-vs-bench check), ``safety`` (box/step limits, the view and drift guards), ``arm`` (xArm SDK
edge: the only place with millimetres and degrees), ``camera`` (RealSense), ``loop`` (episodes and
their logs); ``python -m deploy --help``.
"""
