"""KFP components: thin shells whose bodies call beam_jobs/ and keras_models/.

Every component's `base_image` is a placeholder replaced at compile time by `pipelines/compile.py
--image` / `--gpu-image` (the project images hold the whole repository installed, so bodies import it
directly).
`install_kfp_package=False` because that image already has the pinned kfp.
"""
PROJECT_IMAGE_PLACEHOLDER = "sound-event-classifiers:latest"
