# Thin wrappers. `make lab` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test exercises execute grade bench bench-map clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

lab: $(STAMP)            ## set up, then open JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS) notebooks/

test: $(STAMP)           ## set up, then run unit tests and every solution notebook under nbval
	$(PY) -m pytest

exercises: $(STAMP)      ## regenerate the student notebooks from notebooks/solutions/
	$(PY) -m helpers.build

execute: $(STAMP)        ## re-execute solution notebooks in place: make execute NB=notebooks/solutions/01_vision_tasks.ipynb
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 --ExecutePreprocessor.record_timing=False $(or $(NB),notebooks/solutions/[0-9]*.ipynb)
	$(PY) -m helpers.build

grade: $(STAMP)          ## grade submissions: make grade SUBMISSIONS="folder or notebooks" [CSV=grades.csv] [RESULTS=results.jsonl [RESUME=1]] [TIMEOUT=900] [WORKERS=4] [GRADE_ARGS="any other option of python -m helpers.grade"]; no SUBMISSIONS: the reference solutions
	$(PY) -m helpers.grade $(or $(SUBMISSIONS),notebooks/solutions --student "solutions (reference)") $(if $(CSV),--csv $(CSV)) $(if $(RESULTS),--results $(RESULTS)) $(if $(RESUME),--resume) $(if $(TIMEOUT),--timeout $(TIMEOUT)) $(if $(WORKERS),--workers $(WORKERS)) $(GRADE_ARGS)

bench: $(STAMP)          ## run every solution notebook, timed; print seconds, quality figures and device
	$(PY) benchmarks/series.py

bench-map: $(STAMP)      ## mAP speed and agreement: helpers.metrics against pycocotools
	$(PY) benchmarks/map_speed.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
