"""Ctrl+C (Jupyter's ■) held back while a message is handed over and counted, so that none reaches the broker
uncounted: ctrl_c_between_sends() around a whole loop (step 2's sends, step 3's processing), ctrl_c_waits()
around one block."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager, nullcontext


class HeldCtrlC:
    """Inside `with held:` a Ctrl+C (SIGINT, Jupyter's interrupt) waits until the block is done; outside, it acts
    as it always does. Made by ctrl_c_between_sends(), which installs its handler once for a whole loop."""

    __slots__ = ("arrived", "inside", "previous")

    def __init__(self, previous):
        self.previous, self.inside, self.arrived = previous, False, None

    def on_sigint(self, number, frame) -> None:
        if self.inside:
            self.arrived = frame
        else:
            self._pass_on(frame)

    def _pass_on(self, frame) -> None:
        if callable(self.previous):
            self.previous(signal.SIGINT, frame)
        elif self.previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    def __enter__(self) -> HeldCtrlC:
        self.inside = True
        return self

    def __exit__(self, *exception) -> None:
        self.inside = False
        if self.arrived is not None:
            frame, self.arrived = self.arrived, None
            self._pass_on(frame)


@contextmanager
def ctrl_c_between_sends():
    """Around a send loop: yields `held`; a Ctrl+C that arrives inside `with held:` waits until that block is done.

    Around producer.send() and report.track(), it makes sure no message reaches the broker uncounted.
    The handler is installed once for the loop: swapping it per message would cost two system calls each.
    """
    if threading.current_thread() is not threading.main_thread():
        yield nullcontext()  # signal handlers belong to the main thread; elsewhere there is nothing to defer
        return
    held = HeldCtrlC(signal.getsignal(signal.SIGINT))
    signal.signal(signal.SIGINT, held.on_sigint)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, held.previous)


@contextmanager
def ctrl_c_waits():
    """Hold back a Ctrl+C until this one block is done, then raise it. Around a loop's every message,
    ctrl_c_between_sends() is cheaper: it installs the handler once, not twice per message."""
    with ctrl_c_between_sends() as held, held:
        yield
