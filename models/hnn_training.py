"""Training of the Hamiltonian NN and its baseline on (state, time-derivative) pairs.

`fit` is shared by train.py (`--model hnn|baseline`, through `train_hamiltonian`, on
finite-difference derivatives of any trajectory file) and experiments/hnn_table.py (the
paper's protocol). It knows nothing about any physical system: it sees tensors only.
"""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn

from models.averaging import WeightAverage
from models.hnn import HNN


# ---------------------------------------------------------------------------- losses, training

def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over every element (the paper's L2 loss)."""
    return (pred - target).pow(2).mean()


def pointwise_sq_error(model: nn.Module, x: Tensor, dxdt: Tensor, chunk: int = 8192) -> Tensor:
    """Squared error of model.time_derivative per point, averaged over coordinates: (N,)."""
    out = []
    for i in range(0, x.shape[0], chunk):
        pred = model.time_derivative(x[i:i + chunk], create_graph=False).detach()
        out.append((pred - dxdt[i:i + chunk]).pow(2).mean(dim=1))
    return torch.cat(out)


def fused_supported(model: nn.Module) -> bool:
    """True for an HNN whose H is the plain tanh MLP of models/hnn.py (>= 1 hidden layer)."""
    if not isinstance(model, HNN) or model.cfg.activation != "tanh" or model.cfg.n_layers < 2:
        return False
    layers = list(model.net)
    linears = layers[0::2]
    return (len(layers) == 2 * model.cfg.n_layers - 1
            and all(isinstance(m, nn.Linear) for m in linears)
            and all(isinstance(m, nn.Tanh) for m in layers[1::2])
            and all(m.bias is not None for m in linears[:-1]) and linears[-1].bias is None)


def hnn_loss_and_grads(model: HNN, x: Tensor, dxdt: Tensor) -> Tensor:
    """MSE of the HNN's symplectic gradient against dxdt, with the parameters' gradients
    written to their .grad by a hand-derived backward pass (no double-backward graph).

    Same numbers as mse(model.time_derivative(x, create_graph=True), dxdt).backward() (the
    tests compare them to 1e-12 in float64, and training runs match autograd's to 4 digits of
    the loss in float32), in less time: no double-backward graph (~40 autograd nodes, the
    tanh kernel run again) and the thin (B x D) products laid out for MKL.
    x, dxdt: (B, D). Notation: h_k = tanh(h_{k-1} W_k^T + b_k) (h_0 = x), H = h_{L-1} w^T,
    s_k = 1 - h_k^2, g_k = dH/dz_k, so dH/dx = g_1 W_1 and the prediction is dH/dx J.
    """
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    W = [m.weight for m in linears]                  # (H, D), (H, H)..., (1, H)
    bias = [m.bias for m in linears]
    n = len(W)
    J = model.J
    dW, db = [None] * n, [None] * n
    with torch.no_grad():
        hs, ss = [x], [None]
        for k in range(n - 1):
            # torch.tanh, although 2 sigmoid(2z) - 1 runs 3.5x faster on this CPU build: in
            # float32 that form's rounding sent 2 of 5 spring seeds to a worse minimum
            # (energy MSE 1e-3 instead of 1e-4), while this path matches autograd's.
            h = torch.tanh_(torch.addmm(bias[k], hs[-1], W[k].t()))   # (B, H)
            hs.append(h)
            ss.append(torch.mul(h, h).neg_().add_(1))
        g, a = [None] * n, [None] * n
        g[n - 1] = ss[n - 1] * W[n - 1][0]
        for k in range(n - 2, 0, -1):
            a[k] = g[k + 1] @ W[k]
            g[k] = a[k] * ss[k]
        # Products with only D output columns run as (D x .) @ (. x B), transposed back:
        # MKL's (B x H) @ (H x D) with D = 2 takes 4-5x longer than its transpose.
        WJ = W[0] @ J                                                 # (H, D)
        diff = (WJ.t() @ g[1].t()).t().sub(dxdt)                      # (B, D)
        loss = diff.square().mean()
        dpred = diff.mul_(2.0 / diff.numel())
        dW[0] = J @ (dpred.t() @ g[1])                                # (D, H) -> .t() below
        gbar = dpred @ WJ.t()                                         # dL/dg_1 (B, H)
        sbar = [None] * n
        for k in range(1, n - 1):
            abar = gbar * ss[k]
            sbar[k] = gbar.mul_(a[k])
            dW[k] = g[k + 1].t() @ abar
            gbar = abar @ W[k].t()
        dW[n - 1] = (gbar * ss[n - 1]).sum(0, keepdim=True)
        sbar[n - 1] = gbar.mul_(W[n - 1][0])
        hbar = None
        for k in range(n - 1, 0, -1):
            zbar = sbar[k].mul_(hs[k]).mul_(-2)                       # via s_k = 1 - h_k^2
            if hbar is not None:
                zbar.add_(hbar)                                       # via z_{k+1}
            zbar.mul_(ss[k])
            if k == 1:   # (D, H) accumulator, transposed once at the end
                dW[0] = torch.addmm(dW[0], hs[0].t(), zbar).t().contiguous()
            elif dW[k - 1] is None:
                dW[k - 1] = zbar.t() @ hs[k - 1]
            else:
                dW[k - 1] = torch.addmm(dW[k - 1], zbar.t(), hs[k - 1])
            db[k - 1] = zbar.sum(0)
            if k > 1:
                hbar = zbar @ W[k - 1]
        for p, grad in zip(W + bias[:-1], dW + db[:-1]):
            p.grad = grad
    return loss


def adam(params, lr: float, weight_decay: float) -> torch.optim.Adam:
    """torch's Adam, with its fused kernel where this torch has one for the device: the
    per-parameter loop costs ~0.24 ms a step on the CPU against 0.08 ms fused, a tenth of a
    two-body HNN step."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def fit(model: nn.Module, x: Tensor, dxdt: Tensor, *, steps: int, batch_size: int | None = None,
        lr: float = 1e-3, weight_decay: float = 0.0, generator: torch.Generator,
        x_test: Tensor | None = None, dxdt_test: Tensor | None = None, log_every: int = 200,
        progress: bool = False, engine: str = "auto", lr_schedule: str = "constant",
        average: float = 0.0) -> dict:
    """Train model.time_derivative(x) to match dxdt with Adam and the MSE loss.

    x, dxdt: (N, D) states and their time derivatives. batch_size None = full batch; otherwise
    minibatches drawn without replacement from a fresh permutation each epoch (from
    `generator`, so the same generator state gives the same run). engine: "autograd"
    (backward through model.time_derivative's double-backward graph), "fused"
    (hnn_loss_and_grads: the same gradients by hand, HNN with a tanh MLP only) or "auto"
    (fused where supported). lr_schedule: "constant" (the paper) or "cosine" (lr * (1 +
    cos(pi * step / steps)) / 2, an ablation). average: decay of a moving average of the
    weights kept alongside (models/averaging.py; 0 = none); the model ends with its LAST
    weights and history["average_state"] holds a state_dict with the averaged ones.
    Returns a history dict, with the engine used:
    step, train_loss, test_loss (lists, logged every `log_every` steps (0 = only at the end),
    measured on the whole sets), final_train_loss, final_test_loss, seconds (wall time of the
    training loop, logging included), cpu_seconds (process CPU time of the same: on a shared
    machine wall time also counts other people's jobs), steps_per_s.
    """
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown lr_schedule {lr_schedule!r} (choose constant or cosine)")
    if engine not in ("auto", "autograd", "fused"):
        raise ValueError(f"unknown engine {engine!r} (choose auto, autograd or fused)")
    use_fused = engine == "fused" or (engine == "auto" and fused_supported(model))
    if use_fused and not fused_supported(model):
        raise ValueError("engine='fused' needs an HNN with a plain tanh MLP")
    model.train()
    opt = adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = x.shape[0]
    full = batch_size is None or batch_size >= n
    history: dict = {"step": [], "train_loss": [], "test_loss": [],
                     "engine": "fused" if use_fused else "autograd"}
    has_test = x_test is not None and dxdt_test is not None

    def log(step: int) -> None:
        model.eval()
        history["step"].append(step)
        history["train_loss"].append(float(pointwise_sq_error(model, x, dxdt).mean()))
        history["test_loss"].append(float(pointwise_sq_error(model, x_test, dxdt_test).mean())
                                    if has_test else None)
        model.train()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, leave=False, desc=type(model).__name__)
    perm, cursor = None, n
    averager = WeightAverage(list(model.parameters()), average) if average > 0 else None
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(steps):
        if lr_schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        if full:
            xb, yb = x, dxdt
        else:
            if cursor + batch_size > n:
                perm, cursor = torch.randperm(n, generator=generator), 0
            idx = perm[cursor:cursor + batch_size]
            cursor += batch_size
            xb, yb = x[idx], dxdt[idx]
        if use_fused:
            hnn_loss_and_grads(model, xb, yb)
        else:
            opt.zero_grad(set_to_none=True)
            mse(model.time_derivative(xb, create_graph=True), yb).backward()
        opt.step()
        if averager is not None:
            averager.update()
        if log_every and step % log_every == 0:
            log(step)
            if bar is not None:
                bar.set_postfix(loss=f"{history['train_loss'][-1]:.2e}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if not history["step"] or history["step"][-1] != steps:
        log(steps)
    model.eval()
    if averager is not None:
        with averager.swapped_in():
            history["average_state"] = {k: v.detach().clone()
                                        for k, v in model.state_dict().items()}
    history.update(final_train_loss=history["train_loss"][-1],
                   final_test_loss=history["test_loss"][-1], seconds=seconds,
                   cpu_seconds=cpu_seconds, steps_per_s=steps / seconds if seconds > 0 else None)
    return history


# ---------------------------------------------------------------------------- train.py --model

def train_hamiltonian(cfg, prep, device, gen: torch.Generator, np_rng, ckpt: dict | None,
                      save) -> tuple[nn.Module, list[dict]]:
    """train.py --model hnn|baseline: the model trained by fit on the observed states and
    their finite-difference derivatives (raw units, as in the paper): the paper's
    architecture (HNNConfig defaults), Adam at --lr, batches of batch_size x window random
    states, as many steps per epoch as PhysicsNet takes. `cfg` is train.py's TrainConfig,
    `prep` a models.physics_training.Prepared.

    fit() runs the whole schedule in one call, so save(checkpoint dict, rows) is called once at
    the end; a --resume of an unfinished run trains it again from the seed (same result).
    """
    from dataclasses import asdict

    from models.hnn import HNNConfig, build_hamiltonian_model
    from utils import rng_states

    N, T, D = prep.train.shape
    q_idx, p_idx = prep.pairs if prep.pairs is not None else (None, None)
    hcfg = HNNConfig(input_dim=D)
    model_config = {"hnn": asdict(hcfg), "q_idx": q_idx, "p_idx": p_idx}
    model = build_hamiltonian_model(cfg.model, hcfg, q_idx, p_idx).to(device)
    if ckpt is not None and ckpt["epoch"] >= cfg.epochs and ckpt["model_kind"] == cfg.model:
        model.load_state_dict(ckpt["model_state"])
        return model.eval(), ckpt["metrics"]
    steps_per_epoch = math.ceil(N / cfg.batch_size)
    x, dxdt = prep.train.reshape(-1, D), prep.train_dsdt.reshape(-1, D)
    xv = prep.val.reshape(-1, D) if prep.val is not None else None
    dv = prep.val_dsdt.reshape(-1, D) if prep.val is not None else None
    # fit() scores the whole training and validation sets at each log: every epoch would double
    # the cost of a run, so at most 20 logs (metrics.jsonl then has a line every few epochs)
    log_epochs = max(1, cfg.epochs // 20)
    t0 = time.perf_counter()
    history = fit(model, x, dxdt, steps=cfg.epochs * steps_per_epoch,
                  batch_size=cfg.batch_size * min(cfg.window, T), lr=cfg.lr,
                  weight_decay=cfg.weight_decay,
                  generator=gen, x_test=xv, dxdt_test=dv, log_every=steps_per_epoch * log_epochs,
                  progress=not cfg.quiet)
    per_epoch = (time.perf_counter() - t0) / cfg.epochs
    cpu_per_epoch = history.get("cpu_seconds", float("nan")) / cfg.epochs
    rows = []
    previous = 0
    for step, tr, va in zip(history["step"], history["train_loss"], history["test_loss"]):
        if step == 0:
            continue
        epoch = math.ceil(step / steps_per_epoch)
        # seconds of the epochs since the previous line (so that they sum to the run's time)
        row = {"epoch": epoch, "lr": cfg.lr, "epoch_seconds": per_epoch * (epoch - previous),
               "epoch_cpu_seconds": cpu_per_epoch * (epoch - previous),
               "train/derivative_mse": tr, "train/total": tr}
        if va is not None:
            row.update({"val/derivative_mse": va, "val/total": va})
        rows.append(row)
        previous = epoch
    save({"model_kind": cfg.model, "model_config": model_config,
          "model_state": model.state_dict(), "optimizer_state": None, "epoch": cfg.epochs,
          "flags": asdict(cfg), "rng": rng_states(gen, np_rng), "metrics": rows}, rows)
    return model.eval(), rows
