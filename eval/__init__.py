"""Closed-loop evaluation: suites (tasks × randomization levels × fixed seeded episodes), metrics with confidence
intervals, reports (JSON, Markdown, HTML with plots and videos) and comparison of two reports.

    from rho.eval import Evaluation, load_suite, compare
    report = Evaluation(load_suite("smoke"), out="runs/eval/expert").run("expert")

Public API: `Evaluation`, `SuiteCfg`, `EvalCfg`, `load_suite`, `episode_seed`, `shifted_randomization`,
`Policy`, `ExpertPolicy`, `RandomPolicy`, `load_policy`, `compare`, `compare_markdown`, `summarize`,
`force_stats`, `wilson_interval`, `fisher_exact`, `two_proportion_z`, `mcnemar_exact`.
"""

from .compare import compare, compare_markdown, load_report
from .evaluation import Evaluation
from .metrics import fisher_exact, force_stats, mcnemar_exact, summarize, two_proportion_z, wilson_interval
from .policies import ExpertPolicy, Policy, RandomPolicy, load_policy
from .suite import LEVELS, EvalCfg, SuiteCfg, episode_seed, load_suite, shifted_randomization

__all__ = ["LEVELS", "EvalCfg", "Evaluation", "ExpertPolicy", "Policy", "RandomPolicy", "SuiteCfg", "compare",
           "compare_markdown", "episode_seed", "fisher_exact", "force_stats", "load_policy", "load_report",
           "load_suite", "mcnemar_exact", "shifted_randomization", "summarize", "two_proportion_z",
           "wilson_interval"]
