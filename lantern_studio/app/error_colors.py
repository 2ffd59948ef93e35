"""The answer's colour scale: what a colour means, the same in every run, readable in both themes.

An error ``e`` (nats) means the reference makes a token ``exp(e)`` times less likely (e > 0,
drift, red) or more likely (e < 0, blue). On the **fixed** scale full colour is ``FIXED_FACTOR``
times, so a colour means the same thing in every run; the **relative** scale stretches to the
run's own mean ± 2.5σ (the old behaviour) to show small differences.

Each theme's extreme colours were chosen so that the theme's text keeps WCAG AA contrast
(≥ 4.5:1) on every shade between the background and the extreme; tests compute it.
"""

from __future__ import annotations

import math

RGB = tuple[int, int, int]

FIXED_FACTOR = 20.0
FIXED_LIMIT = math.log(FIXED_FACTOR)  # ≈ 3.0 nats
SIGMAS = 2.5
SCALES = ("fixed", "relative")

# (drift extreme, pull extreme, rewound text) per theme; the text and base come from the palette.
THEME_COLORS: dict[str, dict[str, RGB]] = {
    "light": {"drift": (232, 112, 106), "pull": (112, 152, 236), "rewound": (105, 105, 105)},
    "dark": {"drift": (150, 42, 46), "pull": (40, 76, 152), "rewound": (160, 164, 170)},
}
CHIP_BG: RGB = (255, 196, 61)
CHIP_FG: RGB = (60, 40, 0)


class ErrorScale:
    """Running mean/σ (Welford) of a run's errors, and the limits of the chosen scale."""

    def __init__(self, kind: str = "fixed") -> None:
        self.kind = kind if kind in SCALES else "fixed"
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self._m2 += d * (x - self.mean)

    @property
    def sigma(self) -> float:
        return math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else 1.0

    @property
    def limits(self) -> tuple[float, float]:
        """Errors at full colour (below, above zero)."""
        if self.kind == "fixed":
            return -FIXED_LIMIT, FIXED_LIMIT
        s = max(self.sigma, 1e-3)
        lo, hi = self.mean - SIGMAS * s, self.mean + SIGMAS * s
        return min(lo, -0.25), max(hi, 0.25)

    def position(self, error: float) -> float:
        """-1 (full pull) … 0 (no difference) … +1 (full drift)."""
        lo, hi = self.limits
        return max(-1.0, min(1.0, error / hi if error >= 0 else -error / lo))


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def shade(position: float, base: RGB, theme: str) -> RGB:
    """The background for a scale position in a theme."""
    colors = THEME_COLORS.get(theme, THEME_COLORS["light"])
    end = colors["drift"] if position >= 0 else colors["pull"]
    return mix(base, end, min(1.0, abs(position)))


def relative_luminance(rgb: RGB) -> float:
    def channel(c: int) -> float:
        v = c / 255.0
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio of two colours (1 … 21)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def legend_words(scale: ErrorScale) -> tuple[str, str]:
    """What the two ends of the legend mean, in words (the middle says "with the reference")."""
    lo, hi = scale.limits
    return (f"{_factor(-lo)} more likely", f"{_factor(hi)} less likely (drift)")


def _factor(nats: float) -> str:
    f = math.exp(min(nats, 50.0))
    return f"{f:.0f}×" if f >= 10 else f"{f:.1f}×"
