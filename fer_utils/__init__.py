"""fer_utils: the library behind the FER research suite's notebooks.

Importing this package has no side effects: it does not import TensorFlow, seed
random generators or touch the file system. Each stage lives in its own module:

- ``data``      loading, validating and describing datasets (FER-2013, FER+, CK+, folders, synthetic)
- ``synthetic`` the procedurally drawn FER-like default dataset
- ``pipeline``  ``tf.data`` input pipelines (resize, channels, normalisation, augmentation)
- ``models``    model builders (VGG19, ResNet50, InceptionV3, Study B CNN, Study C network) and attention blocks
- ``train``     compile/fit from parameters (optimisers, losses, schedules, callbacks, precision)
- ``evaluate``  metrics, confusion matrices, test-time augmentation, predictions, Grad-CAM
- ``experiments`` one model trained and evaluated end to end, results tables, Study C runs
- ``eda``       the exploratory analysis of notebook 01
- ``plots``     every figure the notebooks show
- ``params``    parameter profiles and their check against the notebooks
- ``artifacts`` run folders, seeding, metadata (seed, data checksum, versions) and report banners
- ``run``       the papermill runner (``python -m fer_utils.run``)
"""

__version__ = "0.1.0"
