"""fer_utils: the library behind the FER research suite's notebooks.

Importing this package has no side effects: it does not import TensorFlow, seed random
generators or touch the file system. One package or module per stage:

- ``data/``        datasets: the frozen ``FERDataset`` type, one module per source (FER-2013 csv, Kaggle
                   folders, FER+, CK+, generic folders, synthetic), discovery, splits, duplicates (no TensorFlow)
- ``pipeline``     ``tf.data`` input pipelines (resize, channels, normalisation, augmentation)
- ``models/``      builders (VGG19, ResNet50, InceptionV3, Study B CNN, Study C network), SE/CBAM, weights,
                   the registry (defaults, normalization, plain-vs-attention pairs, SE x BN ablation)
- ``train/``       ``TrainConfig``; ``build_compiled_model`` (precision, strategy, regularizer, optimizer, loss,
                   schedule); ``fit_model`` (callbacks and the run folder's training files)
- ``evaluate/``    metrics, test-time augmentation, Grad-CAM and CBAM maps
- ``gan/``         the conditional GAN of notebook 02: networks, ``train_step``, resumable training, quality
- ``stats``        statistical tests between models: 5x2cv t and F, McNemar, bootstrap intervals, Holm
- ``tune/``        KerasTuner searches (notebook 05) and their distributed mode (the launcher:
                   ``python -m fer_utils.experiments.tune_workers``)
- ``runs``         the model run folder contract: every file, read back
- ``predictor``    ``load_predictor``: a run, ensemble or exported folder as a predictor (uint8 faces in,
                   probabilities out); the exported model format's loading
- ``predict/``     ``python -m fer_utils.predict`` and ``EmotionRecognizer``: faces detected in photos and videos,
                   framed like FER-2013, classified in batches; the shipped model
- ``experiments/`` the notebooks' recipes: running models, results, published numbers, Study C, GAN balancing,
                   tuning (05) and its worker launcher, statistics (06), exporting a run (the shipped model)
- ``eda``          the exploratory analysis of notebook 01
- ``plots``        every figure the notebooks show
- ``params``       parameter profiles and their check against the notebooks
- ``artifacts``    notebook run folders, seeding, reproducibility metadata, the machine (CPU flags, kind, times),
                   report banners
- ``progress``     progress lines from a notebook to the runner's console
- ``run``          the papermill runner (``python -m fer_utils.run``): resume or archive, then run each notebook
- ``check``        every parameter checked before a run, and the ``--check`` dry run
- ``notebook_exec`` one notebook executed quietly with progress on the console, rendered to HTML
- ``index``        the profile's ``index.html`` and ``run.json``
"""

__version__ = "0.2.0"
