# Two commands do all the set-up:  `make run` (the whole pipeline) and `make test`.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
SYSTEMS ?= projectile spring orbit
# Real recordings (one long tracked trajectory each) that go through the same pipeline.
RECORDINGS ?= data/real/real_pendulum.csv data/real/real_spring.csv
# Extra flags for every stage, e.g. `make run FLAGS=--quiet`.
FLAGS   ?=
# The main job trains every model with train.py's defaults (100 epochs); e.g.
# `make run TRAIN_FLAGS="--epochs 15"` for a shorter run.
SIM_FLAGS   ?=
TRAIN_FLAGS ?=

.PHONY: setup run quick test bench hnn-table hnn-real pixel

setup: $(VENV)/.installed dashboard/node_modules/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

dashboard/node_modules/.installed: dashboard/package.json dashboard/package-lock.json
	cd dashboard && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The main job: simulate -> train (physics-aware and standard) -> discover -> evaluate.
run: setup
	@echo "== [1/4] simulate: $(SYSTEMS)"
	$(PY) data/simulate.py --systems $(SYSTEMS) $(SIM_FLAGS) $(FLAGS)
	@echo "== [2/4] train: physics-aware and standard PhysicsNet per system and recording"
	@for s in $(SYSTEMS) $(RECORDINGS); do \
	  $(PY) train.py --system $$s --tag physics-aware $(TRAIN_FLAGS) $(FLAGS) || exit 1; \
	  $(PY) train.py --system $$s --energy-weight 0.0 --tag standard $(TRAIN_FLAGS) $(FLAGS) || exit 1; \
	done
	@echo "== [3/4] discover"
	@for s in $(SYSTEMS) $(RECORDINGS); do $(PY) discover.py --system $$s $(FLAGS) || exit 1; done
	@echo "== [4/4] evaluate"
	$(PY) evaluate.py --systems $(SYSTEMS) $(RECORDINGS) $(FLAGS)

# A first look in a few minutes (small data, few epochs: the laws may be less exact).
quick:
	$(MAKE) run SIM_FLAGS="--n-traj 300" TRAIN_FLAGS="--epochs 5 --energy-steps 20"

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) bench/bench_simulate.py

# The Hamiltonian-NN paper's Table 1, each its own command (not part of `make run`).
hnn-table: setup
	$(PY) -m experiments.hnn_table $(FLAGS)

hnn-real: setup
	$(PY) -m experiments.hnn_real $(FLAGS)

# The HNN paper's pixel pendulum (Table 1, row 5): its own command, not part of `make run`
# (~30 min on a shared 2-core CPU: 27 min measured; CUDA when present). FLAGS as above, e.g. FLAGS=--quick.
pixel: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m experiments.pixel_pendulum $(FLAGS)
