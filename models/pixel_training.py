"""Training of models/pixel_hnn.py's PixelDynamicsAE on consecutive pairs of frame-pair inputs.

The loss is the paper's three terms (section 5.1): the latent dynamics loss (HNN loss), the
pixel reconstruction loss and the auxiliary "canonical coordinates" loss that makes the second
half of the latent behave like the time derivative of the first. It sees tensors only; the
pendulum, its renderer and its truth live in experiments/pixel_pendulum.py.

Shapes: N sequences of F frames of P = side^2 pixels; an input x_t = (frame t, frame t+1)
(B, 2P); a transition is (x_t, x_{t+1}).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from models.pixel_hnn import PixelDynamicsAE


# ---------------------------------------------------------------------------- losses

def reconstruction_loss(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean squared pixel error of the decoded inputs (the paper's autoencoder L2 loss)."""
    return (x_hat - x).pow(2).mean()


def latent_dynamics_loss(z_pred: Tensor, z_next: Tensor) -> Tensor:
    """Mean squared error of the latent state one frame later (the HNN loss, in latent units)."""
    return (z_pred - z_next).pow(2).mean()


def canonical_loss(z: Tensor, z_next: Tensor, frame_time: float = 1.0) -> Tensor:
    """Mean squared gap between p_t (second half of z_t) and (q_{t+1} - q_t) / frame_time."""
    half = z.shape[1] // 2
    return (z[:, half:] - (z_next[:, :half] - z[:, :half]) / frame_time).pow(2).mean()


def scale_anchor_loss(z: Tensor) -> Tensor:
    """(mean over the q half of the batch variance of q - 1)^2: pins the latent's scale."""
    half = z.shape[1] // 2
    return (z[:, :half].var(dim=0).mean() - 1.0).pow(2)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms; total = recon + canonical * cc + dynamics * dyn + scale * scale.

    The scale anchor is ours, not the paper's: the dynamics and auxiliary losses are squared
    latent distances, which the encoder can shrink for free by shrinking the latent (the
    decoder's first layer scales back up); measured, the latent's spread fell to ~0.03 within
    1500 steps and the latent dynamics stopped mattering. With the spread of q pinned at 1,
    both terms are measured on a fixed scale.
    """

    dynamics: float = 1.0
    canonical: float = 1.0
    scale: float = 1.0


def pixel_losses(model: PixelDynamicsAE, x: Tensor, x_next: Tensor, weights: LossWeights,
                 create_graph: bool = True) -> dict[str, Tensor]:
    """The terms and their weighted sums for transitions (x, x_next) (B, 2P) -> dict of
    scalars: total (what is minimised), objective (the paper's three terms, without the scale
    anchor: what the experiment reports as its loss), recon, dyn, cc, scale.

    Both inputs are encoded and both are reconstructed; the latent field is stepped one frame
    (model.cfg.frame_time of latent time) as model.cfg.loss_step says: by RK4 (so that the
    field the loss fits is the one the rollouts integrate) or by one Euler step (the paper's
    code, which fits the field to the frame-to-frame secant).
    """
    b = x.shape[0]
    z_both = model.encode(torch.cat([x, x_next]))            # (2B, L)
    z, z_next = z_both[:b], z_both[b:]
    recon = reconstruction_loss(model.decode(z_both), torch.cat([x, x_next]))
    h = model.cfg.frame_time
    dyn = latent_dynamics_loss(model.loss_step(z, h, create_graph), z_next)
    cc = canonical_loss(z, z_next, h)
    scale = scale_anchor_loss(z_both)
    objective = recon + weights.canonical * cc + weights.dynamics * dyn
    return {"total": objective + weights.scale * scale, "objective": objective, "recon": recon,
            "dyn": dyn, "cc": cc, "scale": scale}


# ---------------------------------------------------------------------------- batches

def pair_inputs(frames: Tensor, seq: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Transitions of frames (N, F, P) at sequence indices seq (B,) and times t (B,), t + 2 < F
    -> x_t = (frame t, frame t+1), x_{t+1} = (frame t+1, frame t+2), each (B, 2P)."""
    f0, f1, f2 = frames[seq, t], frames[seq, t + 1], frames[seq, t + 2]     # (B, P) each
    return torch.cat([f0, f1], 1), torch.cat([f1, f2], 1)


def transition_index(n_seq: int, n_frames: int, device=None) -> tuple[Tensor, Tensor]:
    """Every transition of n_seq sequences of n_frames frames -> (seq, t), each (n_seq *
    (n_frames - 2),)."""
    seq = torch.arange(n_seq, device=device).repeat_interleave(n_frames - 2)
    t = torch.arange(n_frames - 2, device=device).repeat(n_seq)
    return seq, t


@torch.no_grad()
def evaluate_losses(model: PixelDynamicsAE, frames: Tensor, weights: LossWeights,
                    chunk: int = 2000) -> dict[str, float]:
    """The loss terms over every transition of frames (N, F, P), averaged over transitions
    (the scale anchor's variance is taken over chunks of `chunk` transitions)."""
    was_training = model.training
    model.eval()
    seq, t = transition_index(frames.shape[0], frames.shape[1], frames.device)
    sums: dict[str, float] = {}
    for i in range(0, len(seq), chunk):
        x, x_next = pair_inputs(frames, seq[i:i + chunk], t[i:i + chunk])
        with torch.enable_grad():          # the HNN's field is a gradient even in evaluation
            terms = pixel_losses(model, x, x_next, weights, create_graph=False)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(x)
    model.train(was_training)
    return {k: v / len(seq) for k, v in sums.items()}


# ---------------------------------------------------------------------------- training

def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """Adam with decoupled weight decay (fused where this torch has it for the device).

    Not torch's Adam(weight_decay=...), which adds weight_decay * w to the gradient before
    Adam's normalisation: the pixel loss's gradients are of the order of 1e-6 per weight,
    the size of that term at 1e-5, so it held the decoder at a pixel MSE of 3.4e-4 where
    the same decoder without it reached 4e-5 (1000 steps, supervised on the true state).
    """
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def fit_pixel(model: PixelDynamicsAE, frames: Tensor, *, steps: int, batch_size: int = 200,
              lr: float = 1e-3, weight_decay: float = 1e-5,
              weights: LossWeights = LossWeights(), generator: torch.Generator,
              frames_test: Tensor | None = None, log_every: int = 500,
              lr_schedule: str = "constant", progress: bool = False,
              desc: str | None = None, on_log: Callable[[int], None] | None = None) -> dict:
    """Train on random transitions of frames (N, F, P) with AdamW and pixel_losses.

    Minibatches of `batch_size` transitions, drawn without replacement from a fresh
    permutation of all N * (F - 2) each epoch (from `generator`, so the same generator state
    gives the same run). lr_schedule: "constant" (the paper) or "cosine" (lr * (1 + cos(pi *
    step / steps)) / 2). Logged before steps 0, log_every, 2 log_every, ... (log_every 0: only
    at the end) and after the last, on the whole training and test sets, each time followed
    by on_log(step) (if given). Returns a history dict: step, train (list of loss-term dicts),
    test (same, or None), final_train, final_test, seconds (wall time of the training
    loop, logging excluded), cpu_seconds (its process CPU time, logging excluded: on a shared
    machine wall time also counts other people's jobs), steps_per_s.
    """
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown lr_schedule {lr_schedule!r} (choose constant or cosine)")
    model.train()
    opt = adamw(model.parameters(), lr=lr, weight_decay=weight_decay)
    seq_all, t_all = transition_index(frames.shape[0], frames.shape[1], frames.device)
    n = len(seq_all)
    batch_size = min(batch_size, n)
    history: dict = {"step": [], "train": [], "test": []}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, leave=False, desc=desc or f"pixel-{model.cfg.dynamics}")
    log_seconds = log_cpu = 0.0

    def log(step: int) -> None:
        nonlocal log_seconds, log_cpu
        t0, c0 = time.perf_counter(), time.process_time()
        history["step"].append(step)
        history["train"].append(evaluate_losses(model, frames, weights))
        history["test"].append(evaluate_losses(model, frames_test, weights)
                               if frames_test is not None else None)
        if on_log is not None:
            on_log(step)
        log_seconds += time.perf_counter() - t0
        log_cpu += time.process_time() - c0

    perm, cursor = None, n
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(steps):
        if lr_schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        if cursor + batch_size > n:
            perm, cursor = torch.randperm(n, generator=generator).to(frames.device), 0
        idx = perm[cursor:cursor + batch_size]
        cursor += batch_size
        x, x_next = pair_inputs(frames, seq_all[idx], t_all[idx])
        opt.zero_grad(set_to_none=True)
        terms = pixel_losses(model, x, x_next, weights)
        terms["total"].backward()
        opt.step()
        loss = float(terms["total"].detach())
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at step {step}")
        if log_every and step % log_every == 0:
            log(step)
        if bar is not None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss:.2e}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start - log_seconds
    cpu_seconds = time.process_time() - cpu_start - log_cpu
    log(steps)
    model.eval()
    history.update(final_train=history["train"][-1], final_test=history["test"][-1],
                   seconds=seconds, cpu_seconds=cpu_seconds,
                   steps_per_s=steps / seconds if seconds > 0 else None)
    return history
