"""The trajectory loader on good and bad user files (.npz and long-form .csv) and system names.

    python -m pytest -q tests/test_loader.py

Every bad input must raise DataError (a UsageError) whose message is one line naming the
problem; through `utils.cli` that is one line on stderr and exit status 2.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.loader import BUILTIN_SYSTEMS, DataError, load_trajectories, resolve
from utils import UsageError, cli

N, T = 50, 30


def make_arrays(n: int = N, steps: int = T, seed: int = 0) -> dict:
    """Spring-like user data: states (n, T, 2), uniform times (T,), names, canonical."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 3.0, steps)
    amplitude, phase = rng.uniform(0.5, 2.0, (n, 1)), rng.uniform(0, 2 * np.pi, (n, 1))
    x, v = amplitude * np.cos(2 * t + phase), -2 * amplitude * np.sin(2 * t + phase)
    return {"states": np.stack([x, v], -1), "t": t, "names": np.array(["x", "v"]),
            "canonical": np.array(["q", "p"])}


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def to_long_csv(path: Path, states: np.ndarray, t: np.ndarray, columns: list[str],
                ids=None) -> Path:
    """Long form: one row per (trajectory, time), columns trajectory, t, then the variables."""
    n, steps, _ = states.shape
    t = np.broadcast_to(t, (n, steps))
    ids = np.arange(n) if ids is None else np.asarray(ids)
    frame = pd.DataFrame({"trajectory": np.repeat(ids, steps), "t": t.ravel()})
    for j, c in enumerate(columns):
        frame[c] = states[:, :, j].ravel()
    frame.to_csv(path, index=False)
    return path


def expect_error(source, *fragments: str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_trajectories(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


# ---------------------------------------------------------------------------- good files

def test_npz_with_shared_times(tmp_path):
    arrays = make_arrays()
    data = load_trajectories(write_npz(tmp_path / "user.npz", **arrays))
    assert data.name == "user" and data.states.shape == (N, T, 2) and data.t.shape == (N, T)
    np.testing.assert_array_equal(data.states, arrays["states"])
    np.testing.assert_array_equal(data.t, np.broadcast_to(arrays["t"], (N, T)))
    assert data.names == ["x", "v"] and data.canonical == ["q", "p"]
    assert data.canonical_pairs() == ([0], [1])
    assert data.meta == {} and data.truth == {}


def test_user_split_default_is_80_10_10_by_trajectory_and_fixed(tmp_path):
    path = write_npz(tmp_path / "user.npz", **make_arrays())
    first, second = load_trajectories(path), load_trajectories(path)
    assert {s: int((first.split == s).sum()) for s in ("train", "val", "test")} == \
        {"train": 40, "val": 5, "test": 5}
    np.testing.assert_array_equal(first.split, second.split)
    test = first.subset("test")
    assert test.n_traj == 5 and (test.split == "test").all()
    np.testing.assert_array_equal(test.states, first.states[first.indices("test")])


def test_npz_given_split_and_meta_are_kept(tmp_path):
    split = np.array(["train"] * 45 + ["test"] * 5)
    path = write_npz(tmp_path / "user.npz", **make_arrays(), split=split,
                     meta=np.array('{"source": "lab"}'))
    data = load_trajectories(path)
    np.testing.assert_array_equal(data.split, split)
    assert data.meta == {"source": "lab"}


def test_npz_with_per_trajectory_non_uniform_times(tmp_path):
    arrays = make_arrays()
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.05, 0.15, (N, T)), axis=1)       # (n_traj, T), all different
    path = write_npz(tmp_path / "user.npz", **{**arrays, "t": t})
    data = load_trajectories(path)
    np.testing.assert_array_equal(data.t, t)


def test_npz_without_names_or_canonical(tmp_path):
    arrays = make_arrays()
    data = load_trajectories(write_npz(tmp_path / "u.npz", states=arrays["states"],
                                       t=arrays["t"]))
    assert data.names == ["s0", "s1"] and data.canonical is None and data.canonical_pairs() is None


def test_truth_arrays_only_with_truth(tmp_path):
    path = write_npz(tmp_path / "u.npz", **make_arrays(), truth_energy=np.ones((N, T)),
                     truth_meta=np.array('{"params": {"k": 4}}'))
    assert load_trajectories(path).truth == {}
    truth = load_trajectories(path, with_truth=True).truth
    assert set(truth) == {"energy", "meta"} and truth["meta"] == {"params": {"k": 4}}


def test_csv_with_canonical_labels_matches_the_npz(tmp_path):
    arrays = make_arrays()
    rng = np.random.default_rng(2)
    t = np.cumsum(rng.uniform(0.05, 0.15, (N, T)), axis=1)
    ids = rng.permutation(1000)[:N]                           # arbitrary, unordered ids
    path = to_long_csv(tmp_path / "user.csv", arrays["states"], t, ["x:q", "v:p"], ids)
    data = load_trajectories(path)
    order = np.argsort(ids)                                   # trajectories sorted by id
    assert data.names == ["x", "v"] and data.canonical == ["q", "p"]
    np.testing.assert_allclose(data.states, arrays["states"][order], rtol=1e-15)
    np.testing.assert_allclose(data.t, t[order], rtol=1e-15)
    assert data.meta == {"format": "csv"}
    assert {s: int((data.split == s).sum()) for s in ("train", "val", "test")} == \
        {"train": 40, "val": 5, "test": 5}


def test_csv_without_labels_and_interleaved_rows(tmp_path):
    arrays = make_arrays(n=4, steps=5)
    path = to_long_csv(tmp_path / "u.csv", arrays["states"], arrays["t"], ["x", "v"])
    frame = pd.read_csv(path)
    # rows of different trajectories interleaved, each trajectory still in time order
    frame.iloc[np.argsort(np.tile(np.arange(5), 4), kind="stable")].to_csv(path, index=False)
    data = load_trajectories(path)
    assert data.canonical is None and data.names == ["x", "v"]
    np.testing.assert_allclose(data.states, arrays["states"], rtol=1e-15)


def test_simulated_file_by_name_and_by_path(tmp_path):
    from data import simulate

    assert cli(simulate.main)(["--systems", "spring", "--n-traj", "12", "--out", str(tmp_path),
                               "--quiet"]) == 0
    by_name = load_trajectories("spring", data_dir=tmp_path)
    by_path = load_trajectories(tmp_path / "spring.npz")
    assert resolve("spring", tmp_path) == tmp_path / "spring.npz"
    np.testing.assert_array_equal(by_name.states, by_path.states)
    assert by_name.truth == {} and by_name.meta["system"] == "spring"
    assert set(load_trajectories("spring", tmp_path, with_truth=True).truth) >= {"invariants"}


# ---------------------------------------------------------------------------- names and paths

def test_unknown_system_lists_the_known_ones(tmp_path):
    message = expect_error("warp-drive", "unknown system 'warp-drive'", data_dir=tmp_path)
    assert all(name in message for name in BUILTIN_SYSTEMS)


def test_builtin_system_without_data_names_the_command(tmp_path):
    expect_error("orbit", "python data/simulate.py --systems orbit", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["missing.npz", "missing.csv", "sub/missing"])
def test_missing_file(tmp_path, name):
    expect_error(str(tmp_path / name), "not found")


def test_errors_through_cli_are_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"")
    assert cli(lambda argv: load_trajectories(bad))([]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: {bad}: file is empty"
    assert issubclass(DataError, UsageError)


# ---------------------------------------------------------------------------- bad .npz

def _nan_states():
    states = make_arrays()["states"].copy()
    states[3, 4, 1] = np.nan
    return states


def _inf_states():
    states = make_arrays()["states"].copy()
    states[0, 0, 0] = np.inf
    return states


def _t_backwards_in_one():
    t = np.broadcast_to(make_arrays()["t"], (N, T)).copy()
    t[7, 10] = t[7, 9] - 0.01
    return t


BAD_NPZ = {
    "states 2-D": ({"states": np.zeros((N, T))}, "shape (n_traj, T, D)"),
    "states 4-D": ({"states": np.zeros((N, T, 2, 1))}, "shape (n_traj, T, D)"),
    "states NaN": ({"states": _nan_states()}, "NaN/inf"),
    "states inf": ({"states": _inf_states()}, "NaN/inf"),
    "states text": ({"states": np.full((N, T, 2), "a")}, "numeric"),
    "t wrong length": ({"t": np.linspace(0, 1, T + 1)}, "'t' must have shape"),
    "t wrong 2-D": ({"t": np.zeros((N + 1, T))}, "'t' must have shape"),
    "t NaN": ({"t": np.where(np.arange(T) == 5, np.nan, np.linspace(0, 1, T))}, "NaN/inf"),
    "t text": ({"t": np.array(["0"] * T)}, "'t' must be numeric"),
    "t repeated": ({"t": np.r_[0.0, np.linspace(0, 1, T - 1)]}, "strictly increasing"),
    "t decreasing": ({"t": np.linspace(1, 0, T)}, "strictly increasing"),
    "t backwards in one trajectory": ({"t": _t_backwards_in_one()}, "first is number 7"),
    "2 steps": ({"states": make_arrays(steps=2)["states"], "t": np.array([0.0, 1.0])},
                "at least 3 time steps"),
    "1 trajectory": ({"states": make_arrays(n=1)["states"]}, "at least 2 trajectories"),
    "names length": ({"names": np.array(["x"])}, "'names' has 1 entries"),
    "names repeated": ({"names": np.array(["x", "x"])}, "distinct identifiers"),
    "canonical label": ({"canonical": np.array(["q", "r"])}, "'canonical' must hold"),
    "canonical unbalanced": ({"canonical": np.array(["q", "q"])}, "as many 'p' as 'q'"),
    "split label": ({"split": np.array(["train"] * (N - 1) + ["dev"])}, "'split' must hold"),
    "split length": ({"split": np.array(["train"] * (N - 1))}, "'split' must hold"),
    "split no train": ({"split": np.array(["test"] * N)}, "no trajectory as 'train'"),
    "meta not JSON": ({"meta": np.array("{oops")}, "not a JSON string"),
    "meta not object": ({"meta": np.array("[1, 2]")}, "JSON object"),
    "unknown array": ({"velocity": np.zeros(3)}, "unknown arrays ['velocity']"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_bad_npz(tmp_path, case):
    change, fragment = BAD_NPZ[case]
    path = write_npz(tmp_path / "bad.npz", **{**make_arrays(), **change})
    message = expect_error(path, fragment)
    assert message.startswith(str(path))


def test_npz_missing_arrays(tmp_path):
    arrays = make_arrays()
    expect_error(write_npz(tmp_path / "a.npz", t=arrays["t"]), "missing array 'states'")
    expect_error(write_npz(tmp_path / "b.npz", states=arrays["states"]), "missing array 't'")
    expect_error(write_npz(tmp_path / "c.npz"), "no arrays")


def test_npz_that_is_not_an_archive(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    expect_error(empty, "file is empty")
    text = tmp_path / "text.npz"
    text.write_text("states,t\n1,2\n")
    expect_error(text, "cannot read as .npz")
    bare = tmp_path / "bare.npz"
    with open(bare, "wb") as fh:
        np.save(fh, make_arrays()["states"])
    expect_error(bare, "single .npy array")
    pickled = write_npz(tmp_path / "pickled.npz", **make_arrays(),
                        meta=np.array([{"a": 1}], dtype=object))
    expect_error(pickled, "cannot read as .npz")


# ---------------------------------------------------------------------------- bad .csv

GOOD_CSV = "trajectory,t,x:q,v:p\n" + "".join(
    f"{k},{i * 0.1:.1f},{k + i},{k - i}\n" for k in range(3) for i in range(4))


def _edit_csv(old: str, new: str, count: int = 1) -> str:
    assert old in GOOD_CSV
    return GOOD_CSV.replace(old, new, count)


BAD_CSV = {
    "empty": ("", "file is empty"),
    "blank lines": ("\n\n", "file is empty"),
    "header only": ("trajectory,t,x:q,v:p\n", "header but no rows"),
    "no t column": (GOOD_CSV.replace("trajectory,t,", "trajectory,time,"), "missing column(s) ['t']"),
    "no trajectory column": (GOOD_CSV.replace("trajectory,", "traj,"), "'trajectory'"),
    "no state columns": ("trajectory,t\n0,0\n0,1\n0,2\n1,0\n1,1\n1,2\n", "no state-variable"),
    "index column": (GOOD_CSV.replace("trajectory,t,x:q", "Unnamed: 0,trajectory,t,x:q")
                     .replace("\n0,", "\n9,0,").replace("\n1,", "\n9,1,").replace("\n2,", "\n9,2,"),
                     "unknown column 'Unnamed: 0'"),
    "bad label": (GOOD_CSV.replace("v:p", "v:r"), "unknown column 'v:r'"),
    "mixed labels": (GOOD_CSV.replace("v:p", "v"), "every state column or none"),
    "repeated column": (GOOD_CSV.replace("v:p", "x:p"), "distinct"),
    "text values": (_edit_csv("\n1,0.1,2,0\n", "\n1,0.1,two,0\n"), "column 'x:q' holds non-numeric"),
    "NaN value": (_edit_csv("\n1,0.1,2,0\n", "\n1,0.1,,0\n"), "NaN/inf"),
    "inf value": (_edit_csv("\n1,0.1,2,0\n", "\n1,0.1,inf,0\n"), "NaN/inf"),
    "missing id": (_edit_csv("\n1,0.1,2,0\n", "\n,0.1,2,0\n"), "'trajectory' holds empty"),
    "missing time": (_edit_csv("\n1,0.1,2,0\n", "\n1,,2,0\n"), "'t' holds NaN/inf"),
    "times backwards": (_edit_csv("\n1,0.1,2,0\n1,0.2,3,-1\n", "\n1,0.2,3,-1\n1,0.1,2,0\n"),
                        "strictly increasing"),
    "time repeated": (_edit_csv("\n1,0.1,2,0\n", "\n1,0.0,2,0\n"), "strictly increasing"),
    "ragged row": (_edit_csv("\n1,0.1,2,0\n", "\n1,0.1,2,0,7\n"), "cannot parse CSV"),
    "unequal lengths": (GOOD_CSV + "2,0.4,6,-2\n", "different lengths"),
    "2 steps": ("trajectory,t,x\n" + "".join(f"{k},{i},{k}\n" for k in range(3) for i in range(2)),
                "at least 3 time steps"),
    "1 trajectory": ("trajectory,t,x\n0,0,1\n0,1,2\n0,2,3\n", "at least 2 trajectories"),
}


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_bad_csv(tmp_path, case):
    text, fragment = BAD_CSV[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    message = expect_error(path, fragment)
    assert message.startswith(str(path))


def test_good_csv_fixture_loads(tmp_path):
    """The base of the bad cases above is itself valid: each case fails for its own reason."""
    path = tmp_path / "good.csv"
    path.write_text(GOOD_CSV)
    data = load_trajectories(path)
    assert data.states.shape == (3, 4, 2) and data.canonical == ["q", "p"]
    np.testing.assert_array_equal(data.states[1, :, 0], [1, 2, 3, 4])


def test_unsupported_extension(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("x")
    expect_error(str(path), "unsupported file type")
