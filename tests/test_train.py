"""train.py end to end on tiny data: run folder, learning, resume, flags, errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from data.loader import load_trajectories
from data.simulate import simulate
from models.averaging import WeightAverage
from models.physics_net import PhysicsNet, PhysicsNetConfig
from runs import load_model as load_run
from utils import ROOT, UsageError, atomic_write_npz

torch.set_num_threads(2)
PY = sys.executable
TINY = ["--epochs", "3", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """spring (D=2) and orbit (D=4) with 40 trajectories of 24 steps, written like simulate.py."""
    out = tmp_path_factory.mktemp("data")
    for name in ("spring", "orbit"):
        atomic_write_npz(out / f"{name}.npz", **simulate(name, n_traj=40, steps=24, seed=1))
    return out


def run(data_dir: Path, results: Path, *flags: str) -> tuple[torch.nn.Module, dict]:
    cfg = train.parse_config(["--data-dir", str(data_dir), "--results-dir", str(results),
                             *TINY, *flags])
    return train.train(cfg)


def exit_code(argv: list[str], capsys) -> tuple[int, str]:
    code = train.cli(train.main)(argv)
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------------- a run

def test_run_folder_and_checkpoint_rebuild(data_dir, tmp_path):
    model, stats = run(data_dir, tmp_path, "--system", "orbit", "--tag", "t1")
    run_dir = tmp_path / "runs" / "orbit__physicsnet__t1__s0"
    assert Path(stats["run_dir"]) == run_dir
    config = json.loads((run_dir / "config.json").read_text())
    assert config["flags"]["epochs"] == 3 and config["flags"]["beta"] == 0.5
    assert config["data"]["canonical"] == ["q", "q", "p", "p"]
    assert len(config["data"]["sha256"]) == 64 and config["data"]["path"].endswith("orbit.npz")
    assert config["environment"]["torch"] and "git_commit" in config["environment"]
    assert config["device"] == "cpu"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("train/prediction", "train/reconstruction", "train/hamiltonian",
                "train/energy_conservation", "train/energy_keeping", "train/smoothness",
                "train/l2", "train/total", "val/total", "val/hamiltonian", "epoch_seconds"):
        assert key in rows[-1], key
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("final", "train_seconds", "seconds_per_epoch", "parameters", "device", "epochs",
                "wall_seconds"):
        assert key in summary, key
    assert summary["epochs"] == 3 and summary["parameters"] == model.n_parameters()
    # the checkpoint alone rebuilds the model, with its normalisation
    rebuilt, ckpt = load_run(run_dir)
    assert isinstance(rebuilt, PhysicsNet) and ckpt["epoch"] == 3
    assert rebuilt.config.q_idx == [0, 1] and rebuilt.config.p_idx == [2, 3]
    states = torch.randn(5, 7, 4)
    with torch.no_grad():
        assert torch.equal(rebuilt.energy(states), model.energy(states))
        assert torch.equal(rebuilt.encode(states), model.encode(states))
    assert rebuilt.rollout(states[:, :3], 4, project=True).shape == (5, 7, 4)


def test_a_few_epochs_lower_the_loss(data_dir, tmp_path):
    _, stats = run(data_dir, tmp_path, "--system", "spring", "--epochs", "8", "--lr", "3e-3")
    rows = [json.loads(x) for x in
            (Path(stats["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    assert last["train/total"] < 0.5 * first["train/total"]
    assert last["val/prediction"] < first["val/prediction"]
    assert last["val/hamiltonian"] < first["val/hamiltonian"]


def test_energy_head_learns_the_energy(data_dir, tmp_path):
    """The property the energy head is for: E_hat is an affine function of the true energy
    (test-side check; train.py never sees the truth)."""
    model, _ = run(data_dir, tmp_path, "--system", "spring", "--epochs", "10",
                   "--energy-steps", "30")
    test = load_trajectories(data_dir / "spring.npz", with_truth=True)
    E_true = test.truth["invariants"][..., 0].ravel()
    with torch.no_grad():
        E_hat = model.energy(torch.as_tensor(test.states, dtype=torch.float32)).numpy().ravel()
    slope, offset = np.polyfit(E_true, E_hat, 1)
    r2 = 1 - (E_hat - slope * E_true - offset).var() / E_hat.var()
    assert r2 > 0.99 and abs(slope - 1) < 0.05, (r2, slope)


def test_standard_model_trains_no_energy_head(data_dir, tmp_path):
    model, _ = run(data_dir, tmp_path, "--system", "spring", "--energy-weight", "0.0",
                   "--tag", "standard", "--epochs", "2")
    _, ckpt = load_run(tmp_path / "runs" / "spring__physicsnet__standard__s0")
    torch.manual_seed(0)  # the same initialisation as train.py's seed 0
    fresh = PhysicsNet(PhysicsNetConfig(**ckpt["model_config"]))
    for (name, p), q in zip(model.energy_head.named_parameters(), fresh.energy_head.parameters()):
        assert torch.equal(p, q), name                 # no loss term reaches the energy head
    assert not torch.equal(model.decoder[0].weight, fresh.decoder[0].weight)
    assert "train/hamiltonian" not in ckpt["metrics"][-1]


def test_invariant_heads_and_non_canonical_files(data_dir, tmp_path):
    model, stats = run(data_dir, tmp_path, "--system", "orbit", "--n-invariants", "2",
                       "--epochs", "2")
    assert model.config.n_invariants == 2
    assert {"train/invariant_0", "train/invariant_1"} <= set(stats["final"])
    # a file without q/p labels: no Hamiltonian term, the rest still trains
    arrays = dict(np.load(data_dir / "spring.npz"))
    arrays.pop("canonical")
    arrays = {k: v for k, v in arrays.items() if not k.startswith("truth_")}
    path = tmp_path / "unlabelled.npz"
    atomic_write_npz(path, **arrays)
    model, stats = run(data_dir, tmp_path, "--system", str(path), "--epochs", "2")
    assert model.config.q_idx is None and "train/hamiltonian" not in stats["final"]
    # a file outside --data-dir: its run folder carries a hash of its path (runs.data_key)
    assert len(list((tmp_path / "runs").glob("unlabelled-*__physicsnet__default__s0/"
                                             "checkpoint.pt"))) == 1


@pytest.mark.parametrize("kind", ["hnn", "baseline"])
def test_hamiltonian_models(data_dir, tmp_path, kind):
    model, stats = run(data_dir, tmp_path, "--system", "spring", "--model", kind, "--epochs", "2")
    run_dir = tmp_path / "runs" / f"spring__{kind}__default__s0"
    rebuilt, ckpt = load_run(run_dir)
    assert ckpt["model_kind"] == kind and type(rebuilt) is type(model)
    x = torch.randn(6, 2)
    assert torch.allclose(rebuilt.time_derivative(x, create_graph=False),
                          model.time_derivative(x, create_graph=False))
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_weight_average():
    p = torch.nn.Parameter(torch.zeros(3))
    avg = WeightAverage([p], decay=0.9)
    values = []
    for step in range(1, 40):
        with torch.no_grad():
            p.fill_(float(step))
        avg.update()
        values.append(step)
    assert 20 < avg.average[0][0].item() < 39             # lags behind the last value
    with avg.swapped_in():
        assert torch.equal(p.detach(), avg.average[0])
    assert p[0].item() == 39.0                            # restored
    last = WeightAverage([p], decay=0.0)
    last.update()
    assert torch.equal(last.average[0], p.detach())       # decay 0: the weights themselves


def test_saved_model_holds_the_averaged_energy_head(data_dir, tmp_path):
    model, _ = run(data_dir, tmp_path, "--system", "spring", "--epochs", "2")
    ckpt = torch.load(tmp_path / "runs" / "spring__physicsnet__default__s0" / "checkpoint.pt",
                      weights_only=False)
    saved = ckpt["model_state"]["energy_head.0.weight"]
    trained = ckpt["energy_head_trained"][0]
    assert torch.equal(model.energy_head[0].weight.detach(), saved)
    assert not torch.equal(saved, trained) and ckpt["energy_ema_updates"] == 2 * 4


# ---------------------------------------------------------------------------- resume

def weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["model_state"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_gives_the_same_weights(data_dir, tmp_path):
    flags = ["--system", "spring", "--n-invariants", "1"]
    run(data_dir, tmp_path / "straight", *flags, "--epochs", "4")
    run(data_dir, tmp_path / "split", *flags, "--epochs", "2")
    _, stats = run(data_dir, tmp_path / "split", *flags, "--epochs", "4", "--resume")
    name = "spring__physicsnet__default__s0"
    assert_same_weights(weights(tmp_path / "straight" / "runs" / name),
                        weights(tmp_path / "split" / "runs" / name))
    rows = (tmp_path / "split" / "runs" / name / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4]
    assert stats["epochs"] == 4


def test_resume_after_kill_9(data_dir, tmp_path):
    epochs = 40
    base = [PY, str(ROOT / "train.py"), "--system", "spring", "--data-dir", str(data_dir),
            "--quiet", "--threads", "1", "--epochs", str(epochs), "--window", "8"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    straight = subprocess.run(base + ["--results-dir", str(tmp_path / "a")], env=env,
                              capture_output=True, text=True, timeout=120)
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen(base + ["--results-dir", str(tmp_path / "b")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # an unfinished run lives in its staging folder until it is swapped in (runs.staged_run)
    metrics = (tmp_path / "b" / "runs" / f".spring__physicsnet__default__s0.staging-{proc.pid}"
               / "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(metrics.read_text().splitlines())
    assert done < epochs, "the run finished before it could be killed"
    assert not (tmp_path / "b" / "runs" / "spring__physicsnet__default__s0").exists()
    resumed = subprocess.run(base + ["--results-dir", str(tmp_path / "b"), "--resume"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    name = "spring__physicsnet__default__s0"
    assert_same_weights(weights(tmp_path / "a" / "runs" / name),
                        weights(tmp_path / "b" / "runs" / name))


# ---------------------------------------------------------------------------- flags and errors

README_ABLATIONS = [
    ["--system", "projectile"],
    ["--system", "projectile", "--epochs", "100"],
    ["--system", "projectile", "--energy-weight", "0.0", "--tag", "standard"],
    ["--system", "projectile", "--energy-weight", "0.1", "--tag", "physics-aware"],
    *[["--system", "spring", "--latent-dim", str(d), "--tag", f"latent-{d}"] for d in (4, 8, 16, 32)],
    ["--system", "orbit", "--epochs", "5", "--batch_size", "32", "--alpha", "1.0", "--beta",
     "0.5", "--gamma", "0.1"],
]


@pytest.mark.parametrize("argv", README_ABLATIONS, ids=lambda a: " ".join(a))
def test_readme_flags_parse(argv):
    cfg = train.parse_config(argv)
    assert cfg.system == argv[1]


def test_every_flag_parses():
    cfg = train.parse_config([
        "--system", "x.npz", "--model", "hnn", "--epochs", "7", "--batch-size", "9",
        "--window", "5", "--alpha", "0.1", "--beta", "0.2", "--gamma", "0.3",
        "--hamiltonian-weight", "0.4", "--n-invariants", "2", "--invariant-weight", "0.6",
        "--conservation-weight", "0.7", "--energy-lr", "0.02", "--energy-steps", "3",
        "--energy-batch", "11", "--energy-ema", "0.5", "--invariant-products", "0.25",
        "--latent-dim", "4", "--hidden-dim", "8", "--lr", "0.01", "--lr-decay", "0.9",
        "--weight-decay", "0", "--seed", "3", "--device", "cpu", "--threads", "1", "--tag", "t",
        "--data-dir", "d", "--results-dir", "r", "--resume", "--quiet"])
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.window, cfg.n_invariants) == \
        ("hnn", 7, 9, 5, 2)
    assert (cfg.alpha, cfg.beta, cfg.gamma, cfg.hamiltonian_weight) == (0.1, 0.2, 0.3, 0.4)
    assert cfg.resume and cfg.quiet and cfg.device == "cpu" and cfg.seed == 3
    assert (cfg.conservation_weight, cfg.energy_lr, cfg.energy_steps, cfg.energy_batch) == \
        (0.7, 0.02, 3, 11)
    assert (cfg.energy_ema, cfg.invariant_products) == (0.5, 0.25)
    assert train.parse_config(["--energy-weight", "0.7"]).beta == 0.7
    assert train.parse_config(["--batch_size", "5"]).batch_size == 5
    defaults = train.parse_config([])
    assert (defaults.epochs, defaults.batch_size, defaults.alpha, defaults.beta, defaults.gamma,
            defaults.latent_dim, defaults.hidden_dim, defaults.lr, defaults.weight_decay,
            defaults.tag, defaults.seed, defaults.n_invariants, defaults.hamiltonian_weight) == \
        (100, 64, 1.0, 0.5, 0.1, 32, 128, 1e-3, 1e-5, "default", 0, None, 1.0)


@pytest.mark.parametrize("argv, words", [
    (["--system", "nosuchsystem"], "unknown system"),
    (["--system", "spring", "--epochs", "0"], "--epochs"),
    (["--system", "spring", "--epochs", "-3"], "--epochs"),
    (["--system", "missing/file.npz"], "not found"),
    (["--system", "spring", "--resume", "--tag", "never-ran"], "no checkpoint"),
    (["--system", "spring", "--device", "tpu"], "--device"),
    (["--system", "spring", "--no-such-flag"], "unrecognized"),
    (["--system", "spring", "--lr", "-1"], "--lr"),
    (["--system", "spring", "--invariant-products", "nan"], "--invariant-products"),
    ([], "--system is required"),
])
def test_bad_flags_exit_2_with_one_line(argv, words, data_dir, tmp_path, capsys):
    code, err = exit_code(argv + ["--data-dir", str(data_dir), "--results-dir", str(tmp_path)],
                          capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err


def test_missing_builtin_data_names_the_simulate_command(tmp_path, capsys):
    code, err = exit_code(["--system", "orbit", "--data-dir", str(tmp_path)], capsys)
    assert code == 2 and "python data/simulate.py --systems orbit" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_usage_error(data_dir, tmp_path, capsys):
    code, err = exit_code(["--system", "spring", "--device", "cuda", "--data-dir",
                           str(data_dir), "--results-dir", str(tmp_path)], capsys)
    assert code == 2 and "cuda" in err


def test_resume_with_different_flags_is_refused(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path, "--system", "spring", "--epochs", "1")
    code, err = exit_code(["--system", "spring", "--resume", "--lr", "0.5", "--data-dir",
                           str(data_dir), "--results-dir", str(tmp_path)], capsys)
    assert code == 2 and "--lr" in err


def test_resume_of_an_unreadable_or_older_checkpoint_is_refused(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path, "--system", "spring", "--epochs", "1")
    path = tmp_path / "runs" / "spring__physicsnet__default__s0" / "checkpoint.pt"
    argv = ["--system", "spring", "--resume", "--epochs", "2", "--data-dir", str(data_dir),
            "--results-dir", str(tmp_path)]
    ckpt = torch.load(path, weights_only=False)
    del ckpt["flags"]["invariant_products"]       # as written before that flag existed
    torch.save(ckpt, path)
    code, err = exit_code(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "older train.py" in err, err
    path.write_bytes(path.read_bytes()[:1000])    # a truncated file
    code, err = exit_code(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot read" in err, err
    with pytest.raises(UsageError, match="cannot read"):   # evaluate/discover's loader too
        load_run(path.parent)


def test_command_line_exit_status(tmp_path):
    out = subprocess.run([PY, str(ROOT / "train.py"), "--system", "spring", "--epochs", "0"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
