"""Stand-ins for the hardware, for dry runs and tests without an arm or a camera.

``twin``: the digital twin (a simulated xArm7 and colour camera on the reach world; needs JAX and
MuJoCo). ``calibration_twin``: the calibration bench, a marker on the gripper. ``controller``: the
connection, stop and error state both twins' arms share. ``xarm_sim``: a simulated xArm controller
speaking the SDK's TCP protocol on a loopback address. ``realsense_sim``: a simulated RealSense
colour camera (a pyrealsense2 software device). Each has the interface of the deploy driver it
stands in for and raises the contract's errors (``mjx_reach.contract``); none imports ``deploy``.
"""
