"""The experiment layer: the pieces every experiment of the suite shares, each once.

========================  ==============================================================
module                    concept
========================  ==============================================================
:mod:`.registry`          optimizer specs and presets: key -> spec -> optimizer
:mod:`.trials`            the batched trial runner and its per-trial looped reference
:mod:`.cache`             the verified result cache (content hash + config + format)
:mod:`.stats`             intervals, paired differences, censored rates, fits
:mod:`.metrics`           analysis metrics on recorded runs (oscillation index, ...)
========================  ==============================================================

The experiments themselves (the zoo, the toys, the escape simulations, WRN
training) keep their physics in their own packages and build on these.
"""

from lcamlab.experiments.registry import KINDS, PRESETS, OptimizerSpec, preset, suite

__all__ = ["KINDS", "PRESETS", "OptimizerSpec", "preset", "suite"]
