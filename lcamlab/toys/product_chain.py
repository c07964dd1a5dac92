r"""ProductChain: the coupled product model of 000 eq. (1) / 001 eqs. (5)-(6) with sparse data.

The LCAM paper writes a network as a product of weight groups,
:math:`Y = (\prod \Theta_c \prod \Theta_n \prod \Theta_s + b)\,X`, where the
non-sparse weights :math:`\Theta_n` see prominent (frequent) features and change
quickly and the sparse weights :math:`\Theta_s` see rare features and change
slowly. :class:`ProductChain` is that model as a width-one deep linear network
trained on data whose features differ in how often they occur, so the fast and
slow weights arise from real sparse gradients rather than by decree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lcamlab.toys.base import ToySystem, check_nonnegative, check_probability, per_trial

__all__ = ["ProductChain"]


class ProductChain(ToySystem):
    r"""A width-one deep linear network :math:`y = \sum_j (c\,u_j + b_j)\,x_j`, :math:`c = \prod_i v_i`.

    Parameters :math:`\theta = (u_1, \dots, u_F, v_1, \dots, v_D)`: one weight
    :math:`u_j` per input feature and a shared chain :math:`v_1\cdots v_D` (the
    constant group :math:`\Theta_c` of 000 eq. 1, which couples every feature
    weight to every other). Feature :math:`j`'s effective weight is
    :math:`w_j = c\,u_j + b_j = (\prod_i v_i\, u_j + b_j)`, exactly the paper's
    :math:`(\prod\Theta + b)X` per feature.

    **Data.** The first ``n_frequent`` features occur in every example, the other
    ``n_rare`` occur with probability :math:`p = 1 - s` (``sparsity`` :math:`s`).
    A present feature is :math:`\pm 1` with equal probability, an absent one 0, so
    :math:`E[x_j x_k] = p_j\delta_{jk}`. Targets come from a teacher,
    :math:`y = \sum_j w^*_j x_j + \varepsilon`, :math:`\varepsilon\sim\mathcal N(0, \sigma_y^2)`.
    The loss of a mini-batch of :math:`B` examples is
    :math:`L_B = \frac{1}{2B}\sum_b (y_b - \hat y_b)^2`; its gradient with respect to
    :math:`u_j` is :math:`-\frac{c}{B}\sum_b r_b x_{bj}`, exactly zero whenever feature
    :math:`j` is absent from the whole batch. So the frequent features' weights are
    the non-sparse, quick :math:`\Theta_n` and the rare ones' the sparse, slow
    :math:`\Theta_s`, as in 000 section 3.1.

    **Population loss** (exact, used to measure progress without sampling noise):

    .. math::

        L(\theta) = \tfrac12 \sum_j p_j\,(w_j - w^*_j)^2 + \tfrac12\sigma_y^2 ,

    minimised (value :math:`\sigma_y^2/2`) on the whole manifold :math:`c\,u_j = w^*_j - b_j`
    (the chain's rescaling symmetry); :meth:`optimum` returns its balanced point
    (:math:`v_i^2 = \sum_j u_j^2` for every :math:`i`, the minimum-norm minimiser,
    as balanced deep linear networks have).

    Args:
        trials: number of independent trials ``T``.
        n_frequent: number of always-present features (:math:`\Theta_n`), >= 1.
        n_rare: number of rare features (:math:`\Theta_s`), >= 0.
        sparsity: :math:`s \in [0, 1)`, probability that a rare feature is absent;
            float or ``(T,)`` (a sparsity grid runs as one batch of trials).
        depth: chain length :math:`D \ge 1`.
        teacher: :math:`w^*_j`: one float for all features, ``F`` values, or
            ``"balanced"`` (default): :math:`w^*_j = 1/\sqrt{p_j}`, so that every
            feature carries the same share :math:`p_j w_j^{*2} = 1` of the initial
            loss and a rare feature's weight has further to travel with a gradient
            :math:`p_j` times smaller (rare features are both slow and important,
            like the classes of a dataset with few examples per class).
        bias: :math:`b_j` (fixed, not trained), one float or ``F`` values.
        label_noise: :math:`\sigma_y \ge 0`.
        init: initial value of every :math:`u_j` and :math:`v_i` (a float, or ``dim``
            values), the same for all trials: a small ``init`` starts near the
            saddle at the origin, as deep networks do.
        batch_size: :math:`B \ge 1`.
        dtype: parameter dtype.

    Reference: 000 section 3.1 eq. (1); 001 section 3.1 eqs. (5)-(6).
    """

    def __init__(
        self,
        trials: int = 100,
        *,
        n_frequent: int = 2,
        n_rare: int = 2,
        sparsity: float | Sequence[float] | Tensor = 0.9,
        depth: int = 2,
        teacher: float | Sequence[float] | str = "balanced",
        bias: float | Sequence[float] = 0.0,
        label_noise: float = 0.1,
        init: float | Sequence[float] = 0.3,
        batch_size: int = 8,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        for name, value, low in (("trials", trials, 1), ("n_frequent", n_frequent, 1), ("n_rare", n_rare, 0),
                                 ("depth", depth, 1), ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"Invalid {name}: {value!r} (must be an int >= {low})")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"Invalid dtype: {dtype} (use torch.float32 or torch.float64)")
        check_probability("sparsity", sparsity)
        check_nonnegative("label_noise", label_noise)
        self.trials = trials
        self.n_frequent = n_frequent
        self.n_rare = n_rare
        self.n_features = n_frequent + n_rare
        self.depth = depth
        self.dim = self.n_features + depth
        self.dtype = dtype
        self.batch_size = batch_size
        self.label_noise = float(label_noise)
        self.sparsity = per_trial("sparsity", sparsity, trials, dtype)
        # Occurrence probability per trial and feature: frequent features always occur.
        probability = torch.ones(trials, self.n_features, dtype=dtype)
        probability[:, n_frequent:] = (1.0 - self.sparsity).unsqueeze(1)
        self.probability = probability
        self._half_probability = 0.5 * probability
        self.teacher_spec = teacher
        if isinstance(teacher, str):
            if teacher != "balanced":
                raise ValueError(f"Invalid teacher: {teacher!r} (a float, {self.n_features} values, or 'balanced')")
            self.teacher = probability.rsqrt()
        else:
            self.teacher = self._features("teacher", teacher).expand(trials, self.n_features).clone()
        self.bias = self._features("bias", bias)
        if bool((self.teacher - self.bias == 0).any()):
            raise ValueError(
                f"Invalid teacher {teacher!r} with bias {bias!r}: every teacher weight must differ from its "
                f"bias (a feature whose target effective weight equals its bias needs no learning)"
            )
        init_t = torch.as_tensor(init, dtype=dtype)
        if init_t.dim() == 0:
            init_t = init_t.expand(self.dim)
        if init_t.shape != (self.dim,) or not bool(torch.isfinite(init_t).all()):
            raise ValueError(f"Invalid init: {init!r} (a float or {self.dim} finite values)")
        self.init = init_t.clone()
        # (F, T) copies for broadcasting against a (B, F, T) batch
        self._half_probability_ft = self._half_probability.T.contiguous()
        self._probability_ft = self.probability.T.contiguous()
        self._teacher_ft = self.teacher.T.contiguous()
        coordinate_names = [f"u_freq{j}" for j in range(n_frequent)] + [f"u_rare{j}" for j in range(n_rare)]
        self.coordinate_names = tuple(coordinate_names + [f"v{i}" for i in range(depth)])

    def _features(self, name: str, value: Any) -> Tensor:
        tensor = torch.as_tensor(value, dtype=self.dtype)
        if tensor.dim() == 0:
            tensor = tensor.expand(self.n_features)
        if tensor.shape != (self.n_features,) or not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"Invalid {name}: {value!r} (a float or {self.n_features} finite values)")
        return tensor.clone()

    # -- knobs ---------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        sparsity = self.sparsity
        return {
            "toy": "ProductChain",
            "trials": self.trials,
            "n_frequent": self.n_frequent,
            "n_rare": self.n_rare,
            "sparsity": float(sparsity[0]) if bool((sparsity == sparsity[0]).all()) else sparsity.tolist(),
            "depth": self.depth,
            "teacher": self.teacher_spec if isinstance(self.teacher_spec, str) else self.teacher[0].tolist(),
            "bias": self.bias.tolist(),
            "label_noise": self.label_noise,
            "init": self.init.tolist(),
            "batch_size": self.batch_size,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    def subset(self, index: slice | Sequence[int] | Tensor) -> "ProductChain":
        return ProductChain(
            self._count(index, self.trials),
            n_frequent=self.n_frequent,
            n_rare=self.n_rare,
            sparsity=self._index_knob(self.sparsity, index),
            depth=self.depth,
            teacher=self.teacher_spec if isinstance(self.teacher_spec, str) else self.teacher[0],
            bias=self.bias,
            label_noise=self.label_noise,
            init=self.init,
            batch_size=self.batch_size,
            dtype=self.dtype,
        )

    @property
    def frequent(self) -> slice:
        """Columns of :math:`\\theta` holding the frequent features' weights (:math:`\\Theta_n`)."""
        return slice(0, self.n_frequent)

    @property
    def rare(self) -> slice:
        """Columns of :math:`\\theta` holding the rare features' weights (:math:`\\Theta_s`)."""
        return slice(self.n_frequent, self.n_features)

    # -- data ----------------------------------------------------------------------------------

    def sample_batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        r"""``(x (B, F, T), y (B, T))``: features in {-1, 0, +1} and teacher targets.

        The trial axis is *last* here (reductions over the short feature and batch
        axes are then contiguous and several times faster); :meth:`slice_batch`
        knows it. One uniform number per entry gives both presence and sign:
        :math:`x = +1` if :math:`U < p/2`, :math:`-1` if :math:`p/2 \le U < p`, else 0.
        """
        u = torch.rand((self.batch_size, self.n_features, self.trials), generator=generator, dtype=self.dtype)
        x = torch.where(u < self._half_probability_ft, 1.0, -1.0).to(self.dtype).mul_(u < self._probability_ft)
        y = (x * self._teacher_ft).sum(dim=1)
        if self.label_noise > 0:
            y.add_(torch.randn((self.batch_size, self.trials), generator=generator, dtype=self.dtype),
                   alpha=self.label_noise)
        return x, y

    def slice_batch(self, batch: tuple[Tensor, ...], index: slice) -> tuple[Tensor, ...]:
        x, y = batch
        return x[..., index], y[..., index]

    # -- loss ----------------------------------------------------------------------------------

    def effective_weights(self, theta: Tensor) -> Tensor:
        r""":math:`w_j = (\prod_i v_i)\,u_j + b_j`, shape ``(..., T, F)``."""
        chain = theta[..., self.n_features:].prod(dim=-1, keepdim=True)
        return chain * theta[..., : self.n_features] + self.bias

    def loss_and_grad(self, theta: Tensor, batch: tuple[Tensor, ...], *, need_loss: bool = True) -> tuple[Tensor, Tensor]:
        x, y = batch
        u = theta[:, : self.n_features]
        v = theta[:, self.n_features:]
        chain = v.prod(dim=1, keepdim=True)
        w = torch.addcmul(self.bias, chain, u)  # (T, F)
        residual = (x * w.T).sum(dim=1).sub_(y)  # (B, T): prediction - target
        loss = (residual * residual).mean(dim=0).mul_(0.5)
        grad_w = (x * residual.unsqueeze(1)).mean(dim=0).T  # dL/dw_j, (T, F)
        # dL/du_j = c dL/dw_j;  dL/dv_i = (prod_{k != i} v_k) * sum_j u_j dL/dw_j (exclusive products).
        inner = (u * grad_w).sum(dim=1, keepdim=True)
        grad = torch.cat([chain * grad_w, self._exclusive_products(v) * inner], dim=1)
        return loss, grad

    @staticmethod
    def _exclusive_products(v: Tensor) -> Tensor:
        """:math:`\\prod_{k\\ne i} v_k` for every i, by prefix and suffix products (exact at v_k = 0)."""
        if v.shape[1] == 1:
            return torch.ones_like(v)
        if v.shape[1] == 2:
            return v.flip(1)
        ones = torch.ones_like(v[:, :1])
        prefix = torch.cumprod(torch.cat([ones, v[:, :-1]], dim=1), dim=1)
        suffix = torch.cumprod(torch.cat([ones, v.flip(1)[:, :-1]], dim=1), dim=1).flip(1)
        return prefix * suffix

    def minibatch_loss(self, theta: Tensor, batch: tuple[Tensor, ...]) -> Tensor:
        x, y = batch
        w = self.effective_weights(theta)
        residual = (x * w.T).sum(dim=1) - y
        return 0.5 * (residual**2).mean(dim=0)

    def population_loss(self, theta: Tensor) -> Tensor:
        error = self.effective_weights(theta) - self.teacher
        return 0.5 * (self.probability * error**2).sum(dim=-1) + 0.5 * self.label_noise**2

    def feature_losses(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """The population loss's frequent and rare parts (excess over the optimum), ``(..., T)`` each."""
        error2 = self.probability * (self.effective_weights(theta) - self.teacher) ** 2
        return 0.5 * error2[..., self.frequent].sum(dim=-1), 0.5 * error2[..., self.rare].sum(dim=-1)

    def optimal_loss(self) -> Tensor:
        return torch.full((self.trials,), 0.5 * self.label_noise**2, dtype=self.dtype)

    def optimum(self) -> Tensor:
        target = self.teacher - self.bias  # c * u_j must equal this, (T, F)
        # Balanced point: v_i = s for all i and u_j = target_j / s^D with s^2 = sum_j u_j^2, i.e.
        # s^(2D+2) = sum_j target_j^2: the minimum-norm point of the manifold (with all v_i > 0).
        s = target.pow(2).sum(dim=1, keepdim=True).pow(1.0 / (2 * self.depth + 2))
        return torch.cat([target / s**self.depth, s.expand(self.trials, self.depth)], dim=1)

    def initial_point(self) -> Tensor:
        return self.init.expand(self.trials, self.dim).clone()
