"""The seed studies' tables as data files, the runner that trains their rows (runner.py) and the
paper-vs-ours tables it writes (table_report.py); cross-validation, boosting, ablation, epoch tables."""
