"""Small registries (tasks.yaml snippets) that tests include."""

TINY_REGISTRY = """
datasets:
  tiny-tiles:
    source: synth
    generator: tiles
    params: {tile_size: 64, per_class: {train: 6, val: 3, test: 4}, seed: 3}
tasks:
  tiny-tiles:
    family: tile_classification
    dataset: tiny-tiles
    main_score: balanced_accuracy
    params: {max_steps: 200, eval_every: 50, patience: 100, seeds: [0, 1], bootstrap_resamples: 100}
  tiny-retrieval:
    family: retrieval
    dataset: tiny-tiles
    main_score: map@5
    params: {bootstrap_resamples: 100}
suites:
  tiny: [tiny-tiles, tiny-retrieval]
"""


SLIDE_REGISTRY = """
datasets:
  cohort:
    source: wsi
    path: cohort/slides.csv
    label_column: label
    classes: [benign, low-grade, high-grade]
tasks:
  cohort-grade:
    family: slide_classification
    dataset: cohort
    main_score: balanced_accuracy
    params: {folds: 3, abmil: {epochs: 5}, probe_max_steps: 200, bootstrap_resamples: 100}
"""
