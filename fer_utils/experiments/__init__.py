"""Experiment recipes of the notebooks (02 balancing, 03 baselines, 04 attention, 05 tuning, 06 statistics).

- ``running``    one model trained and evaluated end to end (:func:`run_model`), tables of them, CK+ folds
- ``results``    model runs read back from their run folders and put side by side (same-data checks)
- ``published``  the studies' published numbers, in one place, and the comparisons with them
- ``study_c``    Study C on FER+ and CK+, and its SE x BN ablation table
- ``explain``    Grad-CAM and CBAM maps of a trained run on faces of every class
- ``balancing``  notebook 02: the GAN, balanced training files, their quality and their effect
- ``tuning``     notebook 05: KerasTuner searches, their cost, best configurations, Study C's learning-rate table
- ``seeds``      several training seeds of a recipe, their ensemble, scores without test copies of training images
- ``statistics`` notebook 06: 5x2cv comparisons, McNemar and bootstrap on saved predictions, Holm, Tables XII/XIII
- ``export``     a trained run exported with float16 weights and a model card (the model ``predict`` ships):
                 ``python -m fer_utils.experiments.export RUN_DIR``
- ``tune_workers`` ``python -m fer_utils.experiments.tune_workers``: notebook 05's searches over worker processes
                 (a command module; not imported here)

TensorFlow is imported only inside the functions that train, generate or explain.
"""

from fer_utils.experiments import balancing, seeds, statistics, tuning
from fer_utils.experiments.balancing import with_balanced
from fer_utils.experiments.seeds import seed_summary
from fer_utils.experiments.explain import explain_model
from fer_utils.experiments.published import (
    accuracy_vs_published,
    class_counts_vs_published,
    published,
    published_reference,
    published_table,
    split_totals,
)
from fer_utils.experiments.results import (
    attention_comparison,
    collect_results,
    combine_results,
    confusion_matrices,
    empty_results,
    headline,
    load_histories,
    mark_same_data,
    results_records,
    sibling_run,
    trained_runs,
)
from fer_utils.experiments.running import (
    check_model_names,
    evaluation_splits,
    prepare,
    run_cv,
    run_model,
    run_models,
)
from fer_utils.experiments.tuning import apply_tuned
from fer_utils.experiments.study_c import (
    ablation_table,
    ckplus_folds,
    run_study_c_ckplus,
    run_study_c_ferplus,
    study_c_headline,
)
from fer_utils.experiments.study_c import pooled_confusion as ckplus_pooled_confusion
from fer_utils.experiments.study_c import settings_tables as study_c_settings_tables

__all__ = [
    "balancing", "seeds", "statistics", "tuning", "apply_tuned", "with_balanced", "seed_summary", "ablation_table",
    "accuracy_vs_published", "attention_comparison",
    "check_model_names",
    "class_counts_vs_published", "collect_results", "combine_results", "confusion_matrices", "empty_results",
    "evaluation_splits",
    "explain_model", "headline", "load_histories", "mark_same_data", "prepare", "published", "published_reference",
    "published_table", "results_records", "run_cv", "run_model", "run_models", "run_study_c_ckplus",
    "run_study_c_ferplus", "sibling_run", "split_totals", "study_c_headline", "ckplus_folds",
    "ckplus_pooled_confusion", "study_c_settings_tables", "trained_runs",
]
