"""The HNN paper's Table 1, task 5: a Hamiltonian learned from pixel observations of a pendulum.

    python -m experiments.pixel_pendulum                   # 4 models x 3 seeds
    python -m experiments.pixel_pendulum --models baseline hnn    # the paper's row only
    python -m experiments.pixel_pendulum --quick           # tiny settings (results/quick, plots/quick)
    python -m experiments.pixel_pendulum --seeds 0 --steps 1000 --device cpu
    make pixel

Data (section 5.1 of the paper): frames of a frictionless pendulum with no torque, cropped,
desaturated and downsampled to 28 x 28; each input is a frame and its successor (2 x 784
values, so that velocity is observable). The paper stepped OpenAI Gym's Pendulum-v0 and
rendered it; we render the same scene ourselves from the exact solution (render_frames says
why this is equivalent), and store the true angle, angular velocity and energy of every frame
beside the frames (`truth_*`, read by evaluation only). Model: a fully connected autoencoder
(4 relu layers with residual connections, 200 units) with a 2-unit latent z = (q, p) whose
dynamics is an HNN (or, for the baseline, an MLP for dz/dt), trained on the sum of the pixel
reconstruction loss, the latent dynamics (HNN) loss, the paper's auxiliary loss p_t ~
(q_{t+1} - q_t) / frame_time and an anchor of the latent's scale; the dynamics loss steps the
latent one frame by Euler (baseline, hnn: the paper's code) or by RK4 (baseline+rk4,
hnn+rk4: ours, a far stronger baseline; NOTES). Rollouts integrate the
latent field and decode; the true energy of a latent state is read through a chart fitted on
encoded training inputs and their truth. Writes
results/hnn_pixel.json (atomic; "hnn_table" rows as experiments/hnn_table.py writes them)
plots/hnn_pixel_pendulum.png and the trained models (results/pixel_pendulum/<model>__s<seed>.pt).
NOTES says how each number is measured.
"""
from __future__ import annotations

import contextlib
import copy
import io
import sys
import time
from dataclasses import asdict, dataclass, replace
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.simulate import SYSTEMS, integrate  # noqa: E402
from evaluation.metrics import monotone_r2, r2  # noqa: E402
from experiments.hnn_table import (dashboard_rows, rollout, save_figure,  # noqa: E402
                                   summarise, task_seeds)
from experiments.pixel_latent import discover_on_latents, summary_line  # noqa: E402
from models.pixel_hnn import DYNAMICS, PixelConfig, PixelDynamicsAE  # noqa: E402
from models.pixel_training import LossWeights, evaluate_losses, fit_pixel  # noqa: E402
from utils import (PLOTS_DIR, RESULTS_DIR, atomic_torch_save, atomic_write_json,  # noqa: E402
                   atomic_write_npz,
                   check_output_dir, check_output_file, cli, describe, environment_info, fail,
                   flag, get_device, parse_flags, require_at_least, require_known,
                   require_seeds)

Array = np.ndarray
TASK = "pixel-pendulum"
# A model is its latent dynamics (models/pixel_hnn.py DYNAMICS) and how its loss steps the
# latent field one frame: "baseline", "hnn" by one Euler step (the paper's code: its table
# row); "baseline+rk4", "hnn+rk4" by one RK4 step (ours, NOTES).
LOSS_STEPS = {"": "euler", "+rk4": "rk4"}
MODELS = tuple(d + suffix for suffix in LOSS_STEPS for d in DYNAMICS)
# The paper's Table 1 row 5, energy MSE (the repository summary's figures); reference only:
# the paper does not say how it read the energy of a latent state (NOTES: ours).
PAPER = {TASK: {"baseline": {"energy_mse": 9.3e-3}, "hnn": {"energy_mse": 1.5e-4}}}

# Gym's Pendulum (v0 and v1): a uniform rod of mass m and length l about one end, gravity g,
# time step dt. Its equation of motion theta'' = -(3 g / 2 l) sin theta (theta from the
# bottom, no torque) is the registry's pendulum H = 2 m' g' l' (1 - cos q) + l'^2 p^2 / (2 m')
# with m' = m l^2 / 3 (the moment of inertia I), g' = 3 g / (4 l), l' = 1: then p = I omega
# and H is the rod's energy in joules, I omega^2 / 2 + m g (l / 2) (1 - cos theta).
GYM = {"g": 10.0, "m": 1.0, "l": 1.0, "dt": 0.05}
INERTIA = GYM["m"] * GYM["l"] ** 2 / 3
PENDULUM_PARAMS = {"m": INERTIA, "g": 3 * GYM["g"] / (4 * GYM["l"]), "l": 1.0}
PENDULUM = SYSTEMS["pendulum"]
# Gym's scene (pendulum.py): the view spans +-2.2 world units on a 500-pixel screen; a capsule
# rod of length 1 and width 0.2 in colour (0.8, 0.3, 0.3) on white, a black axle of radius 0.05.
SCREEN_HALF_WIDTH = 2.2
CROP_HALF_WIDTH = 1.32                  # the central 300 of 500 pixels: rod and caps fit
ROD_LENGTH, ROD_HALF_WIDTH, AXLE_RADIUS = 1.0, 0.1, 0.05
ROD_GRAY = (0.8 + 0.3 + 0.3) / 3        # desaturated: the mean of the three channels
SUMMARY_KEYS = ("train_loss", "test_loss", "train_recon", "test_recon", "train_dyn", "test_dyn",
                "train_cc", "test_cc", "energy_mse", "energy_mse_long", "energy_mse_encoded",
                "energy_mse_start", "energy_mse_f200", "energy_mse_f1000",
                "pixel_mse_rollout", "decoded_theta_rmse", "reversibility", "own_h_drift",
                "latent_divergence", "h_energy_r2_monotone", "h_energy_r2_affine",
                "latent_theta_r2", "latent_omega_r2", "latent_inverse_r2", "wall_time",
                "cpu_time", "eval_seconds")
NOTES = (
    "data (paper section 5.1; its code, experiment-pixels/data.py): 200 trajectories of 100 "
    "frames, gym's time step dt = 0.05 s, 80/20 split by trajectory (160 train / 40 "
    "held out), no torque, no friction, the maximum displacement at most pi/6. The paper's "
    "code reset gym until the INITIAL angle was below pi/6 (initial omega uniform in [-1, 1]); "
    "we require the whole motion to stay within pi/6 (the paper's text): initial (theta, omega) "
    "uniform over that region of phase space (energies up to 0.67 J; small-angle period "
    "1.62 s, so a trajectory spans ~3 periods).",
    "frames: our own renderer (render_frames) of gym's scene from the exact motion (the "
    "registry's pendulum with gym's rod, scipy RK45 at the registry's tolerances), not gym's "
    "semi-implicit Euler step: the stored truth is the motion of a frictionless pendulum and its "
    "energy is conserved to 1e-9. 28 x 28 per frame from a crop of +-1.32 world units (the "
    "paper's text; its code kept the lower half, 14 x 28, with the red minus the green "
    "channel).",
    "inputs: frame t and frame t + 1 (2 x 784 values); a trajectory of F frames gives F - 1 "
    "inputs and F - 2 transitions (x_t, x_{t+1}). The networks see the pair as (frame t, "
    "frame t+1 - frame t), each part standardised (models/pixel_hnn.py set_pixel_scale): an "
    "invertible linear map of the same input; the paper's code fed frame and frame difference "
    "too. Truth of input t: the state at frame t.",
    "models (paper section 5.1): encoder and decoder of 4 fully connected layers (200 relu "
    "units, residual connections), latent z = (q, p) of 2 units; latent dynamics: the HNN of "
    "section 3 (3 layers, 200 tanh units) or, for the baseline, an MLP of the same shape for "
    "dz/dt. All models of a seed start from the same weights.",
    "loss: pixel MSE of both decoded inputs + canonical_weight * mean (p_t - (q_{t+1} - q_t) / "
    "frame_time)^2 (the paper's auxiliary loss, eq. 7) + dynamics_weight * mean (step(z_t, "
    "frame_time) - z_{t+1})^2 (the HNN loss) + scale_weight * (var q - 1)^2. step: one Euler "
    "step z + frame_time f(z) for the models baseline and hnn (the paper's code: the table "
    "row), one RK4 step for baseline+rk4 and hnn+rk4 (ours: the rollouts' integrator, so that "
    "the loss fits the field that is integrated). Why both: an Euler step fits f to the "
    "frame-to-frame secant, (R - 1) z / frame_time for a turn R by angle phi per frame, whose "
    "real part (cos phi - 1) / frame_time makes the field contract (phi ~ 0.19 rad per frame "
    "here: energy decays ~4 % per frame on a linear model); the baseline's MLP learns that "
    "contraction and its rollouts lose their energy, the HNN's field cannot contract (it keeps "
    "phase-space area) and its loss keeps the contraction as an irreducible error (its train "
    "loss is the higher one). With an RK4 step the baseline learns a field close to the true "
    "one and drifts far less (seed 0, 30 / 30: baseline energy MSE over the span 0.10 with an "
    "Euler step, 2.1e-5 with an RK4 step; HNN 4.8e-5 and 1.3e-5). Other differences from "
    "the paper's code (loss = ae + cc + 0.1 hnn, 1 time unit per "
    "frame): frame_time 0.2 so that p (a velocity) is on q's scale, since with 1 the p "
    "dynamics is ~25x smaller in the loss and went unlearnt (latent H vs E R^2 0.63 on a "
    "development run); weights 30 / 30, chosen on seed 0's data only (development runs; "
    "RK4 step, HNN energy MSE over the span: 1 / 1 7e-3, 3 / 3 7e-4, 10 / 10 8e-5 after 3000 "
    "steps; after 6000 steps 10 / 10 7.3e-5 (baseline 5.0e-5), 30 / 30 1.3e-5 (baseline "
    "2.1e-5), 100 / 100 3.2e-5; Euler step, 6000 steps: 10 / 10 1.7e-4 (baseline 0.10), "
    "30 / 30 4.8e-5 (baseline 0.10)): the HNN loss also pulls the encoder towards a chart in which the "
    "flow is Hamiltonian (area-preserving), and its error is largest at the highest "
    "energies, where a non-canonical chart bends the level sets most; the scale anchor, "
    "without which the latent shrank to ~0.03 and the latent terms stopped mattering. "
    "train_loss / test_loss: the paper's three weighted terms (the scale anchor left out, "
    "train_scale / test_scale) over every transition of the training / held-out "
    "trajectories (the paper's code reports its total loss); train_recon, train_dyn, "
    "train_cc (and test_*) are the terms.",
    "training (paper section 4.1, appendix C, its code): minibatches of 200 transitions, lr "
    "1e-3, weight decay 1e-5; settings.steps steps (the paper: 10 000; 6000 here, so that 3 "
    "seeds x 4 models fit ~50 min on one core of a 2-core CPU), cosine decay of the learning rate "
    "(ours; the paper: constant). AdamW (decoupled weight decay): with torch's Adam, "
    "weight decay 1e-5 is added to gradients of the same size and held a decoder trained on "
    "the true state at a pixel MSE of 3.4e-4 (4e-5 without).",
    "reading the true energy of a latent state (the paper does not say how it did): a chart "
    "(theta, omega) = poly(z), a polynomial of degree settings.chart_degree in the "
    "standardised latent, least squares on the ENCODED TRAINING inputs and their stored truth "
    "(evaluation only; the model never sees it); its input and output are clipped to the "
    "boxes of the training encodings and truth, so that a diverging rollout reads as an "
    "extreme state, not as a polynomial's blow-up. E = I omega^2 / 2 + m g (l/2)(1 - cos "
    "theta) in joules (the registry's pendulum with gym's rod: m = l = 1, g = 10, I = 1/3).",
    "energy MSE: from the encoding of each held-out trajectory's first input, integrate the "
    "latent field (scipy RK45, rtol 1e-9, float64; frame k at latent time k * frame_time) "
    "over the trajectory's own span (99 inputs, 4.9 s), read E through the chart at every "
    "frame and compare with the trajectory's true energy; mean of the squares over frames and "
    "held-out trajectories. energy_mse_long: the same over settings.long_frames frames (400 = "
    "20 s, ~12 periods; the paper's blog: the HNN 'remains close to ground truth even after "
    "hundreds of frames'; the paper does not give its pixel rollouts' length); "
    "energy_mse_f200, energy_mse_f1000: over 200 and 1000 frames. The true energy is "
    "conserved, so it is known beyond the recorded frames. energy_mse_start: at the first "
    "frame only (the read-out of the start's encoding); energy_mse_encoded: the chart's own "
    "error on the encoded held-out inputs (no rollout), the floor of this read-out. An HNN's "
    "error does not grow with the horizon (the true energy oscillates along its own level "
    "set of H); a baseline's drift grows with it.",
    "latent_discovery: our pipeline on each model's latent trajectories, as any user data "
    "(experiments/pixel_latent.py): the encodings of every trajectory's inputs as a "
    "trajectory file of variables z0, z1 (no canonical labels, the experiment's split), "
    "train.py for 3 epochs, then discover.py. laws: what it reports, exact (counted) or "
    "approximate, each with r2_true_energy, the held-out R^2 of the best monotone map from "
    "the law to the true energy (evaluation only: the file's truth_* arrays are hidden from "
    "both scripts).",
    "seeds: every setting above was chosen on seed 0's data; the default seeds 1, 2, 3 were "
    "not looked at before the table was made.",
    "pixel_mse_rollout: mean squared error of the decoded rollout's frames against the true "
    "frames over the span; decoded_theta_rmse: the rod's angle in the decoded frames, read "
    "by the pixel centroid (no truth, no chart), against the true angle.",
    "beyond the paper: h_energy_r2_monotone (HNN): R^2 on the held-out inputs of the best "
    "monotone map from the latent H(z) to the true energy (isotonic regression fitted on the "
    "training inputs); h_energy_r2_affine the same for an affine map. latent_theta_r2, "
    "latent_omega_r2: held-out R^2 of the chart z -> theta, omega; latent_inverse_r2: held-out "
    "R^2 (mean over latent coordinates) of the inverse chart (theta, omega) -> z, a "
    "polynomial of the same degree: both near 1 means z is (theta, omega) up to a smooth "
    "change of variables.",
    "own_h_drift (HNN): max |H - H(0)| along its own held-out rollouts (long horizon), over the "
    "spread (std) of H on the held-out inputs. latent_divergence: mean |div f| / (mean |f| / "
    "latent std) on the held-out encodings, f the latent field (0 for an HNN: its flow keeps "
    "phase-space area). reversibility: integrate over the span and back; distance of the end "
    "from the start over the latent std.",
    "wall_time / cpu_time: the training loop of one model (logging excluded) on "
    "`threads` torch threads; spread over seeds: sample standard deviation; each seed draws "
    "its own data set, autoencoder weights and minibatches.",
)


# ---------------------------------------------------------------------------- data

def render_frames(theta: Array, side: int = 28, supersample: int = 3,
                  chunk: int = 512) -> Array:
    """Desaturated frames of gym's pendulum scene at angles theta (...) -> (..., side, side)
    float32 in [0, 1] (white background 1, rod ROD_GRAY, axle 0).

    Equivalent to the paper's pipeline (step gym, render the RGB frame, crop, desaturate,
    downsample to 28 x 28) because it draws the same scene in the same coordinates: a capsule
    rod of length 1 and half-width 0.1 hanging from the centre at angle theta (from the
    bottom, counter-clockwise; gym's angle from the top is theta + pi), gym's rod colour on
    white with its black axle on top, seen through the central window of +-CROP_HALF_WIDTH
    world units (300 of gym's 500 pixels, which hold the rod at every angle), each of the
    three channels averaged to grey, then reduced to side x side pixels by averaging
    (area filter). Where it differs: edges are anti-aliased by signed distance on a
    supersample x supersample grid per pixel, instead of pygame's polygon anti-aliasing
    followed by an image-resize filter (a resampling detail, smooth in theta either way);
    gym's torque-arrow overlay is left out (it carries no state when no torque is applied).
    """
    theta = np.asarray(theta, dtype=float)
    flat = theta.ravel()
    n_sub = side * supersample
    h = 2 * CROP_HALF_WIDTH / n_sub                        # sub-pixel size, world units
    centres = -CROP_HALF_WIDTH + (np.arange(n_sub) + 0.5) * h
    x, y = np.meshgrid(centres, -centres)                  # image row 0 is the top
    px, py = x.ravel(), y.ravel()                          # (S^2,)
    axle = np.clip(0.5 - (np.hypot(px, py) - AXLE_RADIUS) / h, 0, 1)
    out = np.empty((len(flat), side, side), dtype=np.float32)
    for i in range(0, len(flat), chunk):
        th = flat[i:i + chunk, None]                                       # (K, 1)
        tx, ty = ROD_LENGTH * np.sin(th), -ROD_LENGTH * np.cos(th)        # rod tip
        u = np.clip((px * tx + py * ty) / ROD_LENGTH ** 2, 0, 1)          # (K, S^2)
        dist = np.hypot(px - u * tx, py - u * ty) - ROD_HALF_WIDTH        # signed distance
        rod = np.clip(0.5 - dist / h, 0, 1)
        img = (1 - rod * (1 - ROD_GRAY)) * (1 - axle)
        out[i:i + chunk] = img.reshape(-1, side, supersample, side, supersample).mean((2, 4))
    return out.reshape(theta.shape + (side, side))


def centroid_angle(frames: Array) -> Array:
    """Angle of the rod from the bottom, read from frames (..., side, side) by the centroid of
    their darkness 1 - pixel (the axle, at the centre, does not move it) -> (...)."""
    side = frames.shape[-1]
    c = np.arange(side) + 0.5 - side / 2
    dark = 1.0 - np.asarray(frames, dtype=float)
    cx = (dark * c[None, :]).sum((-1, -2))
    cy = (dark * -c[:, None]).sum((-1, -2))       # image rows grow downwards
    return np.arctan2(cx, -cy)


def pendulum_energy(theta: Array, omega: Array) -> Array:
    """The rod's energy in joules (the registry's pendulum with PENDULUM_PARAMS) -> (...)."""
    return PENDULUM.invariant_fn("E", PENDULUM_PARAMS)(
        np.stack([theta, INERTIA * np.asarray(omega)], axis=-1))


def sample_initial_states(rng: np.random.Generator, n: int, max_angle: float) -> Array:
    """(theta, omega) uniform over the states whose motion stays within |theta| <= max_angle
    (energy at most that of rest at max_angle), by rejection from a box -> (n, 2)."""
    e_max = float(pendulum_energy(np.array(max_angle), np.array(0.0)))
    omega_max = np.sqrt(2 * e_max / INERTIA)
    out = np.empty((0, 2))
    while len(out) < n:
        box = rng.uniform([-max_angle, -omega_max], [max_angle, omega_max], (2 * n, 2))
        out = np.concatenate([out, box[pendulum_energy(box[:, 0], box[:, 1]) <= e_max]])
    return out[:n]


def true_motion(theta0: Array, omega0: Array, n_frames: int, dt: float) -> tuple[Array, Array]:
    """The exact motion (RK45, the registry's tolerances) from (theta0, omega0) (N,) sampled
    every dt for n_frames frames -> theta, omega (N, n_frames)."""
    t = dt * np.arange(n_frames)
    states, _ = integrate(PENDULUM, np.stack([theta0, INERTIA * omega0], -1), t,
                          PENDULUM_PARAMS)
    return states[..., 0], states[..., 1] / INERTIA


@dataclass(frozen=True)
class PixelSettings:
    """Everything a run depends on besides the seed (saved in the JSON)."""

    n_traj: int = 200                  # the paper: 200 trajectories
    n_train: int = 160                 # 80 / 20 split by trajectory
    frames: int = 100                  # frames per trajectory (the paper: 100)
    dt: float = GYM["dt"]              # seconds per frame (gym's)
    max_angle: float = float(np.pi / 6)    # the paper's maximum displacement
    side: int = 28
    supersample: int = 3               # sub-pixels per pixel and axis when rendering
    steps: int = 6000                  # AdamW steps (the paper: 10 000; NOTES)
    batch_size: int = 200
    lr: float = 1e-3
    lr_schedule: str = "cosine"        # ours; the paper: constant
    weight_decay: float = 1e-5         # the paper's appendix C (decoupled here, NOTES)
    dynamics_weight: float = 30.0      # the paper's code: 0.1 (with an Euler step, NOTES)
    canonical_weight: float = 30.0     # the paper's code: 1
    scale_weight: float = 1.0          # ours: pins the spread of q (models/pixel_training.py)
    frame_time: float = 0.2            # latent time per frame (models/pixel_hnn.py)
    hidden_dim: int = 200
    dyn_hidden_dim: int = 200
    log_every: int = 1000
    chart_degree: int = 5              # polynomial degree of the evaluation's latent chart
    long_frames: int = 400             # energy_mse_long's horizon in frames
    horizons: tuple[int, ...] = (200, 1000)   # energy_mse_f<frames>: more horizons (frames)
    models: tuple[str, ...] = MODELS
    discover: bool = True              # our discovery on each model's latent trajectories


def quick_settings(s: PixelSettings) -> PixelSettings:
    """Tiny data, networks and step counts, for smoke tests."""
    return replace(s, n_traj=12, n_train=8, frames=30, supersample=2, steps=60, batch_size=64,
                   hidden_dim=48, dyn_hidden_dim=32, log_every=30, chart_degree=3,
                   long_frames=60, horizons=(40, 80))


def make_dataset(settings: PixelSettings, rng: np.random.Generator) -> dict:
    """Render the trajectories -> frames (N, F, side, side) float32 and, beside them, the
    truth of every frame: truth_theta, truth_omega (rad, rad/s) and truth_energy (J), each
    (N, F); t (F,) seconds; n_train (the first n_train trajectories train)."""
    x0 = sample_initial_states(rng, settings.n_traj, settings.max_angle)
    theta, omega = true_motion(x0[:, 0], x0[:, 1], settings.frames, settings.dt)
    frames = render_frames(theta, settings.side, settings.supersample)
    return {"frames": frames, "truth_theta": theta, "truth_omega": omega,
            "truth_energy": pendulum_energy(theta, omega),
            "t": settings.dt * np.arange(settings.frames), "n_train": settings.n_train}


def save_dataset(path: str | Path, data: dict) -> Path:
    """The data set as one .npz (frames and truth_* arrays side by side)."""
    return atomic_write_npz(path, **{k: np.asarray(v) for k, v in data.items()})


def frame_tensor(frames: Array, device) -> Tensor:
    """(N, F, side, side) -> (N, F, side^2) float32 on device."""
    n, f = frames.shape[:2]
    return torch.as_tensor(frames.reshape(n, f, -1), dtype=torch.float32, device=device)


# ---------------------------------------------------------------------------- charts, metrics

def poly_features(u: Array, degree: int) -> Array:
    """Every monomial of the columns of u (M, K) up to `degree`, the constant included ->
    (M, n_features)."""
    cols = [np.ones(len(u))]
    for d in range(1, degree + 1):
        for combo in combinations_with_replacement(range(u.shape[1]), d):
            cols.append(np.prod(u[:, combo], axis=1))
    return np.stack(cols, axis=1)


@dataclass
class Chart:
    """A polynomial map from standardised inputs; inputs and outputs are clipped to the boxes
    of the fitting data (a chart knows nothing outside them)."""

    mean: Array
    std: Array
    lo: Array
    hi: Array
    coef: Array            # (n_features, K)
    degree: int
    out_lo: Array
    out_hi: Array

    def __call__(self, u: Array) -> Array:
        """u (..., D) -> (..., K)."""
        shape = u.shape[:-1]
        flat = np.clip(u.reshape(-1, u.shape[-1]), self.lo, self.hi)
        out = poly_features((flat - self.mean) / self.std, self.degree) @ self.coef
        out = np.clip(out, self.out_lo, self.out_hi)
        return out.reshape(shape + (self.coef.shape[1],))


def fit_chart(u: Array, y: Array, degree: int) -> Chart:
    """Least squares polynomial chart u (M, D) -> y (M, K) of the given degree."""
    mean, std = u.mean(0), u.std(0) + 1e-12
    feats = poly_features((u - mean) / std, degree)
    coef, *_ = np.linalg.lstsq(feats, y, rcond=None)
    return Chart(mean, std, u.min(0), u.max(0), coef, degree, y.min(0), y.max(0))


@torch.no_grad()
def encode_all(model: PixelDynamicsAE, frames: Tensor, chunk: int = 4096) -> Array:
    """Latent of every input (frame t, frame t+1) of frames (N, F, P) -> (N, F - 1, L)."""
    n, f, p = frames.shape
    x = torch.cat([frames[:, :-1], frames[:, 1:]], dim=2).reshape(-1, 2 * p)
    z = torch.cat([model.encode(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    return z.reshape(n, f - 1, -1).double().cpu().numpy()


@torch.no_grad()
def decode_all(model: PixelDynamicsAE, z: Array, side: int, chunk: int = 4096) -> Array:
    """Decoded first frames of latents z (..., L) -> (..., side, side)."""
    device = next(model.parameters()).device
    flat = torch.as_tensor(z.reshape(-1, z.shape[-1]), dtype=torch.float32, device=device)
    x = torch.cat([model.decode(flat[i:i + chunk]) for i in range(0, len(flat), chunk)])
    return x[:, :side * side].cpu().numpy().reshape(z.shape[:-1] + (side, side))


def latent_divergence(dynamics: torch.nn.Module, z: Array) -> float:
    """mean |div f(z)| / (mean |f(z)| / std(z)) over latents z (M, L), f the latent field, in
    float64 (a scale-free number; 0 for a Hamiltonian field)."""
    model64 = copy.deepcopy(dynamics).double().eval()
    zt = torch.as_tensor(z, dtype=torch.float64).requires_grad_(True)
    f = model64.time_derivative(zt, create_graph=True)
    div = sum(torch.autograd.grad(f[:, i].sum(), zt, retain_graph=True)[0][:, i]
              for i in range(z.shape[1]))
    scale = f.detach().norm(dim=1).mean() / zt.detach().std(0).mean()
    return float(div.abs().mean() / scale)


def evaluate(model: PixelDynamicsAE, data: dict, frames_tr: Tensor, frames_te: Tensor,
             settings: PixelSettings, weights: LossWeights) -> tuple[dict, dict]:
    """The metrics of one trained model (NOTES) -> (metrics, arrays for the figure)."""
    start = time.perf_counter()
    n_train, side = data["n_train"], settings.side
    test = evaluate_losses(model, frames_te, weights)
    z_tr, z_te = encode_all(model, frames_tr), encode_all(model, frames_te)   # (N, F-1, L)
    truth = np.stack([data["truth_theta"], data["truth_omega"]], -1)[:, :-1]   # (N, F-1, 2)
    y_tr, y_te = truth[:n_train], truth[n_train:]
    e_te = data["truth_energy"][n_train:, :-1]                                 # (M, F-1)
    L = z_tr.shape[-1]
    chart = fit_chart(z_tr.reshape(-1, L), y_tr.reshape(-1, 2), settings.chart_degree)
    inverse = fit_chart(y_tr.reshape(-1, 2), z_tr.reshape(-1, L), settings.chart_degree)

    def chart_energy(z: Array) -> Array:
        s = chart(z)
        return pendulum_energy(s[..., 0], s[..., 1])

    fit_te = chart(z_te)
    z_std = float(z_te.reshape(-1, L).std(0).mean())
    metrics = {
        "test_loss": test["objective"], "test_recon": test["recon"], "test_dyn": test["dyn"],
        "test_cc": test["cc"], "test_scale": test["scale"],
        "energy_mse_encoded": float(np.mean((chart_energy(z_te) - e_te) ** 2)),
        "latent_theta_r2": r2(y_te[..., 0], fit_te[..., 0]),
        "latent_omega_r2": r2(y_te[..., 1], fit_te[..., 1]),
        "latent_inverse_r2": float(np.mean([r2(z_te[..., i], inverse(y_te)[..., i])
                                            for i in range(L)])),
        "latent_std": z_std,
    }
    dynamics = copy.deepcopy(model.dynamics).cpu()
    n_span = z_te.shape[1]
    n_long = max(settings.long_frames, n_span, *settings.horizons)
    t_long = model.cfg.frame_time * np.arange(n_long)
    pred_long, info = rollout(dynamics, z_te[:, 0], t_long)                   # (M, T_long, L)
    pred = pred_long[:, :n_span]
    e_pred_long = chart_energy(pred_long)
    e_true_long = np.repeat(e_te[:, :1], len(t_long), axis=1)
    decoded = decode_all(model, pred, side)                                    # (M, F-1, s, s)
    true_frames = data["frames"][n_train:, :-1]
    back, back_info = rollout(dynamics, pred[:, -1], t_long[:n_span][::-1])
    metrics.update({
        "energy_mse": float(np.mean((e_pred_long[:, :n_span] - e_true_long[:, :n_span]) ** 2)),
        "energy_mse_long": float(np.mean((e_pred_long[:, :settings.long_frames]
                                          - e_true_long[:, :settings.long_frames]) ** 2)),
        **{f"energy_mse_f{h}": float(np.mean((e_pred_long[:, :h] - e_true_long[:, :h]) ** 2))
           for h in settings.horizons},
        "energy_mse_start": float(np.mean((e_pred_long[:, 0] - e_true_long[:, 0]) ** 2)),
        "pixel_mse_rollout": float(np.mean((decoded - true_frames) ** 2)),
        "decoded_theta_rmse": float(np.sqrt(np.mean(
            (centroid_angle(decoded) - data["truth_theta"][n_train:, :-1]) ** 2))),
        "reversibility": float(np.mean(np.linalg.norm(back[:, -1] - z_te[:, 0], axis=-1))
                               / z_std),
        "latent_divergence": latent_divergence(dynamics, z_te.reshape(-1, L)),
        "rollout_ok": bool(info["success"] and back_info["success"]),
        "rollout_nfev": info["nfev"],
        "own_h_drift": None, "h_energy_r2_monotone": None, "h_energy_r2_affine": None,
    })
    h_te = None
    if model.cfg.dynamics == "hnn":
        h64 = copy.deepcopy(dynamics).double().eval()
        h = lambda z: h64(torch.as_tensor(z.reshape(-1, L))).detach().numpy().reshape(
            z.shape[:-1])
        h_tr, h_te, h_roll = h(z_tr), h(z_te), h(pred_long)
        e_tr = data["truth_energy"][:n_train, :-1]
        a, b = np.polyfit(h_tr.ravel(), e_tr.ravel(), 1)
        metrics.update({
            "own_h_drift": float(np.nanmax(np.abs(h_roll - h_roll[:, :1])) / h_te.std()),
            "h_energy_r2_monotone": monotone_r2(h_tr.ravel(), e_tr.ravel(), h_te.ravel(),
                                                e_te.ravel()),
            "h_energy_r2_affine": r2(e_te, a * h_te + b),
        })
    metrics["eval_seconds"] = time.perf_counter() - start
    arrays = {"z_tr": z_tr, "z_te": z_te, "pred_long": pred_long, "e_pred_long": e_pred_long,
              "e_true_long": e_true_long, "t_long": settings.dt * np.arange(len(t_long)), "h_te": h_te,
              "e_te": e_te, "model": model}
    return metrics, arrays


def latent_discovery(data: dict, arrays: dict, settings: PixelSettings, kind: str, seed: int,
                     workdir: Path) -> dict:
    """Our pipeline (train.py + discover.py) on the model's encodings of every trajectory,
    handed over as a user trajectory file (experiments/pixel_latent.py); the truth of the
    frames only scores what it found."""
    z = np.concatenate([arrays["z_tr"], arrays["z_te"]]).astype(np.float64)
    truth = {"theta": data["truth_theta"][:, :-1], "omega": data["truth_omega"][:, :-1],
             "energy": data["truth_energy"][:, :-1]}
    meta = {"source": f"pixel pendulum: encodings of the {kind} model (seed {seed})"}
    with contextlib.redirect_stdout(io.StringIO()):      # train.py's own summary line
        return discover_on_latents(z, settings.dt * np.arange(z.shape[1]), data["n_train"],
                                   truth, workdir, meta)


# ---------------------------------------------------------------------------- one seed

def split_model(kind: str) -> tuple[str, str]:
    """A model's name -> (latent dynamics, loss step): "hnn+rk4" -> ("hnn", "rk4")."""
    dynamics, plus, suffix = kind.partition("+")
    return dynamics, LOSS_STEPS[plus + suffix]


def model_config(settings: PixelSettings, kind: str) -> PixelConfig:
    dynamics, loss_step = split_model(kind)
    return PixelConfig(side=settings.side, hidden_dim=settings.hidden_dim, dynamics=dynamics,
                       dyn_hidden_dim=settings.dyn_hidden_dim, frame_time=settings.frame_time,
                       loss_step=loss_step)


def run_seed(settings: PixelSettings, seed: int, device, progress: bool = False,
             save_data: Path | None = None, checkpoints: Path | None = None
             ) -> tuple[list[dict], dict, dict]:
    """Render one seed's data set, train and score every model -> (rows, arrays per model,
    data). checkpoints: a folder for <model>__s<seed>.pt (config and weights: enough to
    rebuild the model) and for the latent discovery's work folders, latent_<model>_s<seed>/
    (settings.discover); or None: neither is written and no discovery runs."""
    data_seed, init_seed, batch_seed = task_seeds(TASK, seed)
    t0 = time.perf_counter()
    data = make_dataset(settings, np.random.default_rng(data_seed))
    render_seconds = time.perf_counter() - t0
    if save_data is not None:
        save_dataset(save_data / f"pixel_pendulum_s{seed}.npz", data)
    n_train = settings.n_train
    frames_tr = frame_tensor(data["frames"][:n_train], device)
    frames_te = frame_tensor(data["frames"][n_train:], device)
    weights = LossWeights(dynamics=settings.dynamics_weight,
                          canonical=settings.canonical_weight, scale=settings.scale_weight)
    rows, arrays = [], {}
    for kind in settings.models:
        model = PixelDynamicsAE(model_config(settings, kind),
                                generator=torch.Generator().manual_seed(init_seed)).to(device)
        model.set_pixel_scale(frames_tr)
        hist = fit_pixel(model, frames_tr, steps=settings.steps, batch_size=settings.batch_size,
                         lr=settings.lr, weight_decay=settings.weight_decay, weights=weights,
                         generator=torch.Generator().manual_seed(batch_seed),
                         frames_test=frames_te, log_every=settings.log_every,
                         lr_schedule=settings.lr_schedule, progress=progress,
                         desc=f"seed {seed} {kind}")
        metrics, arrays[kind] = evaluate(model, data, frames_tr, frames_te, settings, weights)
        if settings.discover and checkpoints is not None:
            metrics["latent_discovery"] = latent_discovery(
                data, arrays[kind], settings, kind, seed,
                checkpoints / f"latent_{kind}_s{seed}")
        train = hist["final_train"]
        rows.append({"task": TASK, "model": kind, "seed": seed,
                     "train_loss": train["objective"], "train_recon": train["recon"],
                     "train_dyn": train["dyn"], "train_cc": train["cc"],
                     "train_scale": train["scale"], **metrics,
                     "wall_time": hist["seconds"], "cpu_time": hist["cpu_seconds"],
                     "steps_per_s": hist["steps_per_s"], "render_seconds": render_seconds,
                     "history": {"step": hist["step"],
                                 "train_loss": [h["objective"] for h in hist["train"]],
                                 "test_loss": [h["objective"] for h in hist["test"]]}})
        if checkpoints is not None:
            atomic_torch_save(checkpoints / f"{kind}__s{seed}.pt",
                              {"model_config": asdict(model.cfg),
                               "model_state": {k: v.cpu() for k, v in
                                               model.state_dict().items()},
                               "settings": asdict(settings), "seed": seed})
    return rows, arrays, data


# ---------------------------------------------------------------------------- table, figure

def check_targets(summary: list[dict]) -> dict:
    """The issue's targets on means over seeds, for the paper's row (the models baseline and
    hnn, trained with the paper's loss): HNN energy MSE at most the paper's 1.5e-4 and at
    least 10x below our baseline; latent H vs true energy R^2 at least 0.99. The RK4-loss
    pair's ratios are in horizon_ratios (reported, not a target)."""
    by = {r["model"]: r for r in summary}
    if "hnn" not in by:
        return {}
    hnn = by["hnn"]
    out = {"hnn energy MSE <= paper's": {"hnn": hnn["energy_mse"],
                                         "paper": PAPER[TASK]["hnn"]["energy_mse"],
                                         "pass": hnn["energy_mse"]
                                         <= PAPER[TASK]["hnn"]["energy_mse"]},
           "latent H vs true energy R^2 >= 0.99": {
               "r2": hnn.get("h_energy_r2_monotone"),
               "pass": (hnn.get("h_energy_r2_monotone") or 0) >= 0.99}}
    if "baseline" in by:
        ratio = by["baseline"]["energy_mse"] / hnn["energy_mse"]
        out["baseline / hnn energy MSE >= 10"] = {"ratio": ratio, "pass": ratio >= 10}
    return out


def horizon_ratios(summary: list[dict]) -> dict:
    """Baseline over HNN energy MSE (means over seeds) at every horizon measured (the data
    span, then 200, 400 (energy_mse_long) and 1000 frames), per loss step whose pair of
    models ran: {"euler": {"span": ..., "200": ...}, "rk4": {...}}. Reported, not a target."""
    by = {r["model"]: r for r in summary}
    keys = {"span": "energy_mse", "200": "energy_mse_f200", "400": "energy_mse_long",
            "1000": "energy_mse_f1000"}
    out = {}
    for suffix, step in LOSS_STEPS.items():
        base, hnn = by.get("baseline" + suffix), by.get("hnn" + suffix)
        if base and hnn:
            out[step] = {h: base[k] / hnn[k] for h, k in keys.items()
                         if base.get(k) and hnn.get(k)}
    return out


def _pm(r: dict, key: str) -> str:
    if r.get(key) is None:
        return "n/a"
    return f"{r[key]:.2e} ± {r.get(key + '_std', 0):.1e}"


def format_table(summary: list[dict]) -> str:
    """One line per model: mean ± sample std over seeds, the paper's energy MSE beside ours."""
    head = (f"{'model':<12} {'train loss':>18} {'test loss':>18} {'energy MSE':>18} {'paper':>7} "
            f"{'E-MSE 400 fr.':>18} {'E-MSE encoded':>18} {'R2 H~E':>7} {'R2 th/om':>11} "
            f"{'train s':>7}")
    lines = [head, "-" * len(head)]
    for r in summary:
        paper = f"{r['paper_energy_mse']:.1e}" if r.get("paper_energy_mse") else "n/a"
        hr2 = f"{r['h_energy_r2_monotone']:.4f}" if r.get("h_energy_r2_monotone") else "n/a"
        lines.append(f"{r['model']:<12} {_pm(r, 'train_loss'):>18} {_pm(r, 'test_loss'):>18} "
                     f"{_pm(r, 'energy_mse'):>18} {paper:>7} {_pm(r, 'energy_mse_long'):>18} "
                     f"{_pm(r, 'energy_mse_encoded'):>18} {hr2:>7} "
                     f"{r['latent_theta_r2']:.3f}/{r['latent_omega_r2']:.3f} "
                     f"{r['wall_time']:>7.1f}")
    return "\n".join(lines)


COLORS = {"truth": "black", "baseline": "tab:red", "hnn": "tab:blue",
          "baseline+rk4": "tab:orange", "hnn+rk4": "tab:green"}
LABELS = {"truth": "truth", "baseline": "baseline", "hnn": "HNN",
          "baseline+rk4": "baseline, RK4 loss", "hnn+rk4": "HNN, RK4 loss"}


def plot_pixel(settings: PixelSettings, data: dict, arrays: dict, path: Path,
               traj: int = 0, n_show: int = 3, n_strip: int = 10) -> Path:
    """Top: one held-out trajectory over settings.long_frames frames, true frames vs each
    model's decoded rollout (the paper's Figure 4). Bottom: the true energy (chart read-out) along the
    rollouts of a few held-out trajectories; the HNN's latent H against the true energy on
    the held-out inputs; the held-out encodings in each latent plane."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in MODELS if k in arrays]
    first = arrays[kinds[0]]
    t_long = first["t_long"]
    n_train = data["n_train"]
    theta0 = data["truth_theta"][n_train + traj, 0]
    omega0 = data["truth_omega"][n_train + traj, 0]
    theta_long, _ = true_motion(np.array([theta0]), np.array([omega0]), len(t_long),
                                settings.dt)
    idx = np.linspace(0, len(t_long) - 1, n_strip).astype(int)
    strips = [("truth", render_frames(theta_long[0, idx], settings.side, settings.supersample))]
    for kind in kinds:
        z = arrays[kind]["pred_long"][traj, idx]
        strips.append((kind, decode_all(arrays[kind]["model"], z, settings.side)))
    fig = plt.figure(figsize=(16, 9.5))
    grid = fig.add_gridspec(2, 4, height_ratios=[1.0, 1.2])
    ax = fig.add_subplot(grid[0, :])
    mosaic = np.concatenate([np.concatenate(list(np.clip(s, 0, 1)), axis=1)
                             for _, s in strips], axis=0)
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([(i + 0.5) * settings.side for i in range(len(strips))],
                  [LABELS[k] for k, _ in strips])
    ax.set_xticks([(i + 0.5) * settings.side for i in range(n_strip)],
                  [f"{t_long[i]:.1f}s" for i in idx])
    ax.set_title("a held-out trajectory: true frames vs decoded latent rollouts "
                 f"(data span {settings.dt * (settings.frames - 2):.1f} s)")
    ax = fig.add_subplot(grid[1, 0:2])
    shown = min(n_show, first["e_true_long"].shape[0])
    for i in range(shown):
        ax.plot(t_long, first["e_true_long"][i], color=COLORS["truth"], lw=2.5, alpha=0.5,
                label=LABELS["truth"] if i == 0 else None)
        for kind in kinds:
            ax.plot(t_long, arrays[kind]["e_pred_long"][i], color=COLORS[kind], lw=1.2,
                    label=LABELS[kind] if i == 0 else None)
    ax.axvline(settings.dt * (settings.frames - 2), color="0.5", ls="--", lw=1,
               label="end of the data")
    ax.set(xlabel="t (s)", ylabel="true energy (J), read through the chart",
           title=f"energy along the rollouts of {shown} held-out trajectories")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, 2])
    hnn = next((k for k in kinds if arrays[k]["h_te"] is not None), None)
    if hnn is not None:
        ax.plot(arrays[hnn]["h_te"].ravel(), arrays[hnn]["e_te"].ravel(), ".", ms=1.5,
                color=COLORS[hnn])
        ax.set(xlabel=f"latent H(z) of the {LABELS[hnn]}", ylabel="true energy (J)",
               title="held-out inputs: latent H vs true E")
    ax = fig.add_subplot(grid[1, 3])
    for kind, marker in zip(kinds[:2], ("o", "s")):     # the first pair: one plane is enough
        z = arrays[kind]["z_te"]
        ax.scatter(z[..., 0].ravel(), z[..., 1].ravel(), c=arrays[kind]["e_te"].ravel(), s=1,
                   cmap="viridis", marker=marker)
        ax.plot(arrays[kind]["pred_long"][0, :, 0], arrays[kind]["pred_long"][0, :, 1],
                color=COLORS[kind], lw=1, label=f"{LABELS[kind]} rollout")
    ax.set(xlabel="q (latent)", ylabel="p (latent)",
           title="held-out encodings (colour: true E)")
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=80)


# ---------------------------------------------------------------------------- entry points

def run_pixel(settings: PixelSettings, seeds: Sequence[int], out_json: str | Path,
              plots_dir: str | Path, device=None, quiet: bool = False, threads: int = 1,
              save_data: Path | None = None, checkpoints: Path | None = None) -> dict:
    """Train and score every model of `settings` with every seed; write the JSON, the
    figure (seed seeds[0]) and, if `checkpoints` is a folder, each trained model there.
    Returns the dict written to out_json."""
    if not seeds:
        fail("need at least one seed")
    device = device or torch.device("cpu")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    runs, figure = [], None
    start = time.perf_counter()
    try:
        for j, seed in enumerate(seeds):
            rows, arrays, data = run_seed(settings, seed, device, progress=not quiet,
                                          save_data=save_data, checkpoints=checkpoints)
            runs.extend(rows)
            if not quiet:
                for r in rows:
                    h = (f" own-H drift {r['own_h_drift']:.1e} R2(H~E) "
                         f"{r['h_energy_r2_monotone']:.4f}" if split_model(r["model"])[0] == "hnn" else "")
                    print(f"seed {seed} {r['model']:>12}: train {r['train_loss']:.2e} test "
                          f"{r['test_loss']:.2e} energy MSE {r['energy_mse']:.2e} (400 frames "
                          f"{r['energy_mse_long']:.2e}, encoded {r['energy_mse_encoded']:.2e})"
                          f"{h} ({r['wall_time']:.0f} s train, {r['eval_seconds']:.0f} s eval)",
                          flush=True)
                    if r.get("latent_discovery"):
                        print(f"  {summary_line(r['latent_discovery'])}", flush=True)
            if j == 0:
                figure = plot_pixel(settings, data, arrays,
                                    Path(plots_dir) / "hnn_pixel_pendulum.png")
    finally:
        torch.set_num_threads(old_threads)
    summary = summarise(runs, SUMMARY_KEYS, PAPER)
    result = {
        "protocol": {"task": TASK, "settings": asdict(settings), "seeds": list(seeds),
                     "threads": threads, "device": str(device), "gym": GYM,
                     "pendulum_params": PENDULUM_PARAMS, "notes": list(NOTES), "paper": PAPER},
        "environment": environment_info(),
        "summary": summary,
        "hnn_table": dashboard_rows(summary),
        "targets_check": check_targets(summary),
        "baseline_over_hnn_by_horizon": horizon_ratios(summary),
        "runs": runs,
        "figures": {TASK: str(figure)},
        "seconds": time.perf_counter() - start,
    }
    atomic_write_json(out_json, result)
    if not quiet:
        print()
        print(format_table(summary))
        for name, c in result["targets_check"].items():
            print(f"target {name}: {'PASS' if c['pass'] else 'MISS'} "
                  f"({', '.join(f'{k} {v:.3g}' for k, v in c.items() if k != 'pass' and v is not None)})")
        for step, ratios in result["baseline_over_hnn_by_horizon"].items():
            print(f"baseline / HNN energy MSE by horizon (frames), {step} loss: "
                  + ", ".join(f"{h} {v:.2g}x" for h, v in ratios.items()))
        print(f"-> {out_json}")
    return result


@dataclass
class PixelFlags:
    """Flags of experiments/pixel_pendulum.py."""

    seeds: list[int] = flag([1, 2, 3], "seeds (each draws its own data, weights and batches; "
                                       "seed 0 was the development seed, NOTES)")
    models: list[str] = flag(list(MODELS), f"models, of {', '.join(MODELS)}")
    steps: int | None = flag(None, "AdamW steps (default 6000, --quick 60)")
    n_traj: int | None = flag(None, "trajectories in all (default 200; the first 80 per cent train)")
    results_dir: Path | None = flag(None, "where hnn_pixel.json goes (default results/, or "
                                          "results/quick)")
    plots_dir: Path | None = flag(None, "where hnn_pixel_pendulum.png goes (default plots/, or "
                                        "plots/quick)")
    lr_schedule: str = flag("cosine", "learning rate schedule (the paper: constant)",
                            choices=("cosine", "constant"))
    dynamics_weight: float = flag(30.0, "weight of the latent dynamics (HNN) loss")
    canonical_weight: float = flag(30.0, "weight of the auxiliary loss p ~ dq/dt")
    frame_time: float = flag(0.2, "latent time per frame (1 = the paper's code)")
    save_data: bool = flag(False, "also write each seed's frames and truth_* arrays to "
                                  "<results-dir>/pixel_pendulum_s<seed>.npz")
    device: str = flag("auto", "auto (CUDA when present), cpu or cuda")
    quick: bool = flag(False, "tiny data, networks and step counts: a smoke run in seconds")
    threads: int = flag(1, "torch threads while training")
    no_discover: bool = flag(False, "skip our discovery (train.py + discover.py) on each "
                                    "model's latent trajectories (about 25 s per model)")
    quiet: bool = flag(False, "no progress bars, per-run lines or table")


def parse_args(argv=None) -> PixelFlags:
    """The flags, checked: every bad value is one line (UsageError), before anything runs."""
    args = parse_flags(PixelFlags, argv, describe(__doc__))
    require_known(args.models, MODELS, "model(s)")
    require_at_least(args, 1, "steps", "threads")
    require_at_least(args, 5, "n_traj")
    require_seeds(args)
    for name in ("dynamics_weight", "canonical_weight"):
        if not getattr(args, name) >= 0:
            fail(f"--{name.replace('_', '-')} must be non-negative, got {getattr(args, name)}")
    if not args.frame_time > 0:
        fail(f"--frame-time must be positive, got {args.frame_time}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = get_device(args.device)
    settings = PixelSettings(models=tuple(dict.fromkeys(args.models)),
                             lr_schedule=args.lr_schedule, dynamics_weight=args.dynamics_weight,
                             canonical_weight=args.canonical_weight,
                             frame_time=args.frame_time, discover=not args.no_discover)
    if args.quick:
        settings = quick_settings(settings)
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    if args.n_traj is not None:
        settings = replace(settings, n_traj=args.n_traj,
                           n_train=max(1, min(args.n_traj - 1, round(0.8 * args.n_traj))))
    sub = "quick" if args.quick else ""
    results_dir = check_output_dir(args.results_dir or (RESULTS_DIR / sub), "--results-dir")
    out_json = check_output_file(Path(results_dir) / "hnn_pixel.json", "--results-dir:")
    plots_dir = check_output_dir(args.plots_dir or (PLOTS_DIR / sub), "--plots-dir")
    if not args.quiet:
        print(f"pixel_pendulum: {settings}, seeds {args.seeds}, device {device}, "
              f"threads {args.threads}")
    return run_pixel(settings, args.seeds, out_json, plots_dir, device=device,
                     quiet=args.quiet, threads=args.threads,
                     save_data=Path(results_dir) if args.save_data else None,
                     checkpoints=Path(results_dir) / "pixel_pendulum")


if __name__ == "__main__":
    sys.exit(cli(main)())
