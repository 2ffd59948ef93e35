"""The PID-style controller of blip mode. Pure: fed errors, answers decisions."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .settings import LoopSettings


@dataclass(frozen=True, slots=True)
class Decision:
    """Fire a blip now: ``signal`` is u_t (inf for a detector), ``reason`` says why."""

    signal: float
    reason: str
    source_id: str | None = None  # set when a Never detector forced the decision


class Controller:
    """``u_t = kp·e⁺_t + ki·Σ_window e⁺ + kd·(e⁺_t − e⁺_{t−1})``; fires when ``u_t ≥ threshold``,
    at least ``cooldown`` tokens after the last blip, while fewer than ``max_blips`` fired."""

    def __init__(self, settings: LoopSettings) -> None:
        self.settings = settings
        self._window: deque[float] = deque(maxlen=settings.window)
        self._prev = 0.0
        self._since_blip = settings.cooldown  # the first blip needs no wait
        self.fired = 0
        self.last_signal = 0.0

    def signal(self, error: float) -> float:
        """Advance by one token's error and return u_t (no decision)."""
        s = self.settings
        e = max(0.0, error)
        self._window.append(e)
        u = s.kp * e + s.ki * sum(self._window) + s.kd * (e - self._prev)
        self._prev = e
        self._since_blip += 1
        self.last_signal = u
        return u

    def can_fire(self) -> bool:
        s = self.settings
        return self.fired < s.max_blips and self._since_blip >= s.cooldown

    def step(self, error: float) -> Decision | None:
        """Feed one token's error; a Decision when the loop should act now."""
        u = self.signal(error)
        if u >= self.settings.threshold and self.can_fire():
            return Decision(u, f"control signal {u:.2f} reached the threshold {self.settings.threshold:g}")
        return None

    def detector(self, source_id: str, match: str) -> Decision | None:
        """A Never detector matched: act at once (max_blips still bounds the loop)."""
        if self.fired >= self.settings.max_blips:
            return None
        return Decision(float("inf"), f"the Never rule {source_id} matched {match!r}", source_id)

    def fire(self) -> None:
        """Record that a blip was injected: restart the cooldown and clear the memory."""
        self.fired += 1
        self._since_blip = 0
        self._window.clear()
        self._prev = 0.0

    def rewound(self, count: int) -> None:
        """Tokens left the answer: their errors leave the window too."""
        for _ in range(min(count, len(self._window))):
            self._window.pop()
        self._prev = self._window[-1] if self._window else 0.0

    def guide_gamma(self) -> float:
        """Adaptive guidance scale: γ_min at rest, rising linearly to γ_max at the threshold."""
        s = self.settings
        if s.threshold <= 0:
            return s.gamma_max
        level = min(1.0, max(0.0, self.last_signal / s.threshold))
        return s.gamma_min + (s.gamma_max - s.gamma_min) * level
