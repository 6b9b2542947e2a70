"""The controller state every simulated arm shares: connected or not, stopped, an injected error."""

from __future__ import annotations

from mjx_reach.contract import ArmError


class SimulatedController:
    """Connection, stop and error state with the semantics of ``deploy.arm.XArm``: ``check`` raises
    ``ArmError`` when not connected, when stopped, or when ``error`` is set (a message: a test makes
    the controller report an error by setting it, as ``XArm`` raises for an SDK error code).
    ``name`` starts every message."""

    name = "simulated arm"

    def __init__(self) -> None:
        self.connected = False
        self.stopped = False
        self.error: str | None = None

    def connect(self) -> None:
        self.connected, self.stopped, self.error = True, False, None

    def check(self) -> None:
        if not self.connected:
            raise ArmError(f"{self.name}: not connected")
        if self.error is not None:
            raise ArmError(f"{self.name}: controller error: {self.error}")
        if self.stopped:
            raise ArmError(f"{self.name}: stopped")

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.connected = False
