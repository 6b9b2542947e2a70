"""The deploy loop's exceptions. Every message is one line that names the cause; the loop stops
the arm's motion before it prints one."""


class DeployError(RuntimeError):
    """Deploy cannot start or go on (bad input, a refused model, a failed guard)."""


class PolicyError(DeployError):
    """The ONNX model or its metadata is unusable, or does not match this bench."""


class CameraError(DeployError):
    """The camera timed out, stopped streaming or delivered an unusable frame."""


class ArmError(DeployError):
    """The arm lost its connection, reported an error or warning code, or refused a command."""


class SafetyError(DeployError):
    """A safety check refused a limit, a policy output or a target."""
