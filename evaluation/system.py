"""Evaluation of one system: its discovered laws against the truth, rollouts of its trained
runs and their energy drift, its training runs, its latent space and its ablations.

`args` below is evaluate.py's EvaluateFlags.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from data.loader import Trajectories, load_trajectories
from evaluation.metrics import (affine_fit, assess_equation, evaluate_expression, parse_formula,
                                relative_drift)
from evaluation.truth import Truth, read_truth
from runs import Run, TrainedModel, check_run_fits, data_key, find_data_runs, pick_run
from utils import fail, read_json

DRIFT_TARGET = 10.0         # physics-aware drift must be at least this many times smaller
# Kinds of equation discover.py writes: laws (counted), approximate ones (listed, never
# counted) and descriptions of the latent space.
EQUATION_KINDS = ("energy", "invariant", "approximate", "latent")


@dataclass
class SystemResult:
    """Metrics (JSON) and the arrays the plots and the dashboard draw."""

    name: str
    metrics: dict
    data: Trajectories
    truth: Truth
    test_idx: np.ndarray                       # indices of the evaluated held-out trajectories
    rollouts: dict = field(default_factory=dict)        # "standard"/"physics" -> (N, T, D)
    energies: dict = field(default_factory=dict)        # "true"/"standard"/"physics" -> (N, T)
    runs: dict = field(default_factory=dict)            # "standard"/"physics" -> Run
    latent: dict | None = None                          # {"scores", "colours", ...}
    discovered: dict | None = None
    energy_label: str | None = None                     # what res.energies measure


@dataclass
class Held:
    """The held-out trajectories one system is evaluated on."""

    test: np.ndarray            # (N,) their indices in the file
    clean: np.ndarray           # (N, T, D) clean states (observed when there is no truth)
    observed: np.ndarray        # (N, T, D)
    truth: np.ndarray | None    # (N, T, K) true invariants
    sample_idx: np.ndarray      # flat indices of the states the equation metrics use
    prefix: int                 # observed steps a rollout starts from
    scale: np.ndarray           # (D,) spread of each variable, for rollout errors


class Rollouts:
    """Trained models and their rollouts, each computed once per run."""

    def __init__(self, held: Held):
        self.held = held
        self.models: dict[str, TrainedModel] = {}
        self.rolled: dict[str, np.ndarray] = {}

    def model(self, run: Run) -> TrainedModel:
        key = str(run.dir)
        if key not in self.models:
            import torch

            # Rollouts are many tiny sequential steps: on a shared 2-core machine one thread
            # was many times faster than two.
            torch.set_num_threads(1)
            self.models[key] = TrainedModel(run.dir)
        return self.models[key]

    def of(self, run: Run) -> np.ndarray:
        key = str(run.dir)
        if key not in self.rolled:
            self.rolled[key] = self.model(run).rollout(self.held.observed, self.held.prefix,
                                                       project=run.physics_aware)
        return self.rolled[key]

    def nrmse(self, run: Run) -> float:
        p = self.held.prefix
        err = (self.of(run)[:, p:] - self.held.clean[:, p:]) / self.held.scale
        return float(np.sqrt(np.nanmean(err ** 2)))


@dataclass
class Inputs:
    """What evaluate_system needs of one system, all read and checked before the work."""

    system: str                 # as given on the command line
    key: str                    # its data key (runs.data_key): names its results and plots
    data: Trajectories
    truth: Truth
    discovered: dict            # its entry of discovered_equations.json
    runs: list[Run]


def check_inputs(args) -> list[Inputs]:
    """Load every system's data, truth, discovered equations and runs first, so that a bad or
    missing piece is reported (with the command that makes it) before any long computation
    and before anything is written."""
    results_dir = Path(args.results_dir)
    disc_path = results_dir / "discovered_equations.json"
    discovered = read_json(disc_path, None)
    if discovered is not None and not isinstance(discovered, dict):
        fail(f"{disc_path} is not a JSON object of discovered entries: run discover.py again")
    out: list[Inputs] = []
    for system in args.systems:
        data = load_trajectories(system, args.data_dir, with_truth=True)
        key = data_key(data.source, args.data_dir)
        if key in [i.key for i in out]:
            fail(f"--systems names the data '{key}' twice")
        truth = read_truth(data)
        T = data.states.shape[1]
        if args.prefix >= T - 1:
            fail(f"--prefix {args.prefix} leaves nothing to predict in {key} ({T} steps per "
                 "trajectory)")
        if not (len(data.indices("test")) or len(data.indices("val"))):
            fail(f"{data.source}: its split holds no 'test' or 'val' trajectory to evaluate on")
        runs = find_data_runs(results_dir, key, data.source)
        if not runs:
            fail(f"no trained PhysicsNet run for '{key}' in {results_dir}/runs: run "
                 f"`python train.py --system {system} --tag physics-aware` and "
                 f"`python train.py --system {system} --energy-weight 0.0 --tag standard` first")
        for run in runs:        # every checkpoint is read (safely) before the work
            check_run_fits(run.dir, data.names)
        if discovered is None:
            fail(f"no {disc_path}: run `python discover.py --system {system}` first")
        if key not in discovered:
            fail(f"{disc_path} has no entry for '{key}': run "
                 f"`python discover.py --system {system}` first")
        disc = discovered[key]
        check_discovered(disc, data.names, f"{disc_path} ['{key}']", system)
        out.append(Inputs(system, key, data, truth, disc, runs))
    return out


def check_discovered(disc, names: list[str], where: str, system: str) -> None:
    """Fail with one line unless a discovered entry has the fields the evaluation reads, of
    the right types, and every formula in it parses (utils.parse_expression: no Python is
    ever evaluated, so a crafted results file cannot run code)."""
    again = f"run `python discover.py --system {system}` again"
    if not isinstance(disc, dict):
        fail(f"{where} is not an object: {again}")
    if list(disc.get("variables") or []) != list(names):
        fail(f"{where} has variables {str(disc.get('variables'))[:80]} but the data have "
             f"{names}: {again}")
    derived = disc.get("derived_inputs") or {}
    if not isinstance(derived, dict) or not all(isinstance(v, str) for v in derived.values()):
        fail(f"{where}: derived_inputs must be an object of formula strings: {again}")
    equations, rejected = disc.get("equations"), disc.get("rejected") or []
    if not isinstance(equations, list) or not all(isinstance(e, dict) for e in equations):
        fail(f"{where}: equations must be a list of objects: {again}")
    if not isinstance(rejected, list) or not all(isinstance(r, dict) for r in rejected):
        fail(f"{where}: rejected must be a list of objects: {again}")
    number = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
    for field_name in ("n_conserved", "threshold", "baseline_ratio"):
        if not number(disc.get(field_name)):
            fail(f"{where}: {field_name} must be a number: {again}")
    for k, eq in enumerate(equations):
        label = f"{where} equation {k}"
        if eq.get("kind") not in EQUATION_KINDS or not isinstance(
                eq.get("name"), str) or not isinstance(eq.get("expression"), str):
            fail(f"{label}: needs a kind ({'/'.join(EQUATION_KINDS)}), a name and an "
                 f"expression: {again}")
        if not (number(eq.get("complexity")) and number(eq.get("conservation_ratio"))):
            fail(f"{label}: complexity and conservation_ratio must be numbers: {again}")
        front = eq.get("pareto") or []
        if not isinstance(front, list) or not all(
                isinstance(f, dict) and number(f.get("complexity")) and number(f.get("loss"))
                and f.get("complexity") is not None for f in front):
            fail(f"{label}: pareto must be a list of objects with numeric complexity and loss: "
                 f"{again}")
        try:
            parse_formula(eq["expression"], list(names), derived)
        except ValueError as err:
            fail(f"{label} ({eq['name']}): {err}"[:400])


def held_out(data: Trajectories, truth: Truth, args, rng: np.random.Generator) -> Held:
    test = data.indices("test")
    if len(test) == 0:
        test = data.indices("val")
    test = test[:args.max_traj]
    T = data.states.shape[1]
    clean = truth.clean[test]                                       # (N, T, D)
    n_flat = clean.shape[0] * T
    sample_idx = np.sort(rng.choice(n_flat, size=min(20_000, n_flat), replace=False))
    scale = data.states.reshape(-1, data.dim).std(axis=0)
    return Held(test, clean, data.states[test],
                truth.values[test] if truth.available else None, sample_idx, args.prefix,
                np.where(scale > 0, scale, 1.0))


def evaluate_system(inputs: Inputs, args, log) -> SystemResult:
    system, data, disc, runs, truth = (inputs.system, inputs.data, inputs.discovered,
                                       inputs.runs, inputs.truth)
    rng = np.random.default_rng(args.seed)
    held = held_out(data, truth, args, rng)
    res = SystemResult(inputs.key, {}, data, truth, held.test, discovered=disc)

    # 1. discovered equations vs truth
    equations = [assess_equation(eq, disc, truth, held.clean, held.truth, held.sample_idx)
                 for eq in disc.get("equations", [])]

    # 2. rollouts and energy drift of the standard and the physics-aware run
    std_run, phys_run = pick_run(runs, physics=False), pick_run(runs, physics=True)
    for kind, run, cmd in (("standard", std_run, "--energy-weight 0.0 --tag standard"),
                           ("physics", phys_run, "--tag physics-aware")):
        if run is None:
            log(f"  {inputs.key}: no {kind} run; make one with "
                f"`python train.py --system {system} {cmd}`")
    rollouts = Rollouts(held)
    energy_fn, res.energy_label = drift_energy(truth, disc)
    drift = drift_metrics(res, held, rollouts, {"standard": std_run, "physics": phys_run},
                          energy_fn)

    # 3. training, 4. latent space of the physics-aware run (or whatever run there is)
    training = [training_summary(r) for r in runs]
    lat_run = phys_run or std_run
    latent = None
    if lat_run is not None:
        latent, res.latent = latent_analysis(rollouts.model(lat_run), held, truth, equations,
                                             disc, rng)
        latent["run"] = lat_run.dir.name

    # 5. ablations: every run of this data file
    ablation = ([ablation_row(run, disc, truth, held, rollouts, energy_fn) for run in runs]
                if len(runs) > 1 else [])

    res.metrics = {
        "source": data.source, "system": truth.system, "has_truth": truth.available,
        "variables": data.names, "canonical": data.canonical,
        "n_test_trajectories": int(len(held.test)), "steps": int(data.states.shape[1]),
        "truth": ({"invariants": truth.names, "expressions": truth.expressions,
                   "params": truth.params} if truth.available else None),
        "discovery": {"run": disc.get("run"), "backend": disc.get("backend"),
                      "n_conserved": disc.get("n_conserved"), "threshold": disc.get("threshold"),
                      "derived_inputs": disc.get("derived_inputs"),
                      "rejected": [{"name": r.get("name"), "expression": r.get("expression"),
                                    "reason": r.get("reason")} for r in disc.get("rejected", [])]},
        "equations": equations, "drift": drift, "training": training, "latent": latent,
        "ablation": ablation,
    }
    return res


def drift_energy(truth: Truth, disc: dict) -> tuple[Callable | None, str | None]:
    """The energy the drift is measured with: the true one, or without ground truth the
    discovered one (a data-based check, labelled as such and kept out of the dashboard's
    true-energy fields)."""
    if truth.energy_fn is not None:
        return truth.energy_fn, "true energy (simulator registry)"
    energy_fn = discovered_energy_fn(disc)
    return energy_fn, ("discovered energy (no ground truth)" if energy_fn else None)


def drift_metrics(res: SystemResult, held: Held, rollouts: Rollouts, runs: dict,
                  energy_fn: Callable | None) -> dict:
    """Energy drift and state error of each run's rollout; fills res.rollouts/energies/runs."""
    prefix = held.prefix
    drift: dict = {"prefix": prefix, "n_traj": int(len(held.test)), "standard": None,
                   "physics": None, "data": None, "ratio": None, "target": DRIFT_TARGET,
                   "target_met": None, "energy": res.energy_label}
    e_true = None
    if energy_fn is not None:
        e_true = energy_fn(held.clean)                              # (N, T)
        res.energies["true"] = e_true
        drift["data"] = relative_drift(e_true, e_true[:, 0], prefix)   # the data's own
    for kind, run in runs.items():
        if run is None:
            continue
        res.runs[kind] = run
        traj = rollouts.of(run)
        res.rollouts[kind] = traj
        row = {"run": run.dir.name, "tag": run.tag, "beta": run.beta,
               "projected": run.physics_aware, "state_nrmse": rollouts.nrmse(run)}
        if e_true is not None:
            e_pred = energy_fn(traj)
            res.energies[kind] = e_pred
            row.update(relative_drift(e_pred, e_true[:, 0], prefix))
            row["energy_mse"] = float(np.nanmean((e_pred[:, prefix:] - e_true[:, prefix:]) ** 2))
            if run.physics_aware:
                row["energy_head"] = head_fidelity(rollouts.model(run), held.clean, e_true)
        drift[kind] = row
    s, p = drift["standard"], drift["physics"]
    if s and p and s.get("mean") is not None and p.get("mean") is not None:
        drift["ratio"] = s["mean"] / p["mean"] if p["mean"] > 0 else float("inf")
        drift["target_met"] = bool(drift["ratio"] >= DRIFT_TARGET)
    return drift


def head_fidelity(model: TrainedModel, clean: np.ndarray, e_true: np.ndarray) -> dict:
    """A projected rollout keeps E_hat, so its drift in E is bounded by how well E_hat follows
    E: the residual of the best affine map, in units of E's spread."""
    e_hat = model.energy(clean)
    r2, a, b = affine_fit(e_hat, e_true)
    resid = (e_hat - a * e_true - b).std() if r2 else None
    return {"r2": r2, "residual_over_spread":
            float(resid / (abs(a) * e_true.std())) if r2 else None}


def ablation_row(run: Run, disc: dict, truth: Truth, held: Held, rollouts: Rollouts,
                 energy_fn: Callable | None) -> dict:
    row = {"run": run.dir.name, "tag": run.tag, "beta": run.beta,
           "latent_dim": run.latent_dim, "seed": run.flags.get("seed"),
           "epochs": (run.summary or {}).get("epochs"),
           "final_val_loss": training_summary(run)["final_val_loss"],
           "drift_mean": None, "state_nrmse": rollouts.nrmse(run), "energy_r2": None,
           "energy_structure_match": None, "n_conserved": None}
    if energy_fn is not None:
        e_true = energy_fn(held.clean)
        row["drift_mean"] = relative_drift(energy_fn(rollouts.of(run)), e_true[:, 0],
                                           held.prefix)["mean"]
    own = read_json(run.dir / "discovered.json", None)
    if own is None and disc.get("run") and Path(disc["run"]).name == run.dir.name:
        own = disc
    if own:
        row["n_conserved"] = own.get("n_conserved")
        energy = next((e for e in own.get("equations", []) if e.get("kind") == "energy"), None)
        if energy is not None and held.truth is not None:
            a = assess_equation(energy, own, truth, held.clean, held.truth, held.sample_idx)
            row["energy_r2"], row["energy_structure_match"] = a["r2"], a["structure_match"]
    return row


def training_summary(run: Run) -> dict:
    s = run.summary or {}
    rows = run.metrics_rows()
    last = rows[-1] if rows else {}
    final = s.get("final") or {k: v for k, v in last.items() if "/" in k}
    seconds = s.get("train_seconds")
    if seconds is None and rows:
        seconds = float(sum(r.get("epoch_seconds") or 0 for r in rows))
    return {"run": run.dir.name, "tag": run.tag, "beta": run.beta, "latent_dim": run.latent_dim,
            "seed": run.flags.get("seed"), "epochs": s.get("epochs", last.get("epoch")),
            "epochs_asked": run.flags.get("epochs"),
            "device": s.get("device", run.config.get("device")),
            "parameters": s.get("parameters"), "train_seconds": seconds,
            "train_cpu_seconds": s.get("train_cpu_seconds"),
            "wall_seconds": s.get("wall_seconds"),
            "final_train_loss": final.get("train/total"), "final_val_loss": final.get("val/total"),
            "final": final, "finished": run.summary is not None}


def discovered_energy_fn(disc: dict) -> Callable[[np.ndarray], np.ndarray] | None:
    """The discovered energy formula as a function of states (..., D), or None."""
    eq = next((e for e in disc.get("equations", []) if e.get("kind") == "energy"), None)
    if eq is None:
        return None
    try:
        expr = parse_formula(eq["expression"], disc["variables"], disc.get("derived_inputs"))
    except (ValueError, KeyError):
        return None
    return lambda states: evaluate_expression(expr, disc["variables"], states)


def latent_analysis(model: TrainedModel, held: Held, truth: Truth, equations: list[dict],
                    disc: dict, rng: np.random.Generator) -> tuple[dict, dict]:
    """PCA of the latent of held-out trajectories; |corr| of the leading components with each
    true invariant. Returns (metrics, arrays for plots/dashboard)."""
    from sklearn.decomposition import PCA

    z = model.latent(held.observed, chunk=256)                     # (N, T, L)
    flat = z.reshape(-1, z.shape[-1])
    n_comp = min(5, flat.shape[1], flat.shape[0])
    pca = PCA(n_components=n_comp, random_state=0).fit(flat)
    scores = pca.transform(flat)                                   # (N*T, n_comp)
    corr = {}
    colours: dict[str, np.ndarray] = {}
    if held.truth is not None:
        inv = held.truth.reshape(-1, held.truth.shape[-1])
        for k, name in enumerate(truth.names):
            colours[f"true {name}" if name != "E" else "true energy"] = inv[:, k]
            corr[name] = [_abs_corr(scores[:, j], inv[:, k]) for j in range(min(3, n_comp))]
    variables = disc.get("variables") or []
    for eq in equations:
        if eq["kind"] not in ("energy", "invariant") or eq.get("error"):
            continue
        try:
            expr = parse_formula(eq["expression"], variables, disc.get("derived_inputs"))
        except ValueError:
            continue
        colours[f"{eq['name']} (discovered)"] = evaluate_expression(
            expr, variables, held.clean).reshape(-1)
    T = z.shape[1]
    colours.setdefault("time step", np.tile(np.arange(T, dtype=float), z.shape[0]))
    keep = np.sort(rng.choice(len(scores), size=min(1500, len(scores)), replace=False))
    metrics = {"latent_dim": int(z.shape[-1]),
               "explained_variance": pca.explained_variance_ratio_.tolist(),
               "abs_corr": corr}
    arrays = {"scores": scores, "keep": keep, "colours": colours,
              "explained": pca.explained_variance_ratio_}
    return metrics, arrays


def _abs_corr(a: np.ndarray, b: np.ndarray) -> float | None:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return None
    return float(abs(np.corrcoef(a[ok], b[ok])[0, 1]))
