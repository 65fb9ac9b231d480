# reproml: `make run` runs the whole pipeline offline; `make test` sets up and runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SOURCE ?= synthetic:96
PROFILE ?= quick
PIPELINE_REQS := env/requirements-pipeline.txt env/requirements-dev.txt
STAMP := $(VENV)/.installed
IMAGE_VERSION := $(shell cat env/IMAGE_VERSION)
BUILD_ARGS = --build-arg IMAGE_VERSION=$(IMAGE_VERSION) --build-arg GIT_COMMIT=$$(git rev-parse HEAD)

.PHONY: setup serving-env lab-env browser run test test-unit test-all lint bench lab serve images validate clean lock help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv from the pinned requirement files

$(STAMP): $(PIPELINE_REQS) env/requirements-nodeps.txt env/constraints-pipeline.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.1.1
	$(BIN)/pip install --quiet $(addprefix -r ,$(PIPELINE_REQS)) -c env/constraints-pipeline.txt
	$(BIN)/pip install --quiet --no-deps -r env/requirements-nodeps.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

serving-env: .venv-serving/.installed  ## create .venv-serving: Seldon Core 1.17.1 + TensorFlow (the model server)

.venv-serving/.installed: env/requirements-serving.txt env/constraints-serving.txt pyproject.toml
	test -x .venv-serving/bin/python || $(PYTHON) -m venv .venv-serving
	.venv-serving/bin/pip install --quiet -r env/requirements-serving.txt -c env/constraints-serving.txt
	.venv-serving/bin/pip install --quiet --no-deps -e .
	touch $@

lab-env: .venv-lab/.installed  ## create .venv-lab: JupyterLab with jupytext, nbdime, nbconvert (for people)

.venv-lab/.installed: env/requirements-lab.txt env/constraints-lab.txt
	test -x .venv-lab/bin/python || $(PYTHON) -m venv .venv-lab
	.venv-lab/bin/pip install --quiet --upgrade pip==25.1.1
	.venv-lab/bin/pip install --quiet -r env/requirements-lab.txt -c env/constraints-lab.txt
	.venv-lab/bin/pip install --quiet --no-deps -e .  # the reproml:// filesystem jupyter-fs mounts
	touch $@

browser:  ## headless Chromium + ChromeDriver for the report-site tests (Debian packages)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "install Chromium: sudo apt-get install chromium chromium-driver" >&2; exit 1; fi; }

run: setup  ## run the whole pipeline on the embedded default (SOURCE=synthetic:96, PROFILE=quick)
	$(BIN)/reproml run --source $(SOURCE) --profile $(PROFILE)

test: setup serving-env lab-env browser  ## the fast test profile (what CI runs)
	$(BIN)/python -m pytest -q

test-unit: setup  ## the fast developer loop: pure-Python tests marked `unit` (< 60 s)
	$(BIN)/python -m pytest -q -m "unit and not slow"

test-all: setup serving-env lab-env browser  ## every test, the slow end-to-end runs included
	$(BIN)/python -m pytest -q -m ""

lint: setup  ## ruff over the package, notebooks, tests and benchmarks
	$(BIN)/ruff check .

bench: setup  ## benchmarks: print figures and ratios (see bench/README.md)
	$(BIN)/python bench/run_all.py

lab: setup lab-env  ## JupyterLab on 127.0.0.1:8888: the store mounted read-only ("reproml runs"), notebooks/*.py as notebooks
	REPROML_STORE=$${REPROML_STORE:-$(CURDIR)/.reproml} JUPYTER_PATH=$(CURDIR)/$(VENV)/share/jupyter \
	  .venv-lab/bin/jupyter lab --ip=127.0.0.1 --no-browser --config=env/jupyter_server_config.py \
	  --ServerApp.root_dir=$(CURDIR)

serve: setup serving-env  ## serve the newest released model on http://127.0.0.1:9000 (Seldon Core)
	$(BIN)/reproml serve

validate: setup  ## check every pipeline spec, overlay and Kubernetes manifest offline
	$(BIN)/reproml validate

images:  ## build the four container images at env/IMAGE_VERSION (needs docker; see env/README.md)
	@# A published tag is never rebuilt: pods pull IfNotPresent, so a node would keep the old image under it.
	@for image in pipeline pipeline-gpu serving notebook; do \
	  if docker manifest inspect ghcr.io/reproml/$$image:$(IMAGE_VERSION) >/dev/null 2>&1; then \
	    echo "ghcr.io/reproml/$$image:$(IMAGE_VERSION) is published already; bump env/IMAGE_VERSION" >&2; exit 1; fi; \
	done
	docker build -f env/Dockerfile.pipeline $(BUILD_ARGS) -t ghcr.io/reproml/pipeline:$(IMAGE_VERSION) .
	docker build -f env/Dockerfile.pipeline-gpu $(BUILD_ARGS) -t ghcr.io/reproml/pipeline-gpu:$(IMAGE_VERSION) .
	docker build -f env/Dockerfile.serving $(BUILD_ARGS) -t ghcr.io/reproml/serving:$(IMAGE_VERSION) .
	docker build -f env/Dockerfile.notebook $(BUILD_ARGS) -t ghcr.io/reproml/notebook:$(IMAGE_VERSION) .

lock:  ## re-resolve env/constraints-{pipeline,lab,serving}.txt from the requirement files
	rm -rf /tmp/reproml-lock && $(PYTHON) -m venv /tmp/reproml-lock
	/tmp/reproml-lock/bin/pip install --quiet $(addprefix -r ,$(PIPELINE_REQS))
	{ echo "# Every transitive package of .venv (pipeline + dev), frozen from a resolved install; regenerate with 'make lock'."; \
	  /tmp/reproml-lock/bin/pip freeze; } > env/constraints-pipeline.txt
	rm -rf /tmp/reproml-lock && $(PYTHON) -m venv /tmp/reproml-lock
	/tmp/reproml-lock/bin/pip install --quiet -r env/requirements-lab.txt
	{ echo "# Every transitive package of .venv-lab (JupyterLab), frozen from a resolved install; regenerate with 'make lock'."; \
	  /tmp/reproml-lock/bin/pip freeze; } > env/constraints-lab.txt
	rm -rf /tmp/reproml-lock && $(PYTHON) -m venv /tmp/reproml-lock
	/tmp/reproml-lock/bin/pip install --quiet -r env/requirements-serving.txt
	{ echo "# Every transitive package of .venv-serving (Seldon Core 1.17.1 + TensorFlow), frozen from a resolved install; regenerate with 'make lock'."; \
	  /tmp/reproml-lock/bin/pip freeze; } > env/constraints-serving.txt

clean:  ## remove the environments and the local store (asks nothing: the store is rebuilt by `make run`)
	rm -rf $(VENV) .venv-lab .venv-serving .reproml reports/*/
