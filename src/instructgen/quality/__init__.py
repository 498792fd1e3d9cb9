"""Quality scores and selection: `instructgen score` (LLM judges and offline signals, kept in `meta.scores`)
and `instructgen select` (best first, thresholds, budgets, quotas, and Deita's diversity rule through an
incremental MinHash/LSH index of the records already selected).

    parse.parse_score(reply, low, high) -> ParsedScore | None     a judge's reply -> a number on its scale
    judges.get_judge(name) / judges.custom_judge(path, low, high)  the prompts (prompts/judge_*.txt)
    score.score_records(records, config, log, ...)                 scores through generate's chat client
    signals.signals(conv, filter_config) -> dict[str, float]        the filter's measures as numbers
    agreement.agreement(a, b) -> dict                               Spearman and within-one-point rate
    select.select_records(records, config, log, ...)                the selection stage
"""
