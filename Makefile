# mamc — set-up, the main job, tests, JupyterLab, figures and benchmarks.
# `make reproduce` and `make test` each set the environment up first (once; redone when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= runs/default
PROFILE ?= default
# torch is pinned so that no other package pulls a multi-GB build by accident. Without CUDA (no nvidia-smi),
# pip takes the CPU wheel where the machine provides one (this project's CPU machines do, from local disk);
# elsewhere set TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU build. With CUDA, PyPI's Linux
# wheel of the same version is the CUDA build.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

.PHONY: setup reproduce study smoke test lab figures benchmarks gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),) "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --prefix $(VENV) --name mamc --display-name "Python (mamc)" >/dev/null
	touch $(STAMP)

reproduce: setup
	$(PY) -m mamc reproduce --profile $(PROFILE) --out $(RUN)

# The study: the methods of the claims over more seeds (docs/STUDY.md is a copy of its RESULTS.md), and the
# captioner drawn again (another captioner_seed, the same data) to measure how much C3 moves with it.
STUDY ?= runs/study
STUDY_SEEDS ?= 0,1,2,3,4,5,6,7,8,9,10,11
CAPTIONER_SEEDS ?= 1 2
DRAW_SEEDS ?= 0,1,2
study: setup
	$(PY) -m mamc reproduce --profile $(PROFILE) --out $(STUDY) --param seeds=$(STUDY_SEEDS) \
		--param methods=infonce,margin,meta,vlm,mama --param dose_captioner_steps=
	for k in $(CAPTIONER_SEEDS); do $(PY) -m mamc reproduce --profile $(PROFILE) --out $(STUDY)_captioner$$k \
		--param captioner_seed=$$k --param seeds=$(DRAW_SEEDS) --param methods=infonce,vlm \
		--param dose_captioner_steps= || exit 1; done
	$(PY) -m mamc evaluate --run $(STUDY) --captioner-draws $(addprefix $(STUDY)_captioner,$(CAPTIONER_SEEDS))

smoke: setup
	$(PY) -m mamc reproduce --profile smoke --out runs/smoke

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# JupyterLab on the run folder's own, signed copies of the notebooks (never the committed ones): `make lab`,
# `make lab RUN=runs/smoke PORT=8890`. Works as root; prints the URL instead of opening a browser.
lab: setup
	$(PY) -m mamc lab --run $(RUN) --profile $(PROFILE) $(if $(PORT),--port $(PORT),)

figures: setup
	$(PY) -m mamc figures --run $(RUN)

benchmarks: setup
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/meta_step.py
	$(PY) benchmarks/retrieval_eval.py
	$(PY) benchmarks/caption.py

# On a machine with a GPU: the paper path measured there (docs/PAPER_RUN.md §5), about 6 minutes on one GPU.
gpu-check: setup
	$(PY) -m mamc gpu-check --out runs/gpu_check

clean:
	rm -rf $(VENV) runs .cache
