"""`trainer experiment CONFIG`: real labels vs label-free (synthetic) training, on one real test split.

Every arm is a normal run directory (manifest.json + the trainer.pipeline stages) trained with the same
hyper-parameters and scored by the same export verification on the same held-out real frames:

    config.py  the YAML (ExperimentConfig) and the cpu/gpu budget presets
    split.py   the one time-block split, the test folder, split.json and the leakage check
    arms.py    what each arm trains on (real / label-free / synthetic-only / hybrid-N)
    report.py  experiment.json, experiment.md, experiment.png
    run.py     run_experiment: split once, every arm, the report
    cli.py     add_experiment_parser (wired into `trainer`), main()
"""
