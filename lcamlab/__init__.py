"""lcamlab: an optimizer-dynamics research notebook suite.

Loss-controlled asymmetric momentum (LCAM) and its relatives as real
``torch.optim`` optimizers (:mod:`lcamlab.optim`), toy coupled-weight systems
(:mod:`lcamlab.toys`), Styblinski-Tang escape-time experiments
(:mod:`lcamlab.escape`), the WRN-28-10 / CIFAR training engine
(:mod:`lcamlab.train`) and the papermill rebuild of every figure
(:mod:`lcamlab.figures`).
"""

__version__ = "0.1.0"
