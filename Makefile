# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install the pins
# (requirements-dev.txt: the runtime's requirements.txt plus the test and benchmark tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# GPU=1 installs TensorFlow with its CUDA libraries (tensorflow[and-cuda], as the GPU image does); without it,
# TensorFlow runs on the CPU even where a GPU is present.
GPU ?=
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)$(if $(GPU),-gpu)
export TF_CPP_MIN_LOG_LEVEL := 2

# The CPU demo: 1,000 synthetic clips, the tiny VGG-like (width 0.5), 15 epochs (about 5 minutes on 2 cores).
DEMO_PARAMS ?= --param synthetic_clips=1000 --param width=0.5 --param epochs=15

.PHONY: install demo test compile bench bench-scale image-test clean split-study shift-invariance missing-labels noisy-labels dcase2019 dcase2018 dataset-creation contrastive-ssl separation-ssl

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(if $(GPU),sed 's/^tensorflow==/tensorflow[and-cuda]==/' requirements.txt > $(VENV)/requirements-gpu.txt && $(BIN)/python -m pip install --quiet -r $(VENV)/requirements-gpu.txt)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python pipelines/run_local.py fsd50k_baseline $(DEMO_PARAMS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

compile: $(STAMP)
	$(BIN)/python pipelines/compile.py --output-dir compiled $(if $(IMAGE),--image $(IMAGE)) $(if $(GPU_IMAGE),--gpu-image $(GPU_IMAGE))

# Every speed and memory figure with its target (about an hour on 2 cores; the scale run needs 25 GB of disk at
# its peak). bench-scale runs the scale part alone.
bench: $(STAMP)
	$(BIN)/python benchmarks/feature_extraction.py
	$(BIN)/python benchmarks/input_pipeline.py
	$(BIN)/python benchmarks/tagging.py
	$(BIN)/python benchmarks/scale.py

# Ingest and extraction at 10,000 and 50,000 synthetic clips, and the extrapolation to FSD50K (about 40 minutes
# on 2 cores and 25 GB of disk at its peak).
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py

# Builds the cpu image and runs it as KFP, Dataflow and `docker run` do (docker, podman or buildah; stand-in
# bases from Debian packages where no registry answers). Not part of `make test`: it needs root and minutes.
image-test:
	infra/smoke_test_image.sh

clean:
	rm -rf runs compiled .pytest_cache

# The split study of the README (1,200 synthetic clips, 3 strategies; about 7 minutes on 2 cores).
split-study: $(STAMP)
	$(BIN)/python pipelines/run_local.py split_study --param synthetic_clips=1200 --param width=0.5 --param epochs=10 --param val_fraction=0.25

# The shift-invariance study of the README (VGG41 at width 0.25; about 25 minutes on 2 cores).
SHIFT_VARIANTS ?= [{"pooling":"max","mixup_alpha":0},{"pooling":"blurpool3","mixup_alpha":0},{"pooling":"blurpool5","mixup_alpha":0},{"pooling":"tlpf","mixup_alpha":0},{"pooling":"aps","mixup_alpha":0},{"pooling":"tlpf_aps","mixup_alpha":0},{"pooling":"max","mixup_alpha":0.3},{"pooling":"tlpf_aps","mixup_alpha":0.3}]
shift-invariance: $(STAMP)
	$(BIN)/python pipelines/run_local.py shift_invariance --param synthetic_clips=1000 --param width=0.25 --param epochs=10 --param 'pooling_variants=$(SHIFT_VARIANTS)'

# The missing-labels study of the README (1,500 synthetic AudioSet-style clips, VGG-like width 0.5, 12
# epochs, 8 tc values, a VGG-like teacher: CPU-sized overrides of the paper's ResNet-50 teacher and 18 tc
# values; about 40 minutes on 2 cores). TRAIN_FRACTION=0.33 gives the small-train-set curve.
TRAIN_FRACTION ?= 1.0
missing-labels: $(STAMP)
	$(BIN)/python pipelines/run_local.py missing_labels --param synthetic_clips=1500 --param width=0.5 --param epochs=12 --param val_fraction=0.2 --param train_fraction=$(TRAIN_FRACTION) --param teacher_architecture=vgg_like --param 'tc_percents=[0,0.5,1,2,4,6,10,20]'

# The noisy-labels study of the README (1,500 synthetic FSDnoisy18k-format clips; CCE and Lq on the three
# train sets, and the instance-selection branch; about 30 minutes on 2 cores). The README's table was
# measured with the FSD50K feature setting; the pipeline's default is FSDnoisy18k's.
NOISY_VARIANTS ?= [{"train_set":"clean","flag":"manually_verified","loss":"cce"},{"train_set":"clean","flag":"manually_verified","loss":"lq"},{"train_set":"noisy","flag":"!manually_verified","loss":"cce"},{"train_set":"noisy","flag":"!manually_verified","loss":"lq"},{"train_set":"noisy_and_clean","flag":"","loss":"cce"},{"train_set":"noisy_and_clean","flag":"","loss":"lq"}]
noisy-labels: $(STAMP)
	$(BIN)/python pipelines/run_local.py noisy_labels --param feature_params=fsd50k --param synthetic_clips=1500 --param width=0.5 --param epochs=10 --param stage1_epochs=5 --param discard_stage1_epochs=5 --param mixup_warmup_epochs=2 --param stage2_epochs=5 --param 'loss_variants=$(NOISY_VARIANTS)'

# DCASE2019 Task 2 on synthetic FSDKaggle2019-format data (1,500 clips, width 0.5, 10 + 10 epochs).
dcase2019: $(STAMP)
	$(BIN)/python pipelines/run_local.py dcase2019_task2 --param synthetic_clips=1500 --param width=0.5 --param noisy_epochs=10 --param curated_epochs=10

# DCASE2018 Task 2 on synthetic FSDKaggle2018-format data (1,500 clips, width 0.5, 10 epochs).
dcase2018: $(STAMP)
	$(BIN)/python pipelines/run_local.py dcase2018_task2 --param synthetic_clips=1500 --param width=0.5 --param epochs=10

# Dataset creation on synthetic raw material (800 clips), then the baseline trained on the FSD50K-layout result.
CREATION_ROOT ?= runs/dataset-creation
dataset-creation: $(STAMP)
	rm -rf $(CREATION_ROOT)
	$(BIN)/python pipelines/run_local.py dataset_creation --pipeline-root $(CREATION_ROOT)
	$(BIN)/python pipelines/run_local.py fsd50k_baseline --param width=0.5 --param epochs=15 --param dataset_root=$$(dirname $$(ls -d $(CREATION_ROOT)/dataset-creation-*/assemble-dataset*/dataset/FSD50K.ground_truth))

# The contrastive SSL study of the README (1,500 synthetic FSDnoisy18k-format clips, VGG-like width 0.5
# encoder, 30 pretraining epochs, 10 downstream epochs; about 30 minutes on 2 cores).
contrastive-ssl: $(STAMP)
	$(BIN)/python pipelines/run_local.py contrastive_ssl --param synthetic_clips=1500 --param architecture=vgg_like --param width=0.5 --param pretrain_epochs=30 --param pretrain_batch_size=64 --param downstream_epochs=10 --param knn_k=20

# The separation-based SSL study of the README (1,500 synthetic FSD50K-format clips; a 4-channel MixIT
# separator, 2,000 steps, checkpoints at 250/500/1,000/2,000; 7 proxy-task settings, VGG-like width 0.5,
# 20 pretraining epochs, shallow classifier 15 epochs; about 45 minutes on 2 cores).
separation-ssl: $(STAMP)
	$(BIN)/python pipelines/run_local.py separation_ssl --param synthetic_clips=1500 --param separator_channels=4 --param separator_steps=2000 --param 'checkpoint_steps=[250,500,1000,2000]' --param architecture=vgg_like --param width=0.5 --param pretrain_epochs=20 --param pretrain_batch_size=64 --param shallow_hidden_units=256 --param shallow_epochs=15
