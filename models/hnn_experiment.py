"""Hamiltonian Neural Networks, the paper's protocol (Greydanus et al. 2019, Table 1).

    python -m models.hnn_experiment                      # 3 tasks x 3 seeds x {baseline, hnn}
    python -m models.hnn_experiment --quick              # tiny settings, a smoke run
    python -m models.hnn_experiment --tasks spring --seeds 0
"""
from __future__ import annotations

import time

import torch
from torch import Tensor, nn


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over every element (the paper's L2 loss)."""
    return (pred - target).pow(2).mean()


def _batched_loss(model: nn.Module, x: Tensor, dxdt: Tensor, chunk: int = 8192) -> float:
    """Loss of model.time_derivative on (x, dxdt) without a double-backward graph."""
    total = 0.0
    for i in range(0, x.shape[0], chunk):
        pred = model.time_derivative(x[i:i + chunk], create_graph=False).detach()
        total += float((pred - dxdt[i:i + chunk]).pow(2).sum())
    return total / dxdt.numel()


def fit(model: nn.Module, x: Tensor, dxdt: Tensor, *, steps: int, batch_size: int | None = None,
        lr: float = 1e-3, weight_decay: float = 0.0, generator: torch.Generator,
        x_test: Tensor | None = None, dxdt_test: Tensor | None = None, log_every: int = 200,
        progress: bool = False) -> dict:
    """Train model.time_derivative(x) to match dxdt with Adam and the MSE loss.

    x, dxdt: (N, D) states and their time derivatives. batch_size None = full batch; otherwise
    minibatches drawn without replacement from a fresh permutation each epoch (from
    `generator`, so the same generator state gives the same run). Returns a history dict:
    step, train_loss, test_loss (lists, logged every `log_every` steps and at the end,
    measured on the whole sets), final_train_loss, final_test_loss, seconds, steps_per_s.
    """
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = x.shape[0]
    full = batch_size is None or batch_size >= n
    history = {"step": [], "train_loss": [], "test_loss": []}
    has_test = x_test is not None and dxdt_test is not None

    def log(step: int) -> None:
        model.eval()
        history["step"].append(step)
        history["train_loss"].append(_batched_loss(model, x, dxdt))
        history["test_loss"].append(_batched_loss(model, x_test, dxdt_test) if has_test else None)
        model.train()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, leave=False, desc=type(model).__name__)
    perm, cursor = None, n
    start = time.perf_counter()
    for step in range(steps):
        if full:
            xb, yb = x, dxdt
        else:
            if cursor + batch_size > n:
                perm, cursor = torch.randperm(n, generator=generator), 0
            idx = perm[cursor:cursor + batch_size]
            cursor += batch_size
            xb, yb = x[idx], dxdt[idx]
        loss = mse(model.time_derivative(xb, create_graph=True), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log_every and step % log_every == 0:
            log(step)
            if bar is not None:
                bar.set_postfix(loss=f"{history['train_loss'][-1]:.2e}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    if not history["step"] or history["step"][-1] != steps:
        log(steps)
    model.eval()
    history.update(final_train_loss=history["train_loss"][-1],
                   final_test_loss=history["test_loss"][-1], seconds=seconds,
                   steps_per_s=steps / seconds if seconds > 0 else None)
    return history
