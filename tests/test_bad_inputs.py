"""Bad inputs to every script, table-driven: each must give exit status 2, at most 2 lines on
stderr, no traceback, a message naming the problem, and leave every file already written
(data, results, plots, dashboard data) byte-identical.

One tiny pipeline is built first (tests/tiny_pipeline.py); the cases run against it, most
in-process through the scripts' cli(main) wrappers, a few as real subprocesses (exit status
and stderr of the real command line, warnings included). `pytest tests/test_bad_inputs.py`
prints one PASSED/FAILED per case: the number of cases tried and clean.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tiny_pipeline import DISCOVER, SYSTEM, TRAIN, build, call, checksums, crafted_checkpoint, run

MARKER = "PWNED"        # a crafted file's payload creates bad/PWNED if it ever runs


@dataclass
class Case:
    script: str                     # simulate, train, discover, evaluate, hnn_table
    argv: str                       # str.format'ed with the paths of `places` below
    words: tuple[str, ...]          # the message names the problem: each must appear
    subprocess: bool = False        # run as a real command line
    id: str = field(default="")


def C(script, argv, *words, subprocess=False, id=""):
    return Case(script, argv, tuple(words), subprocess, id)


# ---------------------------------------------------------------------------- bad files

def _spring(p) -> dict:
    with np.load(p.data / f"{SYSTEM}.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _observed(p) -> dict:
    a = _spring(p)
    return {"states": a["states"], "t": a["t"], "names": a["names"],
            "canonical": a["canonical"]}


def make_bad_files(p, bad: Path) -> None:
    """Every bad file and folder the cases point at, under `bad`."""
    bad.mkdir()
    obs = _observed(p)
    states, t = obs["states"], obs["t"]
    n, T, D = states.shape
    save = lambda name, **arrays: np.savez(bad / name, **arrays)
    (bad / "empty.npz").write_bytes(b"")
    (bad / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    with open(bad / "bare.npz", "wb") as fh:
        np.save(fh, states)
    save("noarrays.npz")
    save("nostates.npz", t=t)
    save("notime.npz", states=states)
    save("unknown.npz", **obs, extra=np.zeros(3))
    save("flat.npz", **{**obs, "states": states[0]})
    save("strings.npz", **{**obs, "states": states.astype(str)})
    save("nan.npz", **{**obs, "states": np.where(states > 1, np.nan, states)})
    save("beyond32.npz", **{**obs, "states": states * 1e39})
    save("huge.npz", **{**obs, "states": states * 1e30})
    save("constant.npz", **{**obs, "states": np.ones_like(states)})
    save("keyword.npz", **{**obs, "names": np.array(["lambda", "p"])})
    save("function.npz", **{**obs, "names": np.array(["sin", "v"])})
    save("pi.npz", **{**obs, "names": np.array(["pi", "v"])})
    save("twice.npz", **{**obs, "names": np.array(["x", "x"])})
    save("digit.npz", **{**obs, "names": np.array(["1x", "v"])})
    save("shortnames.npz", **{**obs, "names": np.array(["x"])})
    save("labels.npz", **{**obs, "canonical": np.array(["q", "z"])})
    save("unequal.npz", **{**obs, "canonical": np.array(["q", "q"])})
    save("backwards.npz", **{**obs, "t": t[::-1]})
    save("tshape.npz", **{**obs, "t": t[:-1]})
    save("tnan.npz", **{**obs, "t": np.where(t > 1, np.nan, t)})
    # one trajectory too short to cut into windows (a long one is a recording: loader.py)
    save("one.npz", **{**obs, "states": states[:1, :20], "t": t[:20]})
    save("twosteps.npz", **{**obs, "states": states[:, :2], "t": t[:2]})
    save("notrain.npz", **obs, split=np.array(["val"] * n))
    save("splitlen.npz", **obs, split=np.array(["train"] * (n - 1)))
    save("alltrain.npz", **obs, split=np.array(["train"] * n))
    save("metatext.npz", **obs, meta=np.array("not json"))
    save("metalist.npz", **obs, meta=np.array("[1, 2]"))
    save("pickled.npz", **obs, meta=np.array([{"a": 1}], dtype=object))
    save("unlabelled.npz", **{k: v for k, v in obs.items() if k != "canonical"})
    save("three.npz", states=np.concatenate([states, states[..., :1] ** 2], -1), t=t,
         names=np.array(["x", "v", "w"]))
    save("renamed.npz", **{**obs, "names": np.array(["q", "p"])})
    (bad / "folder.npz").mkdir()
    (bad / "notes.txt").write_text("x,v\n1,2\n")
    (bad / "afile").write_text("a file where a folder is expected\n")
    # user truth_* arrays and meta.system that do not fit the data (evaluate)
    full = _spring(p)
    truth = {k: v for k, v in full.items()}
    save("truthshape.npz", **{**truth, "truth_invariants": np.zeros((n, T - 1, 1))})
    save("truthtext.npz", **{**truth, "truth_invariants": np.full((n, T), "E")})
    save("truthclean.npz", **{**truth, "truth_clean_states": states[:, :, :1]})
    save("truthnames.npz", **{**truth, "truth_invariant_names": np.array(["E", "L"])})
    save("truthparams.npz", **{**truth, "truth_meta": np.array('{"params": {"k": "five"}}')})
    save("truthlist.npz", **{**truth, "truth_meta": np.array("[1]")})
    save("truthexpr.npz", **{**truth, "truth_meta": np.array(
        json.dumps({"expressions": {"E": f"__import__('os').system('touch {bad / MARKER}')"}}))})
    save("othersystem.npz", **{**truth, "meta": np.array('{"system": "orbit"}')})
    save("systemlist.npz", **{**truth, "meta": np.array('{"system": [1, 2]}')})
    # CSV files
    csv = {"empty.csv": "", "blank.csv": "\n\n\n", "header.csv": "trajectory,t,x:q,v:p\n",
           "words.csv": "trajectory,t,x\n0,0,a\n0,1,b\n1,0,c\n1,1,d\n",
           "nocolumns.csv": "trajectory,x\n0,1\n",
           "novars.csv": "trajectory,t\n0,0\n0,1\n",
           "keyword.csv": "trajectory,t,lambda:q,p:p\n" + "".join(
               f"{i},{j},{i + j},{j}\n" for i in range(3) for j in range(4)),
           "index.csv": "Unnamed: 0,trajectory,t,x\n0,0,0,1\n",
           "somelabels.csv": "trajectory,t,x:q,v\n0,0,1,2\n",
           "badlabel.csv": "trajectory,t,x:z\n0,0,1\n",
           "ragged.csv": "trajectory,t,x\n0,0,1\n0,1,2\n1,0,3\n",
           "emptyid.csv": "trajectory,t,x\n,0,1\n0,1,2\n",
           "toomany.csv": "trajectory,t,x\n0,0,1,5\n"}
    for name, text in csv.items():
        (bad / name).write_text(text)
    # folders of results: the pipeline's runs (read through a symlink) beside a crafted or
    # broken discovered_equations.json or metrics.json; evaluate writes nowhere in them
    entry = json.loads((p.results / "discovered_equations.json").read_text())[SYSTEM]
    code = f"__import__('os').system('touch {bad / MARKER}')"
    first = {**entry["equations"][0]}
    variants = {
        "code": {SYSTEM: {**entry, "equations": [{**first, "expression": f"{code} + x"}]}},
        "derived": {SYSTEM: {**entry, "derived_inputs": {"r": code}}},
        "notjson": "{not json",
        "binary": b"\xff\xfe\x00garbage",
        "list": [],
        "noentry": {},
        "notobject": {SYSTEM: 5},
        "variables": {SYSTEM: {**entry, "variables": ["a", "b"]}},
        "eqlist": {SYSTEM: {**entry, "equations": "E"}},
        "eqkind": {SYSTEM: {**entry, "equations": [{**first, "kind": "bogus"}]}},
        "pareto": {SYSTEM: {**entry, "equations": [{**first, "pareto": [{"complexity": "a"}]}]}},
        "threshold": {SYSTEM: {**entry, "threshold": "low"}},
        "unknownsym": {SYSTEM: {**entry, "equations": [{**first, "expression": "w + 1"}]}},
        "deep": "[" * 200_000,
    }
    for name, content in variants.items():
        folder = bad / f"res_{name}"
        folder.mkdir()
        (folder / "runs").symlink_to(p.results / "runs")
        target = folder / "discovered_equations.json"
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content if isinstance(content, str) else json.dumps(content))
    (bad / "res_dirjson").mkdir()
    (bad / "res_dirjson" / "runs").symlink_to(p.results / "runs")
    (bad / "res_dirjson" / "discovered_equations.json").mkdir()
    (bad / "res_empty").mkdir()
    (bad / "res_metrics").mkdir()
    (bad / "res_metrics" / "metrics.json").write_text('{"systems": 5}')
    (bad / "README.md").write_text("# no markers here\n")
    (bad / "MARKED.md").write_text("# results\n<!-- results:start -->\n<!-- results:end -->\n")
    # a run whose checkpoint is crafted, one truncated, a folder without one
    crafted = bad / "res_crafted" / "runs" / p.run_dir("physics-aware").name
    crafted.mkdir(parents=True)
    for f in ("config.json", "summary.json", "metrics.jsonl"):
        (crafted / f).write_bytes((p.run_dir("physics-aware") / f).read_bytes())
    crafted_checkpoint(crafted / "checkpoint.pt", bad / MARKER)
    (bad / "res_crafted" / "discovered_equations.json").write_bytes(
        (p.results / "discovered_equations.json").read_bytes())
    truncated = bad / "truncated"
    truncated.mkdir()
    (truncated / "checkpoint.pt").write_bytes(
        (p.run_dir("physics-aware") / "checkpoint.pt").read_bytes()[:2000])
    (bad / "norun").mkdir()
    # the built-in spring's data changed since its runs were trained
    (bad / "data2").mkdir()
    changed = _spring(p)
    changed["states"] = changed["states"] * 1.01
    np.savez(bad / "data2" / f"{SYSTEM}.npz", **changed)


# ---------------------------------------------------------------------------- the table

D = "--data-dir {data} --results-dir {results}"
OUT = "--plots-dir {plots} --dashboard-file {dash}"
EV = f"{D} {OUT} --quiet"
TR = f"{D} " + " ".join(TRAIN)
DI = f"{D} " + " ".join(DISCOVER)
B = "{bad}"

# (file, words): user files that every script's loader must refuse (tried through train, and
# a sample through discover and evaluate)
BAD_FILES = [
    ("empty.npz", "empty"), ("random.npz", "not a zip"), ("bare.npz", "single .npy"),
    ("noarrays.npz", "no arrays"), ("nostates.npz", "missing array 'states'"),
    ("notime.npz", "missing array 't'"), ("unknown.npz", "unknown arrays"),
    ("flat.npz", "shape (n_traj, T, D)"), ("strings.npz", "numeric"),
    ("nan.npz", "NaN/inf"), ("beyond32.npz", "float32"), ("constant.npz", "constant"),
    ("keyword.npz", "keyword"), ("function.npz", "['sin']"), ("pi.npz", "['pi']"),
    ("twice.npz", "distinct"), ("digit.npz", "identifiers"), ("shortnames.npz", "'names'"),
    ("labels.npz", "'canonical'"), ("unequal.npz", "as many"),
    ("backwards.npz", "strictly increasing"), ("tshape.npz", "'t' must have shape"),
    ("tnan.npz", "'t' holds NaN"), ("one.npz", "at least 2 trajectories"),
    ("twosteps.npz", "at least 3 time steps"), ("notrain.npz", "no trajectory as 'train'"),
    ("splitlen.npz", "'split'"), ("metatext.npz", "not a JSON"),
    ("metalist.npz", "JSON object"), ("pickled.npz", "Python objects"),
    ("folder.npz", "folder"), ("notes.txt", "unsupported file type"),
    ("empty.csv", "empty"), ("blank.csv", "empty"), ("header.csv", "no rows"),
    ("words.csv", "non-numeric"), ("nocolumns.csv", "missing column"),
    ("novars.csv", "no state-variable"), ("keyword.csv", "keyword"),
    ("index.csv", "Unnamed: 0"), ("somelabels.csv", "every state column"),
    ("badlabel.csv", "':q' or ':p'"), ("ragged.csv", "different lengths"),
    ("emptyid.csv", "trajectory"), ("toomany.csv", "cannot parse"),
    ("missing.npz", "not found"),
]

CASES = [
    # -- data/simulate.py
    *[C("simulate", f"--systems spring --n-traj 5 --out {B}/sim {flags}", *words)
      for flags, *words in [
          ("--systems nosuch", "unknown system", "nosuch"), ("--n-traj 1", "--n-traj"),
          ("--steps 2", "--steps"), ("--seed -1", "--seed"), ("--noise 1.5", "--noise"),
          ("--noise abc", "--noise", "abc"), ("--out {bad}/afile", "--out", "not a folder"),
          ("--out /proc/nosuch", "--out", "/proc/nosuch"),
          ("--out {bad}/afile/sub", "--out", "afile"), ("--bogus", "unrecognized", "--bogus")]],
    C("simulate", "--systems spring --n-traj 5 --out /proc/nosuch", "--out", "/proc/nosuch",
      subprocess=True, id="simulate-out-proc-subprocess"),
    # -- train.py: flags
    C("train", f"{TR}", "--system is required"),
    *[C("train", f"--system spring {TR} {flags}", *words) for flags, *words in [
        ("--system nosuch", "unknown system", "nosuch"), ("--epochs 0", "--epochs"),
        ("--epochs abc", "--epochs", "abc"), ("--batch-size 0", "--batch-size"),
        ("--window 1", "--window"), ("--lr 0", "--lr"), ("--lr nan", "--lr"),
        ("--lr-decay 2", "--lr-decay"), ("--energy-ema 1", "--energy-ema"),
        ("--alpha -1", "--alpha"), ("--n-invariants -1", "--n-invariants"),
        ("--seed -1", "--seed"), ("--threads -1", "--threads"), ("--model foo", "--model", "foo"),
        ("--device tpu", "--device", "tpu"), ("--bogus", "unrecognized", "--bogus")]],
    C("train", "--system spring --seed -1 --data-dir {data} --results-dir {results}",
      "--seed", subprocess=True, id="train-seed-subprocess"),
    # -- train.py: output locations, data and runs
    C("train", "--system spring --data-dir {data} --results-dir {bad}/afile " + " ".join(TRAIN),
      "--results-dir", "afile"),
    C("train", "--system spring --data-dir {data} --results-dir /proc/nosuch " + " ".join(TRAIN),
      "--results-dir", "/proc/nosuch"),
    C("train", "--system spring --data-dir {data} --results-dir {bad}/afile/sub "
      + " ".join(TRAIN), "--results-dir", "afile"),
    C("train", f"--system spring --data-dir {B}/nowhere --results-dir {{results}}",
      "no data for 'spring'", "simulate.py"),
    C("train", f"--system spring --tag never-ran --resume {TR}", "--resume", "no checkpoint"),
    C("train", f"--system spring --tag physics-aware --resume --lr 0.5 {TR}", "--resume", "--lr"),
    C("train", f"--system spring --tag physics-aware --resume --data-dir {{data}} "
      f"--results-dir {B}/res_crafted " + " ".join(TRAIN), "refused", "checkpoint"),
    C("train", f"--system {B}/unlabelled.npz --model hnn {TR}", "--model hnn", "canonical"),
    C("train", f"--system {B}/huge.npz {TR}", "float32", "rescale"),
    C("train", f"--system spring --tag physics-aware --energy-lr 1e30 {TR}", "diverged"),
    C("train", f"--system {B}/beyond32.npz {TR}", "float32", subprocess=True,
      id="train-beyond-float32-subprocess"),
    # -- discover.py: flags
    C("discover", f"{DI}", "--system is required"),
    *[C("discover", f"--system spring {DI} {flags}", *words) for flags, *words in [
        ("--system nosuch", "unknown system", "nosuch"), ("--niterations 0", "--niterations"),
        ("--budget 0", "--budget"), ("--budget x", "--budget", "'x'"),
        ("--max-terms 0", "--max-terms"), ("--n-samples 0", "--n-samples"),
        ("--latent-pcs -1", "--latent-pcs"), ("--seed -1", "--seed"),
        ("--threads 0", "--threads"), ("--backend nope", "--backend", "nope"),
        ("--bogus", "unrecognized", "--bogus")]],
    C("discover", "--system spring --latent-pcs -1 --data-dir {data} --results-dir {results}",
      "--latent-pcs", subprocess=True, id="discover-latent-pcs-subprocess"),
    # -- discover.py: runs, data and output locations
    C("discover", f"--system spring --data-dir {{data}} --results-dir {B}/res_empty "
      + " ".join(DISCOVER), "no trained PhysicsNet run", "train.py --system spring"),
    C("discover", f"--system spring --run {B}/nowhere {DI}", "--run", "nowhere"),
    C("discover", f"--system spring --run {B}/norun {DI}", "no checkpoint", "norun"),
    C("discover", f"--system spring --run {B}/truncated {DI}", "cannot read", "checkpoint"),
    C("discover", f"--system spring --run {B}/res_crafted/runs/"
      "spring__physicsnet__physics-aware__s0 " + DI, "refused", "checkpoint"),
    C("discover", f"--system {B}/three.npz --run {{results}}/runs/"
      "spring__physicsnet__physics-aware__s0 " + DI, "2 variables", "3"),
    C("discover", f"--system {B}/renamed.npz --run {{results}}/runs/"
      "spring__physicsnet__physics-aware__s0 " + DI, "['x', 'v']", "['q', 'p']"),
    C("discover", f"--system spring --data-dir {B}/data2 --results-dir {{results}} "
      + " ".join(DISCOVER), "another version", "spring"),
    C("discover", "--system spring --data-dir {data} --results-dir {bad}/afile "
      + " ".join(DISCOVER), "--results-dir", "afile"),
    C("discover", "--system spring --data-dir {data} --results-dir /proc/nosuch "
      + " ".join(DISCOVER), "--results-dir", "/proc/nosuch"),
    C("discover", f"--system spring --data-dir {{data}} --results-dir {B}/res_dirjson "
      + " ".join(DISCOVER), "discovered_equations.json", "folder"),
    C("discover", f"--system spring --data-dir {{data}} --results-dir {B}/res_notjson "
      + " ".join(DISCOVER), "not valid JSON"),
    C("discover", f"--system spring --data-dir {{data}} --results-dir {B}/res_list "
      + " ".join(DISCOVER), "not a JSON object"),
    # -- evaluate.py: flags
    *[C("evaluate", f"--systems spring {EV} {flags}", *words) for flags, *words in [
        ("--systems nosuch", "unknown system", "nosuch"), ("--prefix 0", "--prefix"),
        ("--prefix 500", "--prefix", "nothing to predict"), ("--max-traj 0", "--max-traj"),
        ("--n-show 0", "--n-show"), ("--n-dashboard 0", "--n-dashboard"),
        ("--seed -1", "--seed"), ("--bogus", "unrecognized", "--bogus")]],
    C("evaluate", f"--systems spring {{data}}/spring.npz {EV}", "twice", "spring"),
    C("evaluate", f"--systems spring {EV} --hnn-table=\"'--quick\"", "--hnn-table",
      "quotation"),
    C("evaluate", f"--systems spring {EV} --hnn-table=\"--tasks nosuch\"", "unknown task",
      "nosuch"),
    C("evaluate", f"--systems spring {EV} --hnn-table=\"--seeds -1\"", "--seeds"),
    C("evaluate", f"--systems spring {EV} --hnn-table=\"--steps 0\"", "--steps"),
    # -- evaluate.py: output locations (checked before any work)
    C("evaluate", f"--systems spring {D} --plots-dir {{plots}} --dashboard-file {B}/norun "
      "--quiet", "--dashboard-file", "folder"),
    C("evaluate", f"--systems spring {D} --plots-dir {{plots}} --dashboard-file "
      "/proc/nosuch/d.js --quiet", "--dashboard-file", "/proc/nosuch"),
    C("evaluate", f"--systems spring {D} --plots-dir {{plots}} --dashboard-file "
      f"{B}/afile/d.js --quiet", "--dashboard-file", "afile"),
    C("evaluate", f"--systems spring {D} --plots-dir {B}/afile --dashboard-file {{dash}} "
      "--quiet", "--plots-dir", "not a folder"),
    C("evaluate", f"--systems spring {D} --plots-dir /proc/nosuch --dashboard-file {{dash}} "
      "--quiet", "--plots-dir", "/proc/nosuch"),
    C("evaluate", f"--systems spring --data-dir {{data}} --results-dir {B}/afile {OUT} --quiet",
      "afile"),
    # -- evaluate.py --readme
    C("evaluate", f"--readme --results-dir {B}/res_empty --readme-file {B}/README.md",
      "no ", "metrics.json"),
    C("evaluate", f"--readme --results-dir {{results}} --readme-file {B}/README.md", "markers"),
    C("evaluate", f"--readme --results-dir {{results}} --readme-file {B}/nosuch.md",
      "not found"),
    C("evaluate", f"--readme --results-dir {{results}} --readme-file {B}/norun",
      "--readme-file", "folder"),
    C("evaluate", "--readme --results-dir {results} --readme-file /proc/nosuch/README.md",
      "--readme-file", "/proc/nosuch"),
    C("evaluate", f"--readme --results-dir {B}/res_metrics --readme-file {B}/MARKED.md",
      "not a metrics file"),
    # -- evaluate.py: results files (crafted or broken) and runs
    *[C("evaluate", f"--systems spring --data-dir {{data}} --results-dir {B}/res_{name} "
        f"{OUT} --quiet", *words, id=f"evaluate-results-{name}")
      for name, words in [("code", ("not allowed",)), ("derived", ("not allowed",)),
                          ("notjson", ("not valid JSON",)), ("binary", ("UTF-8",)),
                          ("list", ("not a JSON object",)), ("noentry", ("no entry",)),
                          ("notobject", ("not an object",)), ("variables", ("variables",)),
                          ("eqlist", ("equations",)), ("eqkind", ("kind",)),
                          ("pareto", ("pareto",)), ("threshold", ("threshold",)),
                          ("unknownsym", ("unknown symbol 'w'",)), ("deep", ("nested",)),
                          ("dirjson", ("cannot read",)), ("empty", ("no trained",))]],
    C("evaluate", f"--systems spring --data-dir {{data}} --results-dir {B}/res_code "
      f"{OUT} --quiet", "not allowed", subprocess=True, id="evaluate-results-code-subprocess"),
    C("evaluate", f"--systems spring --data-dir {B}/data2 --results-dir {{results}} {OUT} "
      "--quiet", "another version"),
    C("evaluate", f"--systems spring --data-dir {{data}} --results-dir {B}/res_crafted "
      f"{OUT} --quiet", "refused", "checkpoint"),
    *[C("evaluate", f"--systems {B}/{name} {EV}", *words, id=f"evaluate-{name}")
      for name, words in [("truthshape.npz", ("truth_invariants", "shape")),
                          ("truthtext.npz", ("truth_invariants", "numeric")),
                          ("truthclean.npz", ("truth_clean_states",)),
                          ("truthnames.npz", ("truth_invariant_names",)),
                          ("truthparams.npz", ("params",)), ("truthlist.npz", ("truth_meta",)),
                          ("truthexpr.npz", ("not allowed",)),
                          ("othersystem.npz", ("meta.system 'orbit'",)),
                          ("systemlist.npz", ("meta.system",)),
                          ("alltrain.npz", ("no 'test' or 'val'",))]],
    # -- experiments/hnn_table.py
    *[C("hnn_table", f"--quick {flags}", *words) for flags, *words in [
        ("--tasks nosuch", "unknown task", "nosuch"), ("--seeds -1", "--seeds"),
        ("--seeds", "--seeds"), ("--steps 0", "--steps"), ("--threads 0", "--threads"),
        ("--average 1", "--average"), ("--noise -0.5", "--noise"),
        ("--engine nope", "--engine", "nope"), ("--bogus", "unrecognized", "--bogus")]],
    C("hnn_table", "--quick --results-dir {bad}/afile", "--results-dir", "afile"),
    C("hnn_table", "--quick --results-dir {results} --plots-dir /proc/nosuch", "--plots-dir",
      "/proc/nosuch"),
    # -- every bad user file through train, a sample through discover and evaluate
    *[C("train", f"--system {B}/{name} {TR}", words, id=f"train-file-{name}")
      for name, words in BAD_FILES],
    *[C("discover", f"--system {B}/{name} {DI}", words, id=f"discover-file-{name}")
      for name, words in BAD_FILES[::4]],
    *[C("evaluate", f"--systems {B}/{name} {EV}", words, id=f"evaluate-file-{name}")
      for name, words in BAD_FILES[2::4]],
]


def case_id(case: Case) -> str:
    return case.id or f"{case.script} {case.argv}"


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict:
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bad_inputs")
    p = build(root)
    make_bad_files(p, root / "bad")
    return {"p": p, "data": p.data, "results": p.results, "plots": p.plots,
            "dash": p.dashboard, "bad": root / "bad"}


def test_the_table_is_large_enough():
    assert len(CASES) >= 80 and len({case_id(c) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_bad_input(case: Case, places):
    import shlex

    p = places["p"]
    kept = [p.data, p.results, p.plots, p.dashboard]
    before = checksums(*kept)
    argv = shlex.split(case.argv.format(**places))
    if case.subprocess:
        code, _, err = run(case.script, argv)
    else:
        try:
            code, _, err = call(case.script, argv)
        except BaseException as exc:     # an exception that escaped cli(): a traceback
            pytest.fail(f"{case.script} raised {type(exc).__name__}: {exc}")
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}, stderr: {err[-2000:]}"
    assert 1 <= len(lines) <= 2, f"{len(lines)} lines on stderr: {err[-2000:]}"
    assert "Traceback" not in err and lines[0].startswith("error: "), err
    for word in case.words:
        assert word.lower() in err.lower(), f"{word!r} not in {err!r}"
    assert checksums(*kept) == before, "a file that was already written changed"
    assert not (places["bad"] / MARKER).exists(), "a crafted file ran code"
