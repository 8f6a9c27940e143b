"""The learning rate of every step: linear warm-up, then cosine decay to `min_lr` or halving when the
validation error stalls (plateau).

Cosine decays over whichever budget runs out first, epochs or `time_limit_s`: a run cut short by its
time limit still ends at the low rate, where the last epochs do most for the error (a schedule laid
out over epochs that are never reached keeps the peak rate to the end)."""
import math
from typing import Dict, Optional

SCHEDULES = ("cosine", "plateau")


class LearningRateSchedule:
    def __init__(self, lr: float, min_lr: float, warmup_steps: int, schedule: str, total_steps: int,
                 time_limit_s: Optional[float], plateau_patience: int, plateau_factor: float = 0.5):
        if schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule={schedule!r} must be one of {list(SCHEDULES)}")
        self.lr, self.min_lr, self.warmup_steps, self.schedule = lr, min_lr, warmup_steps, schedule
        self.total_steps, self.time_limit_s = max(1, total_steps), time_limit_s
        self.plateau_patience, self.plateau_factor = plateau_patience, plateau_factor
        # plateau state: the current multiplier of lr, the best validation error, epochs without a gain
        self.factor, self.best, self.stalled = 1.0, math.inf, 0

    def progress(self, step: int, seconds: float) -> float:
        """Fraction of the budget used (0..1): steps of all epochs, or time of the time limit."""
        used = step / self.total_steps
        if self.time_limit_s:
            used = max(used, seconds / self.time_limit_s)
        return min(1.0, used)

    def __call__(self, step: int, seconds: float) -> float:
        """Learning rate for optimizer step `step` (0-based), `seconds` into training."""
        warm = min(1.0, (step + 1) / max(1, self.warmup_steps))
        if self.schedule == "plateau":
            return max(self.min_lr, self.lr * self.factor) * warm
        floor = self.min_lr / self.lr
        cosine = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * self.progress(step, seconds)))
        return self.lr * cosine * warm

    def validated(self, error: float) -> None:
        """Report a validation error (plateau: after `plateau_patience` evaluations without a new best,
        multiply the rate by `plateau_factor`)."""
        if error < self.best:
            self.best, self.stalled = error, 0
            return
        self.stalled += 1
        if self.stalled > self.plateau_patience:
            self.factor *= self.plateau_factor
            self.stalled = 0

    def state_dict(self) -> Dict[str, float]:
        return {"factor": self.factor, "best": self.best, "stalled": self.stalled}

    def load_state_dict(self, state: Dict[str, float]) -> None:
        self.factor, self.best, self.stalled = state["factor"], state["best"], state["stalled"]
